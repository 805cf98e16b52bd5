"""Benchmark worker processes, each a separate OS process so it can contend or be killed:

    python -m bench.workers lock   --client ccore|ccore-asyncio|kazoo --hosts H --path P --seconds S
    python -m bench.workers owner  --client ccore|ccore-asyncio|kazoo --hosts H --path P --ttl T
    python -m bench.workers waiter --client ccore|ccore-asyncio|kazoo --hosts H --path P --ttl T
    python -m bench.workers writer --client ccore|ccore-asyncio|kazoo --hosts H --path P

`ccore` runs our client on Trio (`trio.run`), `ccore-asyncio` the same code on asyncio.

They talk to `bench.scenarios` by lines: a worker prints `ready` when connected (and, for
the lock, waits for `go` on stdin); results are one JSON line. Times are time.monotonic(),
which is one clock for every process on the machine. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import threading
import time

import anyio
import trio

MAX_LIFETIME_S = 300.0
CONNECT_TIMEOUT_S = 15.0
# The writer's kazoo retries the servers as quickly as our client does (ours: 50 ms after a
# round of failed hosts, doubling to 1 s), so the outage is the servers', not a back-off's.
KAZOO_FAST_RECONNECT = {"max_tries": -1, "delay": 0.05, "backoff": 2, "max_delay": 1.0}


def say(line: str | dict) -> None:
    print(line if isinstance(line, str) else json.dumps(line), flush=True)


def read_line(timeout_s: float = MAX_LIFETIME_S) -> str:
    """A line from stdin, '' at end of input or after timeout_s (the parent is gone or stuck)."""
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(sys.stdin.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    return got[0].strip() if got else ""


def kazoo_client(hosts: str, timeout: float = 10.0, **options):
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=hosts, timeout=timeout, **options)
    zk.start(timeout=CONNECT_TIMEOUT_S)
    return zk


# --- lock hand-offs -------------------------------------------------------------------------


async def lock_ours(args: argparse.Namespace) -> dict:
    from ccore.client import connect
    from ccore.recipes import Lock

    async with connect(args.hosts, connect_timeout=CONNECT_TIMEOUT_S) as zk:
        await zk.ensure_path(args.path)
        say("ready")
        if await anyio.to_thread.run_sync(read_line) != "go":
            return {"count": 0, "error": "no go"}
        deadline = time.monotonic() + args.seconds
        count = 0
        with anyio.move_on_after(args.seconds + 10):
            while (left := deadline - time.monotonic()) > 0:
                try:
                    async with Lock(zk, args.path, timeout=left):
                        if time.monotonic() < deadline:
                            count += 1
                except TimeoutError:
                    break
        return {"count": count}


def lock_kazoo(args: argparse.Namespace) -> dict:
    from kazoo.exceptions import LockTimeout

    zk = kazoo_client(args.hosts)
    try:
        zk.ensure_path(args.path)
        say("ready")
        if read_line() != "go":
            return {"count": 0, "error": "no go"}
        deadline = time.monotonic() + args.seconds
        count = 0
        while (left := deadline - time.monotonic()) > 0:
            lock = zk.Lock(args.path)
            try:
                if not lock.acquire(timeout=left):
                    break
            except LockTimeout:
                break
            try:
                if time.monotonic() < deadline:
                    count += 1
            finally:
                lock.release()
        return {"count": count}
    finally:
        zk.stop()
        zk.close()


# --- the seed's lease failover --------------------------------------------------------------


async def owner_ours(args: argparse.Namespace) -> None:
    from ccore.client import connect
    from ccore.recipes import Lease

    async with connect(args.hosts, session_timeout=args.ttl, connect_timeout=CONNECT_TIMEOUT_S) as zk:
        lease = Lease(zk, args.path, b"NodeA", ttl=zk.session_timeout, timeout=CONNECT_TIMEOUT_S)
        async with lease:
            say({"held": time.monotonic(), "ttl": zk.session_timeout})
            await anyio.sleep(MAX_LIFETIME_S)  # until killed


async def waiter_ours(args: argparse.Namespace) -> dict:
    from ccore.client import connect
    from ccore.recipes import Lease

    async with connect(args.hosts, session_timeout=args.ttl, connect_timeout=CONNECT_TIMEOUT_S) as zk:
        say("ready")
        lease = Lease(zk, args.path, b"NodeB", ttl=zk.session_timeout)
        await lease.acquire(timeout=MAX_LIFETIME_S)
        acquired = time.monotonic()
        await lease.release()
        return {"acquired": acquired, "ttl": zk.session_timeout}


def owner_kazoo(args: argparse.Namespace) -> None:
    zk = kazoo_client(args.hosts, timeout=args.ttl)
    zk.create(args.path, b"NodeA", ephemeral=True, makepath=True)
    say({"held": time.monotonic(), "ttl": zk._session_timeout / 1000})
    time.sleep(MAX_LIFETIME_S)  # until killed


def waiter_kazoo(args: argparse.Namespace) -> dict:
    """The seed's kazoo takeover: create the ephemeral node; if it exists, watch it and try
    again when it is deleted."""
    from kazoo.exceptions import NodeExistsError

    zk = kazoo_client(args.hosts, timeout=args.ttl)
    try:
        say("ready")
        give_up = time.monotonic() + MAX_LIFETIME_S
        while time.monotonic() < give_up:
            try:
                zk.create(args.path, b"NodeB", ephemeral=True, makepath=True)
                acquired = time.monotonic()
                zk.delete(args.path)
                return {"acquired": acquired, "ttl": zk._session_timeout / 1000}
            except NodeExistsError:
                changed = threading.Event()
                if zk.exists(args.path, watch=lambda _event, changed=changed: changed.set()) is not None:
                    changed.wait(max(0.0, give_up - time.monotonic()))
        return {"error": "never acquired"}
    finally:
        zk.stop()
        zk.close()


# --- writes through a leader kill -----------------------------------------------------------


async def writer_ours(args: argparse.Namespace) -> dict:
    """setData one at a time until told the kill time, then until the first write sent after
    it succeeds; reports that write's reply time."""
    from ccore.client import connect
    from ccore.znodes.errors import ZKError

    killed_at = math.inf
    acks: list[tuple[float, float]] = []
    async with connect(args.hosts, connect_timeout=CONNECT_TIMEOUT_S) as zk:
        await zk.ensure_path(args.path)

        async def listen() -> None:
            nonlocal killed_at
            line = await anyio.to_thread.run_sync(read_line)
            killed_at = float(line.split()[1]) if line.startswith("killed") else -math.inf

        say("ready")
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(listen)
            with anyio.move_on_after(MAX_LIFETIME_S):
                while True:
                    sent = time.monotonic()
                    try:
                        with anyio.move_on_after(1.0):
                            await zk.set(args.path, b"w")
                            acks.append((sent, time.monotonic()))
                    except ZKError:
                        await anyio.sleep(0.005)
                    if killed_at == -math.inf:
                        break
                    after = [ack for s, ack in acks if s > killed_at]
                    if after:
                        tasks.cancel_scope.cancel()
                        return {"resumed": after[0], "killed": killed_at}
            tasks.cancel_scope.cancel()
    return {"error": "writes did not resume"}


