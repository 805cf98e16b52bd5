"""Group membership: `Party` (who is here), on `Presence` (an ephemeral node kept present for
the duration of a block, made again after the session expires).

    from ccore.recipes import Party
    party = Party(zk, "/parties/workers", b"worker-7")
    async with party:                # we are a member for the block
        await party.members()        # [b"worker-3", b"worker-7", ...]
        len(await party.members())

Membership follows the session: a member that dies leaves when its session expires. A live
member whose session expired (a long partition) joins again on its new session, as Curator's
PersistentNode does, so `async with party` means "a member whenever we are connected".

Leaving deletes the node with a guaranteed delete (`_cleanup`): retried until the node or our
session is gone, in the background once we have waited a session timeout. Never given up on a
timer: when the quorum is down the session outlives the outage, and a node left behind would
keep a member that has left (a service instance that is gone) listed for as long as the
session lives. Entering again on the same path first waits for such a deletion in progress,
else the deletion would remove the node we just made ours.
"""

from __future__ import annotations

import contextlib
import logging
from types import TracebackType
from typing import Self

import anyio
import anyio.abc

from ccore.client import Client
from ccore.znodes.errors import NodeExistsError, NoNodeError, SessionExpiredError
from ccore.znodes.paths import parent

from . import _cleanup
from ._util import Background, child, ensure_dir, new_guid, retry_loss

log = logging.getLogger(__name__)


class Presence(Background):
    """Keep the ephemeral node `path` (with `data`) present while the block runs."""

    def __init__(self, zk: Client, path: str, data: bytes = b"") -> None:
        self.zk = zk
        self.path = path
        self.data = data
        self.created = anyio.Event()

    async def _create(self) -> None:
        try:
            await retry_loss(self.zk.create, self.path, self.data, ephemeral=True)
        except NoNodeError:
            await ensure_dir(self.zk, parent(self.path), container=False)
        except NodeExistsError:
            pass  # ours after a lost reply, a stale one of our last session, or a stranger's
        self.created.set()

    async def _keep(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        started = False
        while True:
            stat, watch = await retry_loss(lambda: self.zk.exists(self.path, watch=True))
            if stat is None:
                await self._create()
                continue  # look again (our watch fires for our own create, too)
            if stat.ephemeralOwner == self.zk.session_id and not started:
                started = True
                task_status.started()
            elif stat.ephemeralOwner != self.zk.session_id:
                log.info("%s: held by session %#x, waiting for it to go", self.path, stat.ephemeralOwner)
            try:
                await watch  # deleted, changed, or the session expired: look again
            except SessionExpiredError:
                log.info("%s: session expired; recreating on the new session", self.path)

    async def __aenter__(self) -> Self:
        await _cleanup.settle(self.zk, self.path)  # our last presence here gone first (module doc)
        await self._start(self._keep)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        try:
            return await self._stop(exc_type, exc, tb)
        finally:
            # Only a node of our current session is ours to delete (see _cleanup.delete_own).
            await _cleanup.delete_and_wait(self.zk, self.path, self.path, self.zk.session_id, self.zk.session_timeout)


class Party:
    """See the module docstring."""

    def __init__(self, zk: Client, path: str, identifier: bytes = b"") -> None:
        self.zk = zk
        self.path = path
        self.identifier = identifier
        self.node = child(path, f"{new_guid()}__party__")
        self._presence: Presence | None = None

    async def __aenter__(self) -> Self:
        self._presence = Presence(self.zk, self.node, self.identifier)
        await self._presence.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        presence, self._presence = self._presence, None
        assert presence is not None
        return await presence.__aexit__(exc_type, exc, tb)

    async def members(self) -> list[bytes]:
        """Every member's identifier (in no particular order)."""
        try:
            names = await retry_loss(self.zk.children, self.path)
        except NoNodeError:
            return []
        out = []
        for name in names:
            with contextlib.suppress(NoNodeError):
                data, _ = await retry_loss(self.zk.get, child(self.path, name))
                out.append(data)
        return out

    async def size(self) -> int:
        try:
            return len(await retry_loss(self.zk.children, self.path))
        except NoNodeError:
            return 0
