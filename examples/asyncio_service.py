"""A web service on plain asyncio, shaped as a FastAPI app would be: each instance connects and
registers itself at startup, and its request handler takes a lock around the critical section.

    python examples/asyncio_service.py                  # 3 instances, 60 payments
    python examples/asyncio_service.py --instances 4 --payments 200 --hosts 127.0.0.1:2181

Each instance is a process running `asyncio.run(...)`: an HTTP server (asyncio.start_server,
standing in for FastAPI/uvicorn) that answers `POST /pay`. Paying reads the shared ledger (a
file that refuses a write with a fencing token below the highest it has seen), waits a moment
(a slow storage), and writes it back -- under `Lock(zk, "/locks/ledger")`, so no payment is
lost however the requests interleave. A client finds the instances in the registry's watched
cache and sends the payments to them round-robin, 10 at a time; at the end the ledger is exact.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
from pathlib import Path

import _common

from ccore.client import Client, connect
from ccore.recipes import Lock, ServiceInstance, ServiceRegistry

SERVICE = "billing"
CONCURRENT = 10
TIMEOUT_S = 30.0


class Ledger:
    """A toy storage: a count of payments, and the highest fencing token written with."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict:
        return json.loads(self.path.read_text())

    def write(self, state: dict, token: int) -> None:
        if token < self.read()["token"]:
            raise PermissionError(f"stale fencing token {token}")
        self.path.write_text(json.dumps({**state, "token": token}))


# --- an instance: what the FastAPI app's lifespan and route would be ----------------------------


async def pay(zk: Client, ledger: Ledger) -> dict:
    """The request handler's body: the critical section under the lock."""
    async with Lock(zk, "/locks/ledger", timeout=TIMEOUT_S) as token:
        state = ledger.read()
        await asyncio.sleep(0.002)  # a slow storage: without the lock, payments would be lost
        state["payments"] += 1
        ledger.write(state, token)
        return {"payments": state["payments"], "token": token}


async def handle(zk: Client, ledger: Ledger, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Just enough HTTP/1.1 for the demo: one request per connection."""
    with contextlib.closing(writer):
        request = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass  # headers
        if request.startswith(b"POST /pay "):
            status, body = "200 OK", json.dumps(await pay(zk, ledger)).encode()
        else:
            status, body = "404 Not Found", b"{}"
        writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        await writer.drain()


async def instance(hosts: str, port: int, ledger_path: str) -> None:
    ledger = Ledger(Path(ledger_path))
    # Startup (FastAPI: the lifespan): connect, serve, then register, so that a client that
    # finds us can call us. Shutdown runs the blocks' exits in reverse.
    async with connect(hosts, session_timeout=5) as zk:
        server = await asyncio.start_server(lambda r, w: handle(zk, ledger, r, w), "127.0.0.1", port)
        async with server:
            me = ServiceInstance(SERVICE, address="127.0.0.1", port=port)
            async with ServiceRegistry(zk).registered(me):
                _common.say(f"instance on port {port}: registered")
                await server.serve_forever()


# --- the demo: instances, a client, the check -----------------------------------------------------


async def call(address: str, port: int) -> dict:
    reader, writer = await asyncio.open_connection(address, port)
    with contextlib.closing(writer):
        writer.write(b"POST /pay HTTP/1.1\r\nHost: billing\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        response = await reader.read()
    head, _, body = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{address}:{port} answered {head.splitlines()[0]!r}")
    return json.loads(body)


async def client(hosts: str, instances: int, payments: int) -> list[int]:
    async with connect(hosts) as zk, ServiceRegistry(zk).cache(SERVICE) as cache:
        await cache.wait_for(lambda found: len(found) == instances, timeout=TIMEOUT_S)
        _common.say(f"client: {instances} instances registered: ports {sorted(i.port for i in cache.instances)}")
        tokens: list[int] = []
        for start in range(0, payments, CONCURRENT):
            batch = [cache.choose("round_robin") for _ in range(min(CONCURRENT, payments - start))]
            async with asyncio.timeout(TIMEOUT_S):
                results = await asyncio.gather(*(call(i.address, i.port) for i in batch))
            tokens += [r["token"] for r in results]
        return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--payments", type=int, default=60)
    parser.add_argument("--instance", nargs=2, metavar=("PORT", "LEDGER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    _common.use_loop("asyncio")  # this example is about asyncio
    if args.instance:
        _common.run(instance, args.hosts, int(args.instance[0]), args.instance[1])
        return
    with _common.server(args.hosts) as hosts, tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "ledger.json"
        ledger.write_text(json.dumps({"payments": 0, "token": 0}))
        procs = [
            _common.spawn("asyncio_service.py", "--hosts", hosts, "--instance", str(_common.free_port()), str(ledger))
            for _ in range(args.instances)
        ]
        try:
            tokens = asyncio.run(client(hosts, args.instances, args.payments))
        finally:
            for p in procs:
                p.terminate()
                p.wait()
                print(p.stdout.read(), end="")
        final = Ledger(ledger).read()["payments"]
        _common.say(f"ledger = {final} (expected {args.payments}); {len(set(tokens))} distinct fencing tokens")
        if final != args.payments:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
