"""What travels on a peer link: Zab messages and the write router's frames, one byte of kind first.

The same codec runs in the servers and in the simulator's network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import cbor2

from ccore.znodes.acl import Id
from ccore.znodes.codec import decode_value, encode_value
from ccore.znodes.txn import Op

from .forwarding import CheckSession, ForwardWrite, RefuseWrite, SessionChecked, Touches
from .snap_stream import SnapBegin, SnapChunk, SnapStart
from .zab import decode_message, encode_message

# Peer frames: one byte of kind, then the body: a Zab message, or a frame of the write router
# (a forwarded write, a refusal of one, session touches, a session check and its answer) as
# CBOR, or a piece of a streamed snapshot (its beginning as CBOR, a chunk as the raw bytes).
# A batched snapshot starts with _SNAP_START (an older build, which does not know it, drops
# the link); _SNAP_BEGIN starts an older build's whole one.
_ZAB, _FORWARD, _TOUCH, _REFUSED, _CHECK, _CHECKED = b"Z", b"W", b"T", b"R", b"S", b"E"
_SNAP_START, _SNAP_BEGIN, _SNAP_CHUNK = b"A", b"B", b"C"
T = TypeVar("T")


def encode_peer_frame(message: Any) -> bytes:
    if isinstance(message, SnapChunk):
        return _SNAP_CHUNK + message.data
    if isinstance(message, SnapStart):
        return _SNAP_START + cbor2.dumps([message.zxid])
    if isinstance(message, SnapBegin):
        return _SNAP_BEGIN + cbor2.dumps([message.zxid, message.size])
    if isinstance(message, ForwardWrite):
        auth = [[i.scheme, i.id] for i in message.auth]
        return _FORWARD + cbor2.dumps([message.request_id, message.session, encode_value(message.op, Op), auth])
    if isinstance(message, Touches):
        return _TOUCH + cbor2.dumps([[list(pair) for pair in message.ages]])
    if isinstance(message, RefuseWrite):
        return _REFUSED + cbor2.dumps([message.request_id])
    if isinstance(message, CheckSession):
        return _CHECK + cbor2.dumps([message.request_id, message.session, message.password])
    if isinstance(message, SessionChecked):
        return _CHECKED + cbor2.dumps([message.request_id, message.expired])
    return _ZAB + encode_message(message)


def _checked(kind: type[T]) -> Callable[[Any], T]:
    """A check that a value from a peer's frame is exactly of `kind`. Frames are checked
    here, so that nothing malformed reaches the write router: a bad value is a decoding
    error, which drops that peer's link and nothing else."""

    def check(value: Any) -> T:
        if type(value) is not kind:
            raise ValueError(f"expected {kind.__name__}, got {value!r}")
        return value

    return check


_int, _bytes, _bool, _str = _checked(int), _checked(bytes), _checked(bool), _checked(str)


def decode_peer_frame(payload: bytes) -> Any:
    kind, body = payload[:1], payload[1:]
    if kind == _ZAB:
        return decode_message(body)
    if kind == _SNAP_CHUNK:
        return SnapChunk(body)
    if kind == _SNAP_START:
        (zxid,) = cbor2.loads(body)
        return SnapStart(_int(zxid))
    if kind == _SNAP_BEGIN:
        zxid, size = cbor2.loads(body)
        return SnapBegin(_int(zxid), _int(size))
    if kind == _FORWARD:
        request_id, session, op, auth = cbor2.loads(body)
        ids = tuple(Id(_str(s), _str(i)) for s, i in auth)
        return ForwardWrite(_int(request_id), _int(session), decode_value(op, Op), ids)
    if kind == _TOUCH:
        (ages,) = cbor2.loads(body)
        return Touches(tuple((_int(session), _int(age_ms)) for session, age_ms in ages))
    if kind == _REFUSED:
        (request_id,) = cbor2.loads(body)
        return RefuseWrite(_int(request_id))
    if kind == _CHECK:
        request_id, session, password = cbor2.loads(body)
        return CheckSession(_int(request_id), _int(session), _bytes(password))
    if kind == _CHECKED:
        request_id, expired = cbor2.loads(body)
        return SessionChecked(_int(request_id), _bool(expired))
    raise ValueError(f"unknown peer frame kind {kind!r}")
