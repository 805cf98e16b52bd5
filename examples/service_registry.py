"""A service registry: instances of "api" register themselves (ephemeral nodes with their
address), a client follows them in a watched cache and spreads calls round-robin; when an
instance dies, it drops out of the cache once its session expires.

    python examples/service_registry.py                 # 3 instances, one killed
    python examples/service_registry.py --hosts 127.0.0.1:2181
"""

from __future__ import annotations

import argparse
import signal

import _common
import anyio

from ccore.client import connect
from ccore.recipes import ServiceInstance, ServiceRegistry


async def instance(port: int, hosts: str) -> None:
    async with connect(hosts, session_timeout=2) as zk:
        me = ServiceInstance("api", address="127.0.0.1", port=port, payload={"version": "1.4"})
        async with ServiceRegistry(zk).registered(me):
            _common.say(f"api instance on port {port}: registered as {me.id[:8]}")
            await anyio.sleep_forever()


async def client(hosts: str, procs: list) -> None:
    async with connect(hosts) as zk, ServiceRegistry(zk).cache("api") as cache:
        await cache.wait_for(lambda xs: len(xs) == len(procs), timeout=20)
        _common.say(f"client: {len(cache.instances)} instances: {sorted(i.port for i in cache.instances)}")
        for _ in range(4):
            chosen = cache.choose("round_robin")
            _common.say(f"client: calling api at {chosen.address}:{chosen.port}")
        victim = procs[0]
        victim.send_signal(signal.SIGKILL)
        _common.say(f"client: killed one instance (pid {victim.pid}); waiting for its session to expire")
        await cache.wait_for(lambda xs: len(xs) == len(procs) - 1, timeout=20)
        _common.say(f"client: {len(cache.instances)} instances left: {sorted(i.port for i in cache.instances)}")
        for _ in range(2):
            chosen = cache.choose("random")
            _common.say(f"client: calling api at {chosen.address}:{chosen.port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--instance-port", type=int, help=argparse.SUPPRESS)
    _common.add_loop_option(parser)
    args = parser.parse_args()
    _common.use_loop(args.loop)
    if args.instance_port:
        _common.run(instance, args.instance_port, args.hosts)
        return
    with _common.server(args.hosts) as hosts:
        procs = [
            _common.spawn("service_registry.py", "--hosts", hosts, "--instance-port", str(8000 + i))
            for i in range(args.instances)
        ]
        try:
            _common.run(client, hosts, procs)
        finally:
            for p in procs:
                p.kill()
                p.wait()
                print(p.stdout.read(), end="")


if __name__ == "__main__":
    main()
