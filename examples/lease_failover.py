"""The seed scenario: NodeA owns "Migo Group" with a TTL; NodeA is killed; NodeB, waiting,
is told the name was deleted and takes over.

    python examples/lease_failover.py                 # the demo: two processes, one killed
    python examples/lease_failover.py --ttl 5 --hosts 127.0.0.1:2181
    python examples/lease_failover.py node NodeB --hosts 127.0.0.1:2181   # one node by hand

A node is a process that wants to own the name: it waits while someone else owns it, owns it
for as long as it lives (its client heartbeats), and its work is cancelled if it may lose it.
"""

from __future__ import annotations

import argparse
import signal
import time

import _common
import anyio

from ccore.client import connect
from ccore.recipes import Lease, LostError

NAME = "/leases/migo-group"


async def node(name: str, hosts: str, ttl: float) -> None:
    async with connect(hosts, session_timeout=ttl) as zk:
        while True:
            holder = await Lease.holder(zk, NAME)
            _common.say(f"{name}: waiting for Migo Group (owner: {holder.decode() if holder else 'nobody'})")
            try:
                async with Lease(zk, NAME, name.encode(), ttl=ttl) as lease:
                    _common.say(f"{name}: OWNS Migo Group (token {lease.token})")
                    while True:  # the work an owner does, each step fenced by the token
                        await anyio.sleep(1)
                        _common.say(
                            f"{name}: working as owner, safe until {lease.hold.deadline - anyio.current_time():.1f}s from now"
                        )
            except LostError as e:
                _common.say(f"{name}: lost Migo Group ({e.reason}); trying again")


def demo(hosts: str | None, ttl: float) -> None:
    with _common.server(hosts) as connect_string:
        a = _common.spawn("lease_failover.py", "node", "NodeA", "--hosts", connect_string, "--ttl", str(ttl))
        for line in a.stdout:  # type: ignore[union-attr]
            print(line, end="")
            if "OWNS" in line:
                break
        b = _common.spawn("lease_failover.py", "node", "NodeB", "--hosts", connect_string, "--ttl", str(ttl))
        for line in b.stdout:  # type: ignore[union-attr]
            print(line, end="")
            if "waiting" in line:
                break
        time.sleep(1.5)
        a.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        _common.say(f"demo: killed NodeA (pid {a.pid}) with SIGKILL; the lease lapses within the TTL ({ttl:g}s)")
        for line in b.stdout:  # type: ignore[union-attr]
            print(line, end="")
            if "OWNS" in line:
                delay = time.monotonic() - killed
                _common.say(f"demo: NodeB took over {delay:.2f}s after the kill = {delay / ttl:.2f} x TTL")
                break
        b.terminate()
        b.wait()
        a.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", nargs="?", choices=["demo", "node"], default="demo")
    parser.add_argument("name", nargs="?", default="NodeA")
    parser.add_argument("--hosts", help="a running ensemble (default: start a local ccore server)")
    parser.add_argument("--ttl", type=float, default=3.0, help="the lease TTL = session timeout (s)")
    _common.add_loop_option(parser)
    args = parser.parse_args()
    _common.use_loop(args.loop)
    if args.role == "node":
        if not args.hosts:
            parser.error("a node needs --hosts")
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
        _common.run(node, args.name, args.hosts, args.ttl)
    else:
        demo(args.hosts, args.ttl)


if __name__ == "__main__":
    main()
