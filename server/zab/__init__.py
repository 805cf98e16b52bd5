"""Zab replication as a sans-I/O core: election, discovery, sync and broadcast.

Public API: `ZabPeer` (core.py), its contract `Ready`, `ReadOnlyStorage`, `Timing`, `Status`
(api.py), and the peer messages with their CBOR codec (messages.py).
"""

from .api import (
    Entry,
    NotLeader,
    ReadOnlyStorage,
    Ready,
    Role,
    SnapshotInstall,
    Status,
    Timing,
    ZabSafetyError,
    counter_of,
    epoch_of,
    make_zxid,
)
from .core import ZabPeer
from .messages import Message, MessageDecodeError, decode_message, encode_message

__all__ = [
    "Entry",
    "Message",
    "MessageDecodeError",
    "NotLeader",
    "ReadOnlyStorage",
    "Ready",
    "Role",
    "SnapshotInstall",
    "Status",
    "Timing",
    "ZabPeer",
    "ZabSafetyError",
    "counter_of",
    "decode_message",
    "encode_message",
    "epoch_of",
    "make_zxid",
]
