"""How a write travels through a server: the `Committer` protocol and its outcomes.

A connection, the session manager and the reaper hand writes to a `Committer` and hear back
exactly once per write: `Committed` once the transaction is durable and applied here, or
`Abandoned` when this server can no longer tell whether it will commit (leadership changed,
the write was forwarded to a server that no longer leads, the server is stopping). Two
committers exist: `LocalCommitter` (a standalone server's group commit) and `Replicator`
(Zab). Both apply committed transactions through a `StateMachine` (`Applier`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import attrs

from ccore.znodes.acl import Id
from ccore.znodes.tree import DataTree
from ccore.znodes.txn import Op, Result, Txn


@attrs.define(slots=True)
class Committed:
    txn: Txn
    result: Result


@attrs.define(slots=True)
class Abandoned:
    """The write may or may not commit; this server will not say which."""

    reason: str


Outcome = Committed | Abandoned
OnDone = Callable[[Outcome], None]


class StateMachine(Protocol):
    """What a committer applies committed transactions through, in zxid order."""

    def apply(self, txn: Txn, on_done: OnDone | None) -> None:
        """Apply one committed transaction; `on_done(Committed(...))` when it is applied."""
        ...

    def replace_tree(self, tree: DataTree, zxid: int) -> None:
        """A SNAP sync installed another server's tree (nothing is served meanwhile)."""
        ...

    def leadership_lost(self) -> None:
        """The leader changed: client connections end; they reconnect and resume."""
        ...

    def became_leader(self) -> None:
        """This server leads now: it starts expiring sessions and reaping nodes."""
        ...


class Committer(Protocol):
    """Orders writes into transactions and commits them (see the module docstring)."""

    @property
    def serving(self) -> bool:
        """Whether clients may be served (an ensemble member between leaders is not)."""
        ...

    @property
    def read_only(self) -> bool:
        """Whether this member, cut off from its quorum, serves read-only clients now
        (readonlymode.enabled; never while `serving`)."""
        ...

    @property
    def mode(self) -> str:
        """standalone, leader, follower, observer, read-only or looking (as `srvr` reports it)."""
        ...

    @property
    def owns_sessions(self) -> bool:
        """Whether this server expires sessions and reaps nodes: standalone, or the leader."""
        ...

    @property
    def outstanding(self) -> int:
        """Writes submitted here and not yet proposed or committed."""
        ...

    def submit(self, session: int, op: Op, auth: tuple[Id, ...], on_done: OnDone | None) -> None:
        """Queue a write; `on_done` runs exactly once with its outcome."""
        ...

    def session_touched(self, session: int, now: float) -> None:
        """A client of `session` was heard from here (a follower relays it to the leader)."""
        ...

    def check_session(self, session: int, password: bytes, on_verdict: Callable[[bool], None]) -> None:
        """Ask the session owner (the leader) whether a session unknown here expired:
        `on_verdict(True)` only if it is sure; only asked where `owns_sessions` is false."""
        ...

    def metrics(self) -> list[tuple[str, Any]]:
        """Extra `mntr` lines."""
        ...

    async def run(self, *, task_status: Any = ...) -> None:
        """Commit until cancelled; every write still pending then is Abandoned."""
        ...


def abandon_all(callbacks: list[OnDone | None], reason: str) -> None:
    """Tell each waiting write it was abandoned (each exactly once: the caller forgets them)."""
    outcome = Abandoned(reason)
    for on_done in callbacks:
        if on_done is not None:
            on_done(outcome)
