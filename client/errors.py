"""Errors raised by the client itself (not sent by a server), in the znodes error family.

A server's error codes arrive as the znodes exceptions (`NoNodeError('/a')`, ...); these add
what only a client can say: it is closed, it could not reach any server, an argument was bad.
Timeouts are the built-in `TimeoutError` (anyio's `fail_after`, on Trio and asyncio alike).
The whole hierarchy, with when each is raised, is the "Errors" table of client/README.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from ccore.znodes.errors import BadArgumentsError, Code, ConnectionLossError, ZKError


class ClientClosedError(ZKError):
    """The client was closed (or its authentication failed): no request can be sent any more.

    Not a ConnectionLossError, so a retry loop does not retry it.
    """

    code = Code.CONNECTION_LOSS

    def __init__(self, path: str | None = None, message: str | None = None) -> None:
        super().__init__(path, message or "client is closed")


class NoServerError(ConnectionLossError):
    """No server of the connection string could be reached before the connect timeout.

    `attempts` lists `host:port -> why` for the last try of each host.
    """

    def __init__(self, hosts: str, timeout_s: float, attempts: Sequence[str] = ()) -> None:
        why = "; ".join(attempts) if attempts else "no attempt finished"
        self.attempts = tuple(attempts)
        super().__init__(None, f"could not connect to {hosts} within {timeout_s:g}s ({why})")


class InvalidArgumentError(BadArgumentsError, ValueError):
    """A bad path or argument, refused before anything was sent (also a ValueError)."""


def invalid_path(path: object, why: str) -> InvalidArgumentError:
    return InvalidArgumentError(repr(path) if not isinstance(path, str) else path, f"invalid path ({why})")
