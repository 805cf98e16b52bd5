"""Leader election among several processes: one leads at a time; when it goes, the next
candidate takes over at once (it was watching only its predecessor).

    python examples/leader_election.py                  # 3 candidates, each leads 2 s then quits
    python examples/leader_election.py --candidates 5 --hosts 127.0.0.1:2181

A leader's work runs in `election.leadership(cancel_on_suspend=True)`: it is cancelled at the
first sign that leadership may be lost, so two leaders never act at once.
"""

from __future__ import annotations

import argparse

import _common
import anyio

from ccore.client import connect
from ccore.recipes import Election, LostError


async def candidate(name: str, hosts: str, term_s: float) -> None:
    async with connect(hosts, session_timeout=4) as zk:
        election = Election(zk, "/election/scheduler", name.encode())
        _common.say(f"{name}: campaigning; leader now: {(await election.leader() or b'nobody').decode()}")
        try:
            async with election.leadership(cancel_on_suspend=True) as token:
                _common.say(f"{name}: LEADING (term token {token}); candidates {await election.candidates()}")
                await anyio.sleep(term_s)  # the leader's work
                _common.say(f"{name}: stepping down")
        except LostError as e:
            _common.say(f"{name}: leadership lost ({e.reason})")


async def observe(hosts: str, count: int) -> None:
    async with connect(hosts) as zk, Election(zk, "/election/scheduler").observe() as leaders:
        changes = 0
        async for leader in leaders:
            _common.say(f"observer: leader is {(leader or b'nobody').decode()}")
            changes += leader is not None
            if changes == count and leader is None:
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts")
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--term", type=float, default=2.0)
    parser.add_argument("--candidate", help=argparse.SUPPRESS)
    _common.add_loop_option(parser)
    args = parser.parse_args()
    _common.use_loop(args.loop)
    if args.candidate:
        _common.run(candidate, args.candidate, args.hosts, args.term)
        return
    with _common.server(args.hosts) as hosts:
        procs = [
            _common.spawn("leader_election.py", "--hosts", hosts, "--term", str(args.term), "--candidate", f"node-{i}")
            for i in range(args.candidates)
        ]

        async def run() -> None:
            async with anyio.create_task_group() as tasks:
                for p in procs:
                    tasks.start_soon(anyio.to_thread.run_sync, _relay, p)
                with anyio.fail_after(args.candidates * (args.term + 5) + 10):
                    await observe(hosts, args.candidates)

        _common.run(run)
        for p in procs:
            p.wait()


def _relay(proc) -> None:
    for line in proc.stdout:
        print(line, end="", flush=True)


if __name__ == "__main__":
    main()
