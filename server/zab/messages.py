"""Zab peer messages: one frozen attrs record per message, and their CBOR encoding.

Every message travels on the one FIFO link between two peers (see core.py); the sender is
the link's other end, so no message names its sender. A message is encoded as a CBOR array
`[tag, field, ...]` in field order. Decoding checks the tag, the arity and every field's
exact type (an int is not a bool, bytes are not a str), so a corrupt frame raises one
`MessageDecodeError` and the driver drops that connection only.

Phases (Zab 1.0, as in ZooKeeper):
  election   Notification
  discovery  FollowerInfo / ObserverInfo -> LeaderInfo -> AckEpoch
  sync       Diff | Trunc | Snap, then Proposal*, then NewLeader -> Ack(epoch << 32) -> UpToDate
  broadcast  Proposal -> Ack -> Commit (followers); Inform (observers); Ping both ways
"""

from __future__ import annotations

import enum
from typing import Any

import attrs
import cbor2

from .config import Config


class PeerState(enum.StrEnum):
    """A peer's role as announced in election notifications (ZooKeeper's ServerState)."""

    LOOKING = "LOOKING"
    FOLLOWING = "FOLLOWING"
    LEADING = "LEADING"
    OBSERVING = "OBSERVING"


# -- election ---------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Notification:
    """A vote: the sender proposes `leader`, whose history is (`peer_epoch`, `zxid`).

    `round` is the sender's election round (ZooKeeper's logical clock); `state` is the
    sender's role. Non-LOOKING senders announce the leader they follow or are. `config` is
    the sender's active configuration: a receiver whose own is older adopts it.
    """

    leader: int
    zxid: int
    peer_epoch: int
    round: int
    state: PeerState
    config: Config | None = None


# -- discovery --------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class FollowerInfo:
    """A follower registers with the leader it elected, telling its accepted epoch.

    `registration` numbers the learner's registrations over the life of its process (one
    per time it starts following). A learner re-sends FOLLOWERINFO until it is answered, so
    a leader may receive copies after it has moved that learner on to sync; the number tells
    such a copy (ignored) from a learner that really started over (a fresh handshake).
    """

    accepted_epoch: int
    registration: int


@attrs.frozen(slots=True)
class ObserverInfo:
    """An observer registers with the leader; its epoch never counts toward a quorum.

    `registration`: as in FollowerInfo.
    """

    accepted_epoch: int
    registration: int


@attrs.frozen(slots=True)
class LeaderInfo:
    """The leader's new epoch, above the accepted epoch of a quorum.

    `registration` echoes the FOLLOWERINFO it answers: a learner takes only the answer to
    its current registration. `config` is the leader's active configuration, which the
    learner adopts (a joining server learns the ensemble's real membership here).
    `observer`: what the leader registers the learner as, by its view of the membership
    (the learner's may lack a pending change that makes it a voter).
    """

    epoch: int
    registration: int
    config: Config | None = None
    observer: bool = False


@attrs.frozen(slots=True)
class AckEpoch:
    """A learner accepted `LeaderInfo` and reports its history (current epoch, last zxid).

    `fresh` is False when the learner had already accepted this epoch before (a reconnect):
    such an ack never counts toward the leader's epoch quorum, since a learner may promise
    each epoch to one leader only (ZooKeeper sends -1 for the same reason). `epoch` and
    `registration` repeat the LEADERINFO it answers, so that a leader never counts an ack
    meant for an earlier epoch or handshake.
    """

    epoch: int
    registration: int
    current_epoch: int
    last_zxid: int
    fresh: bool


# -- sync -------------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Diff:
    """Keep your history up to `zxid`; the entries after it follow as Proposals."""

    zxid: int


@attrs.frozen(slots=True)
class Trunc:
    """Drop your history after `zxid` (it was never committed); entries after it follow."""

    zxid: int


@attrs.frozen(slots=True)
class Snap:
    """Replace your state by this snapshot of the committed state at `zxid`; entries follow.

    `config`: the leader's active configuration (committed, so safe to hold even if it is
    newer than the snapshot: the entries that follow may repeat it)."""

    zxid: int
    # Opaque to the core. On the leader, whatever its storage's `snapshot` returned; the
    # driver streams it (server/snap_stream.py) and hands the follower's core what it built
    # from the stream. Our driver does not carry `config` on that stream: the learner has
    # the leader's active configuration already, from LEADERINFO.
    data: bytes
    config: Config | None = None


@attrs.frozen(slots=True)
class NewLeader:
    """End of the sync stream: the leader's history up to `zxid` was sent, in `epoch`."""

    epoch: int
    zxid: int


@attrs.frozen(slots=True)
class UpToDate:
    """The learner is synced and may serve; everything up to `commit_zxid` is committed."""

    commit_zxid: int


# -- broadcast --------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Proposal:
    """One transaction of the leader's history (in the sync stream or broadcast)."""

    zxid: int
    payload: bytes


@attrs.frozen(slots=True)
class Ack:
    """The follower holds, fsynced, every entry of the leader's history up to `zxid`.

    Cumulative (one ack covers a batch). `zxid == epoch << 32` acknowledges NewLeader.
    """

    zxid: int


@attrs.frozen(slots=True)
class Commit:
    """Every entry up to `zxid` is committed (cumulative)."""

    zxid: int


