"""Peer messages: every type round-trips through CBOR; malformed frames raise one error."""

from __future__ import annotations

import attrs
import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccore.server.zab import messages as m
from ccore.server.zab.config import Config
from ccore.server.zab.messages import (
    MessageDecodeError,
    PeerState,
    decode_message,
    encode_message,
)

ZXIDS = st.integers(min_value=0, max_value=(1 << 64) - 1)
EPOCHS = st.integers(min_value=0, max_value=(1 << 32) - 1)
REGISTRATIONS = st.integers(min_value=0, max_value=(1 << 63) - 1)
IDS = st.frozensets(st.integers(1, 255), max_size=7)
CONFIGS = st.none() | st.builds(
    lambda version, voters, observers, data: Config(version, voters | {1}, observers - voters - {1}, data),
    ZXIDS,
    IDS,
    IDS,
    st.binary(max_size=64),
)

STRATEGIES = {
    m.Notification: st.builds(
        m.Notification, st.integers(1, 255), ZXIDS, EPOCHS, st.integers(0, 1 << 40), st.sampled_from(PeerState), CONFIGS
    ),
    m.FollowerInfo: st.builds(m.FollowerInfo, EPOCHS, REGISTRATIONS),
    m.ObserverInfo: st.builds(m.ObserverInfo, EPOCHS, REGISTRATIONS),
    m.LeaderInfo: st.builds(m.LeaderInfo, EPOCHS, REGISTRATIONS, CONFIGS, st.booleans()),
    m.AckEpoch: st.builds(m.AckEpoch, EPOCHS, REGISTRATIONS, EPOCHS, ZXIDS, st.booleans()),
    m.Diff: st.builds(m.Diff, ZXIDS),
    m.Trunc: st.builds(m.Trunc, ZXIDS),
    m.Snap: st.builds(m.Snap, ZXIDS, st.binary(), CONFIGS),
    m.NewLeader: st.builds(m.NewLeader, EPOCHS, ZXIDS),
    m.UpToDate: st.builds(m.UpToDate, ZXIDS),
    m.Proposal: st.builds(m.Proposal, ZXIDS, st.binary()),
    m.Ack: st.builds(m.Ack, ZXIDS),
    m.Commit: st.builds(m.Commit, ZXIDS),
    m.Inform: st.builds(m.Inform, ZXIDS, st.binary()),
    m.Ping: st.builds(m.Ping),
}


def test_every_message_type_has_a_strategy() -> None:
    assert set(STRATEGIES) == set(m._CLASSES)


@given(st.one_of(*STRATEGIES.values()))
def test_round_trip(message: m.Message) -> None:
    assert decode_message(encode_message(message)) == message


def test_encoding_is_a_compact_array() -> None:
    frame = encode_message(m.Proposal(0x100000001, b"txn"))
    assert cbor2.loads(frame) == [m._CLASSES.index(m.Proposal), 0x100000001, b"txn"]
    note = cbor2.loads(encode_message(m.Notification(1, 2, 3, 4, PeerState.LEADING)))
    assert note[-2:] == ["LEADING", None]  # a state by name; no configuration told


@pytest.mark.parametrize(
    "frame, why",
    [
        (b"", "not CBOR"),
        (b"\xff\xff", "not CBOR|not a message array"),  # cbor2 before 5.5 reads 0xff as a break marker
        (cbor2.dumps({"a": 1}), "not a message array"),
        (cbor2.dumps([]), "not a message array"),
        (cbor2.dumps(["Ack", 1]), "not a message array"),
        (cbor2.dumps([99, 1]), "unknown message tag"),
        (cbor2.dumps([-1, 1]), "unknown message tag"),
        (cbor2.dumps([m._CLASSES.index(m.Ack)]), "0 fields, expected 1"),
        (cbor2.dumps([m._CLASSES.index(m.Ack), 1, 2]), "2 fields, expected 1"),
        (cbor2.dumps([m._CLASSES.index(m.Ack), "1"]), "expected int"),
        (cbor2.dumps([m._CLASSES.index(m.Ack), True]), "expected int"),
        (cbor2.dumps([m._CLASSES.index(m.Ack), 1.0]), "expected int"),
        (cbor2.dumps([m._CLASSES.index(m.Ack), 1 << 70]), "out of range"),
        (cbor2.dumps([m._CLASSES.index(m.Proposal), 1, "text"]), "expected bytes"),
        (cbor2.dumps([m._CLASSES.index(m.AckEpoch), 1, 1, 1, 2, 1]), "expected bool"),
        (cbor2.dumps([m._CLASSES.index(m.Notification), 1, 2, 3, 4, "BOSSING", None]), "unknown state"),
        (cbor2.dumps([m._CLASSES.index(m.Notification), 1, 2, 3, 4, 0, None]), "expected a state name"),
        (cbor2.dumps([m._CLASSES.index(m.LeaderInfo), 1, 2, b"\x80", False]), "not a configuration"),
        (cbor2.dumps([m._CLASSES.index(m.LeaderInfo), 1, 2, cbor2.dumps([0, [], [], b""]), False]), "at least one voter"),
        (cbor2.dumps([m._CLASSES.index(m.LeaderInfo), 1, 2, "config", False]), "expected an encoded configuration"),
    ],
)
def test_malformed_frames_raise_one_error(frame: bytes, why: str) -> None:
    with pytest.raises(MessageDecodeError, match=why):
        decode_message(frame)


@given(st.binary(max_size=64))
def test_random_bytes_never_raise_anything_else(frame: bytes) -> None:
    try:
        decode_message(frame)
    except MessageDecodeError:
        pass


@given(st.one_of(*STRATEGIES.values()), st.data())
def test_truncated_frames_are_refused(message: m.Message, data: st.DataObject) -> None:
    frame = encode_message(message)
    cut = data.draw(st.integers(0, len(frame) - 1))
    with pytest.raises(MessageDecodeError):
        decode_message(frame[:cut])


def test_messages_are_frozen() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        m.Ack(1).zxid = 2  # type: ignore[misc]
