"""A contender in its own process, for the multi-process recipe tests.

    python -m tests.recipes.worker lock|semaphore|lease HOSTS ROOT ROUNDS [--hold S] [--ttl S]
                                   [--backend trio|asyncio]

The same `main` runs under `trio.run(main, args)` or `asyncio.run(main(args))`, as a user's
program on either loop would.

Prints one JSON line per hold as it starts ({"event": "start", "token", "t"}) and as it ends
({"event": "end", ...}), flushed at once, so a test that kills this process still knows what
it held. Times are time.monotonic(), one clock for every process of the machine (Linux).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

import anyio
import sniffio
import trio

from ccore.client import connect
from ccore.recipes import Lease, Lock, Semaphore


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "pid": os.getpid(), "t": time.monotonic(), **fields}), flush=True)


async def main(args: argparse.Namespace) -> None:
    async with connect(args.hosts, chroot=args.root, session_timeout=args.ttl) as zk:
        emit("ready", session=zk.session_id, backend=sniffio.current_async_library())
        for _ in range(args.rounds):
            if args.recipe == "lock":
                hold = Lock(zk, "/lock", str(os.getpid()).encode())
            elif args.recipe == "semaphore":
                hold = Semaphore(zk, "/sem", max_leases=2)
            else:
                hold = Lease(zk, "/lease", str(os.getpid()).encode())
            async with hold as token:
                token = getattr(token, "token", token)
                emit("start", token=token)
                await anyio.sleep(args.hold)
                emit("end", token=token)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("recipe", choices=["lock", "semaphore", "lease"])
    parser.add_argument("hosts")
    parser.add_argument("root")
    parser.add_argument("rounds", type=int)
    parser.add_argument("--hold", type=float, default=0.002)
    parser.add_argument("--ttl", type=float, default=4.0)
    parser.add_argument("--backend", choices=["trio", "asyncio"], default="trio")
    args = parser.parse_args()
    if args.backend == "asyncio":
        asyncio.run(main(args))
    else:
        trio.run(main, args)
    sys.exit(0)