def writer_kazoo(args: argparse.Namespace) -> dict:
    from kazoo.exceptions import KazooException

    zk = kazoo_client(args.hosts, connection_retry=KAZOO_FAST_RECONNECT)
    try:
        zk.ensure_path(args.path)
        killed: list[float] = []

        def listen() -> None:
            line = read_line()
            killed.append(float(line.split()[1]) if line.startswith("killed") else -math.inf)

        threading.Thread(target=listen, daemon=True).start()
        say("ready")
        give_up = time.monotonic() + MAX_LIFETIME_S
        acks: list[tuple[float, float]] = []
        while time.monotonic() < give_up:
            sent = time.monotonic()
            try:
                zk.set(args.path, b"w")
                acks.append((sent, time.monotonic()))
            except KazooException:
                time.sleep(0.005)
            if killed:
                if killed[0] == -math.inf:
                    break
                after = [ack for s, ack in acks if s > killed[0]]
                if after:
                    return {"resumed": after[0], "killed": killed[0]}
        return {"error": "writes did not resume"}
    finally:
        zk.stop()
        zk.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.workers")
    p.add_argument("role", choices=["lock", "owner", "waiter", "writer"])
    p.add_argument("--client", choices=["ccore", "ccore-asyncio", "kazoo"], required=True)
    p.add_argument("--hosts", required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--ttl", type=float, default=5.0)
    args = p.parse_args(argv)
    ours = {
        "lock": lock_ours,
        "owner": owner_ours,
        "waiter": waiter_ours,
        "writer": writer_ours,
    }
    theirs = {
        "lock": lock_kazoo,
        "owner": owner_kazoo,
        "waiter": waiter_kazoo,
        "writer": writer_kazoo,
    }
    if args.client == "ccore":
        result = trio.run(ours[args.role], args)
    elif args.client == "ccore-asyncio":
        result = asyncio.run(ours[args.role](args))
    else:
        result = theirs[args.role](args)
    if result is not None:
        say(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