@attrs.frozen(slots=True)
class Inform:
    """To observers: this entry is committed (observers never see proposals)."""

    zxid: int
    payload: bytes


@attrs.frozen(slots=True)
class Ping:
    """Heartbeat, leader -> learner and back; any message also counts as one."""


Message = (
    Notification
    | FollowerInfo
    | ObserverInfo
    | LeaderInfo
    | AckEpoch
    | Diff
    | Trunc
    | Snap
    | NewLeader
    | UpToDate
    | Proposal
    | Ack
    | Commit
    | Inform
    | Ping
)

# Wire tags: never renumber, only append.
_CLASSES: tuple[type[Message], ...] = (
    Notification,
    FollowerInfo,
    ObserverInfo,
    LeaderInfo,
    AckEpoch,
    Diff,
    Trunc,
    Snap,
    NewLeader,
    UpToDate,
    Proposal,
    Ack,
    Commit,
    Inform,
    Ping,
)
_TAG_OF = {cls: tag for tag, cls in enumerate(_CLASSES)}
_FIELDS = {cls: tuple(f.name for f in attrs.fields(cls)) for cls in _CLASSES}
_TYPES: dict[type, tuple[Any, ...]] = {}


class MessageDecodeError(ValueError):
    """A peer frame is not a valid message: drop that connection."""


def _field_types(cls: type) -> tuple[Any, ...]:
    types = _TYPES.get(cls)
    if types is None:
        hints = attrs.resolve_types(cls)
        types = _TYPES[cls] = tuple(f.type for f in attrs.fields(hints))
    return types


# The broadcast messages (several per write on every server) skip the generic field loop.
_PROPOSAL, _ACK, _COMMIT = _TAG_OF[Proposal], _TAG_OF[Ack], _TAG_OF[Commit]
_PING_FRAME = cbor2.dumps([_TAG_OF[Ping]])
_INT_MIN, _INT_END = -(1 << 63), 1 << 64


def encode_message(message: Message) -> bytes:
    """CBOR `[tag, field, ...]`."""
    cls = type(message)
    if cls is Proposal:
        return cbor2.dumps([_PROPOSAL, message.zxid, message.payload])  # type: ignore[union-attr]
    if cls is Ack:
        return cbor2.dumps([_ACK, message.zxid])  # type: ignore[union-attr]
    if cls is Commit:
        return cbor2.dumps([_COMMIT, message.zxid])  # type: ignore[union-attr]
    if cls is Ping:
        return _PING_FRAME
    fields = [getattr(message, name) for name in _FIELDS[cls]]
    for i, value in enumerate(fields):
        if isinstance(value, PeerState):
            fields[i] = value.value
        elif isinstance(value, Config):
            fields[i] = value.encode()
    return cbor2.dumps([_TAG_OF[cls], *fields])


_MAYBE_CONFIG = Config | None


def _check(cls: type, name: str, want: Any, value: Any) -> Any:
    if want == _MAYBE_CONFIG:
        if value is None:
            return None
        if type(value) is not bytes:
            raise MessageDecodeError(f"{cls.__name__}.{name}: expected an encoded configuration, got {repr(value)[:40]}")
        try:
            return Config.decode(value)
        except ValueError as exc:
            raise MessageDecodeError(f"{cls.__name__}.{name}: {exc}") from None
    if want is PeerState:
        if type(value) is not str:
            raise MessageDecodeError(f"{cls.__name__}.{name}: expected a state name, got {value!r}")
        try:
            return PeerState(value)
        except ValueError:
            raise MessageDecodeError(f"{cls.__name__}.{name}: unknown state {value!r}") from None
    if type(value) is not want:
        shown = repr(value)[:40]
        raise MessageDecodeError(f"{cls.__name__}.{name}: expected {want.__name__}, got {shown}")
    if want is int and not -(1 << 63) <= value < (1 << 64):
        raise MessageDecodeError(f"{cls.__name__}.{name}: {value} out of range")
    return value


def decode_message(frame: bytes) -> Message:
    """Parse one frame; raises MessageDecodeError for anything but a valid message."""
    try:
        doc = cbor2.loads(frame)
    except Exception as exc:  # noqa: BLE001 - cbor2 raises many types for bad input
        raise MessageDecodeError(f"not CBOR: {exc}") from None
    if not isinstance(doc, list) or not doc or type(doc[0]) is not int:
        raise MessageDecodeError(f"not a message array: {repr(doc)[:40]}")
    tag = doc[0]
    if len(doc) >= 2 and type(doc[1]) is int and _INT_MIN <= doc[1] < _INT_END:
        # Fast paths, exactly as strict as the generic checks below (which report errors).
        if tag == _ACK and len(doc) == 2:
            return Ack(doc[1])
        if tag == _COMMIT and len(doc) == 2:
            return Commit(doc[1])
        if tag == _PROPOSAL and len(doc) == 3 and type(doc[2]) is bytes:
            return Proposal(doc[1], doc[2])
    values = doc[1:]
    if not 0 <= tag < len(_CLASSES):
        raise MessageDecodeError(f"unknown message tag {tag}")
    cls = _CLASSES[tag]
    names = _FIELDS[cls]
    if len(values) != len(names):
        raise MessageDecodeError(f"{cls.__name__}: {len(values)} fields, expected {len(names)}")
    types = _field_types(cls)
    args = [_check(cls, n, t, v) for n, t, v in zip(names, types, values, strict=True)]
    return cls(*args)
