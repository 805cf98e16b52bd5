"""Jute, ZooKeeper's binary record encoding: a `Writer` that appends and a `Reader` that parses.

Big-endian ints (4 bytes) and longs (8 bytes), booleans as one byte, buffers and ustrings as an
int length then the bytes (-1 for null), vectors as an int count then the items (-1 for null).
This is the server's hot path: every struct is compiled once, reads use `unpack_from` at an
offset (no slicing to parse a number), and malformed input raises `ProtocolError`, never a
struct/unicode/index error that a caller would have to know about.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from .acl import ACL, OPEN_ACL_UNSAFE, Id
from .stat import Stat

__all__ = ["ProtocolError", "Reader", "Writer", "pack_int", "read_int_at"]


class ProtocolError(ValueError):
    """Bytes that are not a valid jute record or frame: the connection cannot be trusted."""


_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
# Stat is 11 fixed-width fields: one pack/unpack instead of eleven.
_STAT = struct.Struct(">qqqqiiiqiiq")
_STAT_SIZE = _STAT.size  # 68

# Pre-encoded constants so the common cases append without packing.
_NULL = _INT.pack(-1)
_TRUE = b"\x01"
_FALSE = b"\x00"


class Writer:
    """Appends jute-encoded values to a bytearray.

    With `framed=True` four bytes are reserved up front and `to_bytes()` fills them with the
    payload length, so a reply is built in one buffer with no final concatenation.
    """

    __slots__ = ("_buf", "_framed")

    def __init__(self, framed: bool = False) -> None:
        self._framed = framed
        self._buf = bytearray(4) if framed else bytearray()

    def to_bytes(self) -> bytes:
        """The encoded bytes (length-prefixed if the writer was made `framed`)."""
        buf = self._buf
        if self._framed:
            _INT.pack_into(buf, 0, len(buf) - 4)
        return bytes(buf)

    def __len__(self) -> int:
        return len(self._buf)

    def write_raw(self, data: bytes) -> None:
        """Append bytes already jute-encoded (a nested record encoded elsewhere)."""
        self._buf += data

    def write_int(self, value: int) -> None:
        try:
            self._buf += _INT.pack(value)
        except struct.error:
            raise ProtocolError(f"int out of range: {value!r}") from None

    def write_long(self, value: int) -> None:
        try:
            self._buf += _LONG.pack(value)
        except struct.error:
            raise ProtocolError(f"long out of range: {value!r}") from None

    def write_bool(self, value: bool) -> None:
        self._buf += _TRUE if value else _FALSE

    def write_buffer(self, value: bytes | bytearray | memoryview | None) -> None:
        if value is None:
            self._buf += _NULL
            return
        self._buf += _INT.pack(len(value))
        self._buf += value

    def write_ustring(self, value: str | None) -> None:
        if value is None:
            self._buf += _NULL
            return
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError as e:  # lone surrogates cannot travel as UTF-8
            raise ProtocolError(f"string is not encodable as UTF-8: {value!r}") from e
        self._buf += _INT.pack(len(data))
        self._buf += data

    def write_vector_len(self, count: int | None) -> None:
        """The count that opens a vector; the caller then writes each item."""
        self._buf += _NULL if count is None else _INT.pack(count)

    def write_string_vector(self, values: Sequence[str] | None) -> None:
        if values is None:
            self._buf += _NULL
            return
        self._buf += _INT.pack(len(values))
        for v in values:
            self.write_ustring(v)

    def write_stat(self, stat: Stat) -> None:
        s = stat
        try:
            self._buf += _STAT.pack(
                s.czxid, s.mzxid, s.ctime, s.mtime, s.version, s.cversion, s.aversion,
                s.ephemeralOwner, s.dataLength, s.numChildren, s.pzxid,
            )  # fmt: skip
        except struct.error as e:
            raise ProtocolError(f"stat field out of range: {stat!r}") from e

    def write_id(self, id_: Id) -> None:
        self.write_ustring(id_.scheme)
        self.write_ustring(id_.id)

    def write_acl_vector(self, acl: Iterable[ACL] | None) -> None:
        if acl is None:
            self._buf += _NULL
            return
        if acl is OPEN_ACL_UNSAFE:
            self._buf += _OPEN_ACL_BYTES
            return
        items = acl if isinstance(acl, (tuple, list)) else tuple(acl)
        self._buf += _INT.pack(len(items))
        for a in items:
            self.write_int(a.perms)
            self.write_ustring(a.id.scheme)
            self.write_ustring(a.id.id)


def _encode_acl_vector(acl: tuple[ACL, ...]) -> bytes:
    w = Writer()
    w.write_acl_vector(list(acl))  # a list: not the constant's shortcut, which needs this
    return w.to_bytes()


_OPEN_ACL_BYTES = _encode_acl_vector(OPEN_ACL_UNSAFE)
_OPEN_ACL_SIZE = len(_OPEN_ACL_BYTES)


class Reader:
    """Parses jute values from bytes (or a memoryview), advancing an offset.

    Every read raises `ProtocolError` on truncation, on a negative length other than -1, or on
    a length past the end of the data; ustrings must be valid UTF-8. Trailing bytes after a
    record are allowed (ZooKeeper ignores them too); `remaining` tells a caller they exist.
    """

    __slots__ = ("_buf", "_end", "_pos")

    def __init__(self, data: bytes | bytearray | memoryview, offset: int = 0) -> None:
        self._buf = data
        self._pos = offset
        self._end = len(data)

    @property
    def offset(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def _short(self, what: str, need: int) -> ProtocolError:
        have = self._end - self._pos
        return ProtocolError(f"truncated {what} at offset {self._pos}: need {need}, have {have}")

    def _length(self, what: str) -> int:
        """A length prefix: -1 (null) or a count that fits in what is left."""
        pos = self._pos
        n: int
        try:
            (n,) = _INT.unpack_from(self._buf, pos)
        except struct.error:
            raise self._short(f"{what} length", 4) from None
        pos += 4
        self._pos = pos
        if n < -1:
            raise ProtocolError(f"negative {what} length {n} at offset {pos - 4}")
        if n > self._end - pos:
            raise ProtocolError(f"{what} length {n} at offset {pos - 4} exceeds the {self._end - pos} bytes left")
        return n

    def read_int(self) -> int:
        pos = self._pos
        v: int
        try:
            (v,) = _INT.unpack_from(self._buf, pos)
        except struct.error:
            raise self._short("int", 4) from None
        self._pos = pos + 4
        return v

    def read_long(self) -> int:
        pos = self._pos
        v: int
        try:
            (v,) = _LONG.unpack_from(self._buf, pos)
        except struct.error:
            raise self._short("long", 8) from None
        self._pos = pos + 8
        return v

    def read_bool(self) -> bool:
        pos = self._pos
        if pos >= self._end:
            raise self._short("boolean", 1)
        self._pos = pos + 1
        # Java's readBoolean: any non-zero byte is true.
        return self._buf[pos] != 0

    def read_buffer(self) -> bytes | None:
        n = self._length("buffer")
        if n < 0:
            return None
        pos = self._pos
        self._pos = pos + n
        return bytes(self._buf[pos : pos + n])

    def read_ustring(self) -> str | None:
        # The length check is inlined (not `_length`): paths make this the most-called read.
        pos = self._pos
        try:
            (n,) = _INT.unpack_from(self._buf, pos)
        except struct.error:
            raise self._short("ustring length", 4) from None
        pos += 4
        end = pos + n
        if n < 0 or end > self._end:
            if n == -1:
                self._pos = pos
                return None
            self._length("ustring")  # raises, with the message
        self._pos = end
        # Java decodes malformed UTF-8 to U+FFFD rather than failing, and ZooKeeper then
        # judges the string (a path with U+FFFD is invalid): do the same.
        return str(self._buf[pos:end], "utf-8", "replace")

    def read_string(self) -> str:
        """A ustring where null means empty.

        No field of the client protocol gives null a meaning apart from "", and kazoo writes
        "" as null (e.g. the id of `Id("auth", "")`), so records fold the two to keep `str`.
        """
        s = self.read_ustring()
        return "" if s is None else s

    def read_vector_len(self) -> int | None:
        """A vector's count: None for a null vector.

        The count is bounded by the bytes left (every item is at least one byte), so a hostile
        count can neither allocate nor loop beyond the frame it arrived in.
        """
        n = self._length("vector")
        return None if n < 0 else n

    def read_string_vector(self) -> tuple[str, ...]:
        """A vector<ustring>; a null vector reads as empty (see `read_string`)."""
        n = self._length("vector")
        if n <= 0:
            return ()
        read = self.read_string
        return tuple([read() for _ in range(n)])

    def read_stat(self) -> Stat:
        pos = self._pos
        try:
            fields = _STAT.unpack_from(self._buf, pos)
        except struct.error:
            raise self._short("stat", _STAT_SIZE) from None
        self._pos = pos + _STAT_SIZE
        return Stat(*fields)

    def read_id(self) -> Id:
        return Id(self.read_string(), self.read_string())

    def read_acl_vector(self) -> tuple[ACL, ...]:
        """A vector<ACL>; a null vector reads as empty (the server refuses both alike).

        Most creates carry the open ACL: its exact bytes read as the shared constant, which
        the tree then knows needs no validation (and no ACL objects are built for it).
        """
        pos = self._pos
        end = pos + _OPEN_ACL_SIZE
        if self._buf[pos:end] == _OPEN_ACL_BYTES:
            self._pos = end
            return OPEN_ACL_UNSAFE
        n = self._length("vector")
        if n <= 0:
            return ()
        out = []
        read_int = self.read_int
        read_string = self.read_string
        for _ in range(n):
            perms = read_int()
            out.append(ACL(perms, Id(read_string(), read_string())))
        return tuple(out)


def read_int_at(data: bytes | bytearray | memoryview, offset: int = 0) -> int:
    """One big-endian int at `offset` (a frame length, an xid) without building a Reader."""
    v: int
    try:
        (v,) = _INT.unpack_from(data, offset)
    except struct.error:
        raise ProtocolError(f"truncated int at offset {offset}") from None
    return v


def pack_int(value: int) -> bytes:
    """A 4-byte big-endian int (a frame's length prefix)."""
    try:
        return _INT.pack(value)
    except struct.error:
        raise ProtocolError(f"int out of range: {value!r}") from None
