"""The transaction codec: exact round trips of every op, deterministic bytes, a pinned format,
and old or malformed payloads refused with TxnDecodeError."""

from __future__ import annotations

import cbor2
import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from ccore.znodes.acl import ACL, CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, Id
from ccore.znodes.codec import (
    TXN_FORMAT,
    TxnDecodeError,
    decode_txn,
    decode_value,
    encode_txn,
    encode_value,
)
from ccore.znodes.tree import SessionInfo
from ccore.znodes.txn import (
    Check,
    CloseSession,
    Create,
    CreateSession,
    Delete,
    DeleteContainer,
    Multi,
    NoOp,
    Op,
    SetACL,
    SetData,
    Txn,
)

texts = st.text(st.characters(codec="utf-8"), max_size=20)
ints = st.integers()  # CBOR carries any int (bignums past 64 bits)
datas = st.none() | st.binary(max_size=64) | st.binary(min_size=70_000, max_size=70_000)
ids = st.builds(Id, texts, texts)
acls = st.sampled_from([OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, CREATOR_ALL_ACL, ()]) | st.lists(
    st.builds(ACL, ints, ids), max_size=4
).map(tuple)

simple_ops = st.one_of(
    st.builds(Create, texts, datas, acls, ints, ints, st.booleans(), st.booleans()),
    st.builds(Delete, texts, ints),
    st.builds(DeleteContainer, texts),
    st.builds(SetData, texts, datas, ints),
    st.builds(SetACL, texts, acls, ints),
    st.builds(Check, texts, ints),
    st.builds(CreateSession, ints, st.binary(max_size=16)),
    st.just(CloseSession()),
    st.just(NoOp()),
)
# Multis nest (apply refuses a multi inside a multi, but the codec carries whatever it is given).
ops = st.recursive(simple_ops, lambda inner: st.lists(inner, max_size=5).map(lambda o: Multi(tuple(o))), max_leaves=12)
txns = st.builds(Txn, ints, ints, ints, ops, st.lists(ids, max_size=3).map(tuple), ints, ints)


@given(txns)
@settings(max_examples=300, deadline=None)
def test_every_txn_round_trips_exactly(txn: Txn) -> None:
    payload = encode_txn(txn)
    back = decode_txn(payload)
    assert back == txn
    # Exactly: the same types too (True is not 1, bytes not bytearray, tuples not lists).
    assert repr(back) == repr(txn)
    # Deterministic: a decoded copy (fresh objects throughout) encodes to the same bytes.
    assert encode_txn(back) == payload


@given(ops)
@settings(max_examples=200, deadline=None)
def test_ops_round_trip_through_encode_value(op: Op) -> None:
    back = decode_value(encode_value(op, Op), Op)
    assert back == op and repr(back) == repr(op)
    assert decode_value(encode_value(op, type(op)), type(op)) == op


def test_other_records_still_go_through_the_converter() -> None:
    info = SessionInfo(4000, b"pw")
    assert decode_value(encode_value(info, SessionInfo), SessionInfo) == info


def test_decode_value_checks_the_class_asked_for() -> None:
    with pytest.raises(TxnDecodeError, match="expected Delete, got Check"):
        decode_value(encode_value(Check("/a", 1), Op), Delete)


def test_format_is_pinned() -> None:
    # These bytes are in logs on disk: a change here is a new TXN_FORMAT (and segment version).
    txn = Txn(0x1_0000_0002, 1_700_000_000_000, 0x42, Create("/a", b"v", OPEN_ACL_UNSAFE, 2), (Id("ip", "127.0.0.1"),), 3, 99)
    assert encode_txn(txn).hex() == (
        "88021b00000001000000021b0000018bcfe56800184203186382626970693132372e302e302e318800622f61417683181f65776f72"
        "6c6466616e796f6e650220f4f4"
    )
    multi = Txn(7, 8, 9, Multi((SetData("/a", None, -1), Delete("/b", 3), Check("/c", 0))), ())
    assert encode_txn(multi).hex() == "88020708090000808206838403622f61f6208301622f62038305622f6300"


def test_decoded_acls_and_identities_are_shared() -> None:
    txn = Txn(1, 2, 3, Create("/a", b"", OPEN_ACL_UNSAFE, 0), (Id("ip", "10.0.0.1"),))
    first, second = decode_txn(encode_txn(txn)), decode_txn(encode_txn(txn))
    assert first.op.acl is OPEN_ACL_UNSAFE  # the tree skips validating the open ACL by identity
    assert first.auth is second.auth


def test_a_format_1_transaction_is_refused_clearly() -> None:
    old = cbor2.dumps(
        {
            "zxid": 5, "time_ms": 6, "session": 7, "auth": [], "origin": 0, "request_id": 0,
            "op": {"path": "/a", "version": -1, "op": "Delete"},
        }
    )  # fmt: skip
    with pytest.raises(TxnDecodeError, match="format 1 .* older build"):
        decode_txn(old)


@pytest.mark.parametrize(
    "items",
    [
        [TXN_FORMAT + 1, 1, 2, 3, 0, 0, [], [9]],  # a newer format
        [TXN_FORMAT, 1, 2, 3, 0, 0, [], [99]],  # unknown op tag
        [TXN_FORMAT, 1, 2, 3, 0, 0, [], [1, "/a"]],  # Delete without its version
        [TXN_FORMAT, 1, 2, 3, 0, 0, [], [8, "extra"]],  # CloseSession has no fields
        [TXN_FORMAT, 1, 2, 3, 0, 0, ["ip"], [9]],  # an identity without its id
        [TXN_FORMAT, 1, 2, 3, 0, 0, [], [0, "/a", b"", [31, "world"], 0, -1, False, False]],  # short ACL
        [TXN_FORMAT, 1, 2, 3, 0, 0, [], [6, [[1, "/a", 0], "x"]]],  # a multi holding a non-op
        [TXN_FORMAT, 1, 2, 3, 0, 0, []],  # no op
        "not an array",
    ],
)
def test_malformed_transactions_raise_txn_decode_error(items: object) -> None:
    with pytest.raises(TxnDecodeError):
        decode_txn(cbor2.dumps(items))


@given(st.binary(max_size=64))
@settings(max_examples=300, deadline=None)
def test_garbage_is_a_txn_decode_error_or_a_txn(payload: bytes) -> None:
    try:
        txn = decode_txn(payload)
    except TxnDecodeError:
        return
    assert isinstance(txn, Txn)
