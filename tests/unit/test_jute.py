"""Jute primitives: round trips, exact bytes, and every malformed input raising ProtocolError."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccore.znodes.acl import ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, Id
from ccore.znodes.jute import ProtocolError, Reader, Writer, pack_int, read_int_at
from ccore.znodes.stat import Stat

ints = st.integers(-(2**31), 2**31 - 1)
longs = st.integers(-(2**63), 2**63 - 1)
texts = st.text(st.characters(codec="utf-8"), max_size=24)
buffers = st.none() | st.binary(max_size=64)
stats = st.builds(Stat, longs, longs, longs, longs, ints, ints, ints, longs, ints, ints, longs)
acls = st.lists(st.builds(ACL, ints, st.builds(Id, texts, texts)), max_size=4).map(tuple)
string_vectors = st.lists(texts, max_size=6).map(tuple)

# (kind, strategy, write method, read method): reads return what was written, except that
# read_string folds a null ustring into "" (tested separately).
KINDS = {
    "int": (ints, Writer.write_int, Reader.read_int),
    "long": (longs, Writer.write_long, Reader.read_long),
    "bool": (st.booleans(), Writer.write_bool, Reader.read_bool),
    "buffer": (buffers, Writer.write_buffer, Reader.read_buffer),
    "ustring": (st.none() | texts, Writer.write_ustring, Reader.read_ustring),
    "string": (texts, Writer.write_ustring, Reader.read_string),
    "strings": (string_vectors, Writer.write_string_vector, Reader.read_string_vector),
    "stat": (stats, Writer.write_stat, Reader.read_stat),
    "acls": (acls, Writer.write_acl_vector, Reader.read_acl_vector),
}

values = st.one_of([st.tuples(st.just(kind), strategy) for kind, (strategy, _, _) in KINDS.items()])


def encode(items: list[tuple[str, object]]) -> bytes:
    w = Writer()
    for kind, value in items:
        KINDS[kind][1](w, value)
    return w.to_bytes()


def decode(data: bytes | memoryview, kinds: list[str]) -> list[object]:
    r = Reader(data)
    return [KINDS[kind][2](r) for kind in kinds]


@given(st.lists(values, max_size=12))
def test_sequence_round_trip(items: list[tuple[str, object]]) -> None:
    data = encode(items)
    kinds = [k for k, _ in items]
    assert decode(data, kinds) == [v for _, v in items]
    # A memoryview (how a server may hand over a slice of its receive buffer) reads the same.
    assert decode(memoryview(data), kinds) == [v for _, v in items]


@given(st.lists(values, min_size=1, max_size=6))
def test_truncation_at_every_offset_raises_protocol_error(items: list[tuple[str, object]]) -> None:
    data = encode(items)
    kinds = [k for k, _ in items]
    for cut in range(len(data)):
        try:
            decode(data[:cut], kinds)
        except ProtocolError:
            continue
        # Only a cut that leaves the sequence intact could parse, and jute has no such cut.
        pytest.fail(f"prefix of {cut}/{len(data)} bytes decoded")


@given(st.binary(max_size=64), st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=8))
def test_garbage_raises_only_protocol_error(data: bytes, kinds: list[str]) -> None:
    try:
        decode(data, kinds)
    except ProtocolError:
        pass


def test_exact_bytes() -> None:
    w = Writer()
    w.write_int(-1)
    w.write_long(0x0102030405060708)
    w.write_bool(True)
    w.write_bool(False)
    w.write_buffer(None)
    w.write_buffer(b"")
    w.write_buffer(b"\xff")
    w.write_ustring(None)
    w.write_ustring("é")
    w.write_string_vector(None)
    w.write_string_vector(("a",))
    w.write_acl_vector([ACL(31, Id("world", "anyone"))])
    assert w.to_bytes() == bytes.fromhex(
        "ffffffff"
        "0102030405060708"
        "01" "00"
        "ffffffff" "00000000" "00000001ff"
        "ffffffff" "00000002c3a9"
        "ffffffff" "00000001" "0000000161"
        "00000001" "0000001f" "00000005" + b"world".hex() + "00000006" + b"anyone".hex()
    )  # fmt: skip


def test_stat_is_68_bytes_in_jute_order() -> None:
    stat = Stat(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
    w = Writer()
    w.write_stat(stat)
    data = w.to_bytes()
    assert data == struct.pack(">qqqqiiiqiiq", *range(1, 12))
    assert len(data) == 68
    assert Reader(data).read_stat() == stat


def test_framed_writer_prefixes_length() -> None:
    w = Writer(framed=True)
    w.write_ustring("abc")
    assert w.to_bytes() == bytes.fromhex("0000000700000003") + b"abc"
    assert len(Writer(framed=True)) == 4
    assert Writer(framed=True).to_bytes() == b"\x00\x00\x00\x00"


def test_nulls_read_back() -> None:
    data = bytes.fromhex("ffffffff" * 5)
    r = Reader(data)
    assert r.read_buffer() is None
    assert r.read_ustring() is None
    assert r.read_string() == ""  # records fold a null ustring into ""
    assert r.read_vector_len() is None
    assert r.read_string_vector() == ()
    assert r.remaining == 0
    assert Reader(data).read_acl_vector() == ()


def test_the_open_acl_reads_as_the_shared_constant() -> None:
    def read(acl: tuple[ACL, ...]) -> tuple[ACL, ...]:
        w = Writer()
        w.write_acl_vector(acl)
        return Reader(w.to_bytes()).read_acl_vector()

    assert read(tuple(OPEN_ACL_UNSAFE)) is OPEN_ACL_UNSAFE  # the tree skips validating it
    for other in (READ_ACL_UNSAFE, OPEN_ACL_UNSAFE + READ_ACL_UNSAFE, (ACL(31, Id("world", "anyonf")),)):
        assert read(other) == other and read(other) is not OPEN_ACL_UNSAFE


def test_any_nonzero_byte_is_true() -> None:
    assert Reader(b"\x02").read_bool() is True
    assert Reader(b"\x00").read_bool() is False


@pytest.mark.parametrize(
    "data, read",
    [
        (b"", Reader.read_int),
        (b"\x00\x00\x00", Reader.read_int),
        (b"\x00" * 7, Reader.read_long),
        (b"", Reader.read_bool),
        (b"\x00" * 67, Reader.read_stat),
        (bytes.fromhex("fffffffe"), Reader.read_buffer),  # -2: only -1 means null
        (bytes.fromhex("80000000"), Reader.read_ustring),  # most negative int
        (bytes.fromhex("00000005") + b"abcd", Reader.read_buffer),  # past the end
        (bytes.fromhex("7fffffff"), Reader.read_ustring),  # huge: no allocation, just refused
        (bytes.fromhex("7fffffff"), Reader.read_string_vector),  # count beyond the data
        (bytes.fromhex("fffffffe"), Reader.read_acl_vector),
        (bytes.fromhex("00000002") + bytes.fromhex("00000000"), Reader.read_string_vector),
        (bytes.fromhex("000000010000001f00000005") + b"wor", Reader.read_acl_vector),
    ],
)
def test_malformed_input_raises_protocol_error(data: bytes, read: object) -> None:
    with pytest.raises(ProtocolError):
        read(Reader(data))  # type: ignore[operator]


def test_protocol_error_is_a_value_error() -> None:
    assert issubclass(ProtocolError, ValueError)


@pytest.mark.parametrize(
    "write, value",
    [
        (Writer.write_int, 2**31),
        (Writer.write_int, -(2**31) - 1),
        (Writer.write_long, 2**63),
        (Writer.write_ustring, "\ud800"),  # a lone surrogate has no UTF-8 form
        (Writer.write_stat, Stat(0, 0, 0, 0, 2**31, 0, 0, 0, 0, 0, 0)),
    ],
)
def test_unencodable_values_raise_protocol_error(write: object, value: object) -> None:
    with pytest.raises(ProtocolError):
        write(Writer(), value)  # type: ignore[operator]


def test_reader_offset_and_remaining() -> None:
    data = bytes.fromhex("0000000100000002ff")
    r = Reader(data, 4)
    assert r.offset == 4 and r.remaining == 5
    assert r.read_int() == 2
    assert r.offset == 8 and r.remaining == 1


def test_helpers() -> None:
    assert pack_int(-2) == bytes.fromhex("fffffffe")
    assert read_int_at(bytes.fromhex("0000000010"), 1) == 16
    with pytest.raises(ProtocolError):
        read_int_at(b"\x00\x00", 0)
    with pytest.raises(ProtocolError):
        pack_int(2**31)


def test_invalid_utf8_decodes_to_replacement_characters_as_java_does() -> None:
    # ZooKeeper then refuses such a path (U+FFFD is outside the valid path characters).
    assert Reader(bytes.fromhex("00000002") + b"\xc3\x28").read_ustring() == "\ufffd("
    assert Reader(bytes.fromhex("00000001") + b"\xed").read_string() == "\ufffd"  # truncated
    assert "\ufffd" in Reader(bytes.fromhex("00000003") + b"\xed\xa0\x80").read_ustring()  # surrogate
