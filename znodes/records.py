"""The records of ZooKeeper's client protocol (zookeeper.jute), as frozen attrs classes.

Every record has `write(w: Writer)` and a classmethod `read(r: Reader)` that encode and
decode exactly the jute fields, in jute order. Attribute names are snake_case versions of the
jute names (Stat keeps its camelCase). Sequences are tuples so records hash (a converter
accepts lists). Null ustrings and null vectors read as "" and () (see `Reader.read_string`),
except in ReconfigRequest, where null means "not given"; null buffers stay None, because a
znode's data may really be null and clients can tell.

Multi (`MultiRequest`/`MultiResponse`) follows MultiOperationRecord.java and MultiResponse.java:
a MultiHeader(type, done, err) before each op or result, then MultiHeader(-1, True, -1).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any, ClassVar, Self, dataclass_transform

import attrs

from .acl import ACL
from .constants import OpCode
from .jute import ProtocolError, Reader, Writer
from .stat import Stat


class Record:
    """Base of every record: `write` appends it to a Writer, `read` parses one from a Reader."""

    __slots__ = ()

    def write(self, w: Writer) -> None:
        raise NotImplementedError

    @classmethod
    def read(cls, r: Reader) -> Self:
        raise NotImplementedError


# How each jute field kind is written and read. A null ustring/vector reads as ""/().
_KINDS = {
    "int": ("write_int", "read_int"),
    "long": ("write_long", "read_long"),
    "bool": ("write_bool", "read_bool"),
    "buffer": ("write_buffer", "read_buffer"),
    "ustring": ("write_ustring", "read_string"),
    "ustring?": ("write_ustring", "read_ustring"),  # null kept apart from "" (ReconfigRequest)
    "stat": ("write_stat", "read_stat"),
    "acls": ("write_acl_vector", "read_acl_vector"),
    "ustrings": ("write_string_vector", "read_string_vector"),
}


# dataclass_transform: type checkers see the generated __init__ as they do attrs.frozen's.
@dataclass_transform(frozen_default=True, field_specifiers=(attrs.field,))
def _jute(*kinds: str) -> Any:
    """Make a frozen attrs record whose `write`/`read` handle `kinds`, one per field in order.

    The two methods are generated as straight-line code (as attrs generates `__init__`): this
    is the per-request hot path, and a loop over field descriptors would cost a getattr and a
    method lookup per field per record.
    """

    def wrap(cls: type) -> type:
        cls = attrs.frozen(slots=True)(cls)
        names = [f.name for f in attrs.fields(cls)]
        if len(names) != len(kinds):
            raise TypeError(f"{cls.__name__}: {len(names)} fields but {len(kinds)} jute kinds")
        lines = ["def write(self, w):"]
        lines += [f"    w.{_KINDS[k][0]}(self.{n})" for n, k in zip(names, kinds, strict=True)] or ["    pass"]
        args = ", ".join(f"r.{_KINDS[k][1]}()" for k in kinds)
        lines += ["def read(cls, r):", f"    return cls({args})"]
        ns: dict[str, Any] = {}
        exec("\n".join(lines), {}, ns)  # noqa: S102 - source built from _KINDS only
        ns["write"].__qualname__ = f"{cls.__qualname__}.write"
        ns["read"].__qualname__ = f"{cls.__qualname__}.read"
        cls.write = ns["write"]  # type: ignore[attr-defined]
        cls.read = classmethod(ns["read"])  # type: ignore[attr-defined]
        return cls

    return wrap


def _as_tuple(items: Iterable[Any]) -> tuple[Any, ...]:
    # The converter of every sequence field: callers may pass lists, records keep tuples (and
    # hash). A typed function rather than `tuple` itself, which mypy's attrs plugin cannot type.
    return items if type(items) is tuple else tuple(items)


# --- connection ---------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class ConnectRequest(Record):
    protocol_version: int
    last_zxid_seen: int
    timeout: int
    session_id: int
    passwd: bytes | None
    read_only: bool = False

    def write(self, w: Writer) -> None:
        w.write_int(self.protocol_version)
        w.write_long(self.last_zxid_seen)
        w.write_int(self.timeout)
        w.write_long(self.session_id)
        w.write_buffer(self.passwd)
        w.write_bool(self.read_only)

    @classmethod
    def read(cls, r: Reader) -> ConnectRequest:
        head = (r.read_int(), r.read_long(), r.read_int(), r.read_long(), r.read_buffer())
        # Clients before 3.4 send no readOnly byte; ZooKeeper's ProtocolManager defaults it.
        return cls(*head, r.read_bool() if r.remaining else False)


@attrs.frozen(slots=True)
class ConnectResponse(Record):
    protocol_version: int
    timeout: int
    session_id: int
    passwd: bytes | None
    read_only: bool = False

    def write(self, w: Writer) -> None:
        w.write_int(self.protocol_version)
        w.write_int(self.timeout)
        w.write_long(self.session_id)
        w.write_buffer(self.passwd)
        w.write_bool(self.read_only)

    @classmethod
    def read(cls, r: Reader) -> ConnectResponse:
        head = (r.read_int(), r.read_int(), r.read_long(), r.read_buffer())
        return cls(*head, r.read_bool() if r.remaining else False)


@_jute("int", "int")
class RequestHeader(Record):
    xid: int
    type: int


@_jute("int", "long", "int")
class ReplyHeader(Record):
    xid: int
    zxid: int
    err: int


@_jute("int", "int", "ustring")
class WatcherEvent(Record):
    type: int
    state: int
    path: str


@_jute("int")
class ErrorResponse(Record):
    """A bare error code: the body of a multi's error result, and of an addWatch reply."""

    err: int


@_jute("int", "ustring", "buffer")
class AuthPacket(Record):
    type: int
    scheme: str
    auth: bytes | None


@_jute("long", "ustrings", "ustrings", "ustrings")
class SetWatches(Record):
    relative_zxid: int
    data_watches: tuple[str, ...] = attrs.field(converter=_as_tuple)
    exist_watches: tuple[str, ...] = attrs.field(converter=_as_tuple)
    child_watches: tuple[str, ...] = attrs.field(converter=_as_tuple)


@_jute("long", "ustrings", "ustrings", "ustrings", "ustrings", "ustrings")
class SetWatches2(Record):
    relative_zxid: int
    data_watches: tuple[str, ...] = attrs.field(converter=_as_tuple)
    exist_watches: tuple[str, ...] = attrs.field(converter=_as_tuple)
    child_watches: tuple[str, ...] = attrs.field(converter=_as_tuple)
    persistent_watches: tuple[str, ...] = attrs.field(converter=_as_tuple)
    persistent_recursive_watches: tuple[str, ...] = attrs.field(converter=_as_tuple)


@_jute("ustring", "ustring")
class ClientInfo(Record):
    auth_scheme: str
    user: str


@attrs.frozen(slots=True)
class WhoAmIResponse(Record):
    client_info: tuple[ClientInfo, ...] = attrs.field(converter=_as_tuple)

    def write(self, w: Writer) -> None:
        w.write_vector_len(len(self.client_info))
        for info in self.client_info:
            info.write(w)

    @classmethod
    def read(cls, r: Reader) -> WhoAmIResponse:
        n = r.read_vector_len() or 0
        return cls([ClientInfo.read(r) for _ in range(n)])


# --- requests ------------------------------------------------------------------------------------


@_jute("ustring", "buffer", "acls", "int")
class CreateRequest(Record):
    """create, create2 and createContainer all send this record."""

    path: str
    data: bytes | None
    acl: tuple[ACL, ...] = attrs.field(converter=_as_tuple)
    flags: int = 0


@_jute("ustring", "buffer", "acls", "int", "long")
class CreateTTLRequest(Record):
    path: str
    data: bytes | None
    acl: tuple[ACL, ...] = attrs.field(converter=_as_tuple)
    flags: int = 0
    ttl: int = 0


@_jute("ustring", "int")
class DeleteRequest(Record):
    path: str
    version: int = -1


@_jute("ustring")
class DeleteContainerRequest(Record):
    path: str


@_jute("ustring", "bool")
class ExistsRequest(Record):
    path: str
    watch: bool = False


@_jute("ustring", "bool")
class GetDataRequest(Record):
    path: str
    watch: bool = False


@_jute("ustring", "buffer", "int")
class SetDataRequest(Record):
    path: str
    data: bytes | None
    version: int = -1


@_jute("ustring")
class GetACLRequest(Record):
    path: str


@_jute("ustring", "acls", "int")
class SetACLRequest(Record):
    path: str
    acl: tuple[ACL, ...] = attrs.field(converter=_as_tuple)
    version: int = -1


@_jute("ustring", "bool")
class GetChildrenRequest(Record):
    path: str
    watch: bool = False


@_jute("ustring", "bool")
class GetChildren2Request(Record):
    path: str
    watch: bool = False


@_jute("ustring")
class SyncRequest(Record):
    path: str


@_jute("ustring", "int")
class CheckVersionRequest(Record):
    path: str
    version: int


@_jute("ustring", "int")
class AddWatchRequest(Record):
    path: str
    mode: int


@_jute("ustring", "int")
class RemoveWatchesRequest(Record):
    path: str
    type: int


@_jute("ustring", "int")
class CheckWatchesRequest(Record):
    path: str
    type: int


@_jute("ustring")
class GetEphemeralsRequest(Record):
    prefix_path: str


@_jute("ustring")
class GetAllChildrenNumberRequest(Record):
    path: str


@_jute("ustring?", "ustring?", "ustring?", "long")
class ReconfigRequest(Record):
    """A reconfig (opcode 16). A null field is "not given", which ZooKeeper tells from "": a
    non-null `new_members` makes the reconfig bulk (kazoo sends "" as null too)."""

    joining_servers: str | None
    leaving_servers: str | None
    new_members: str | None
    cur_config_id: int


# --- responses -----------------------------------------------------------------------------------


@_jute("ustring")
class CreateResponse(Record):
    path: str


@_jute("ustring", "stat")
class Create2Response(Record):
    path: str
    stat: Stat


@_jute("stat")
class ExistsResponse(Record):
    stat: Stat


@_jute("buffer", "stat")
class GetDataResponse(Record):
    data: bytes | None
    stat: Stat


@_jute("stat")
class SetDataResponse(Record):
    """Also the reply to a standalone check (FinalRequestProcessor answers it with this)."""

    stat: Stat


@_jute("acls", "stat")
class GetACLResponse(Record):
    acl: tuple[ACL, ...] = attrs.field(converter=_as_tuple)
    stat: Stat


@_jute("stat")
class SetACLResponse(Record):
    stat: Stat


@_jute("ustrings")
class GetChildrenResponse(Record):
    children: tuple[str, ...] = attrs.field(converter=_as_tuple)


@_jute("ustrings", "stat")
class GetChildren2Response(Record):
    children: tuple[str, ...] = attrs.field(converter=_as_tuple)
    stat: Stat


@_jute("ustring")
class SyncResponse(Record):
    path: str


@_jute("ustrings")
class GetEphemeralsResponse(Record):
    ephemerals: tuple[str, ...] = attrs.field(converter=_as_tuple)


@_jute("int")
class GetAllChildrenNumberResponse(Record):
    total_number: int


# --- multi ---------------------------------------------------------------------------------------

# MultiHeader {int type; boolean done; int err}, packed in one go on the write side.
_MULTI_HEADER = struct.Struct(">i?i")
_MULTI_DONE = _MULTI_HEADER.pack(-1, True, -1)

# The request record each op inside a multi (or multiRead) carries, as MultiOperationRecord
# reads them; any other type inside a multi is malformed.
MULTI_OP_RECORDS: dict[int, type[Record]] = {
    OpCode.create: CreateRequest,
    OpCode.create2: CreateRequest,
    OpCode.createContainer: CreateRequest,
    OpCode.createTTL: CreateTTLRequest,
    OpCode.delete: DeleteRequest,
    OpCode.setData: SetDataRequest,
    OpCode.check: CheckVersionRequest,
    OpCode.getChildren: GetChildrenRequest,
    OpCode.getData: GetDataRequest,
}


@attrs.frozen(slots=True)
class MultiRequest(Record):
    """The ops of a multi or multiRead: (OpCode, request record) pairs, in order."""

    ops: tuple[tuple[int, Record], ...] = attrs.field(converter=_as_tuple)

    def write(self, w: Writer) -> None:
        for op, record in self.ops:
            w.write_raw(_MULTI_HEADER.pack(op, False, -1))
            record.write(w)
        w.write_raw(_MULTI_DONE)

    @classmethod
    def read(cls, r: Reader) -> MultiRequest:
        ops: list[tuple[int, Record]] = []
        while True:  # ends: every header consumes 9 bytes, and truncation raises
            op = r.read_int()
            done = r.read_bool()
            r.read_int()  # err: meaningless in a request
            if done:
                return cls(ops)
            record_cls = MULTI_OP_RECORDS.get(op)
            if record_cls is None:
                raise ProtocolError(f"op type {op} is not allowed inside a multi")
            ops.append((OpCode(op), record_cls.read(r)))


# Per-op results. `op` is the type their MultiHeader carries.


@_jute("ustring")
class CreateResult(Record):
    op: ClassVar[int] = OpCode.create
    path: str


@_jute("ustring", "stat")
class Create2Result(Record):
    """ZooKeeper answers create2, createTTL and createContainer inside a multi with this."""

    op: ClassVar[int] = OpCode.create2
    path: str
    stat: Stat


@_jute()
class DeleteResult(Record):
    op: ClassVar[int] = OpCode.delete


@_jute()
class CheckResult(Record):
    op: ClassVar[int] = OpCode.check


@_jute("stat")
class SetDataResult(Record):
    op: ClassVar[int] = OpCode.setData
    stat: Stat


@_jute("buffer", "stat")
class GetDataResult(Record):
    op: ClassVar[int] = OpCode.getData
    data: bytes | None
    stat: Stat


@_jute("ustrings")
class GetChildrenResult(Record):
    op: ClassVar[int] = OpCode.getChildren
    children: tuple[str, ...] = attrs.field(converter=_as_tuple)


@_jute("int")
class ErrorResult(Record):
    """An op of a failed multi: in one, every op gets an ErrorResult (as DataTree builds them):
    the failing op its own code, ops before it 0 (rolled back), ops after it
    RUNTIME_INCONSISTENCY. The reply header of a failed multi still says err 0; in a multiRead
    only the ops that failed get one."""

    op: ClassVar[int] = OpCode.error
    err: int


OpResult = (
    CreateResult | Create2Result | DeleteResult | CheckResult | SetDataResult
    | GetDataResult | GetChildrenResult | ErrorResult
)  # fmt: skip

MULTI_RESULT_RECORDS: dict[int, type[Record]] = {
    cls.op: cls
    for cls in (CreateResult, Create2Result, DeleteResult, CheckResult, SetDataResult,
                GetDataResult, GetChildrenResult, ErrorResult)
}  # fmt: skip


@attrs.frozen(slots=True)
class MultiResponse(Record):
    """The per-op results of a multi or multiRead, in op order."""

    results: tuple[OpResult, ...] = attrs.field(converter=_as_tuple)

    def write(self, w: Writer) -> None:
        for result in self.results:
            # The header's err repeats an error result's code; it is 0 for the others.
            err = result.err if type(result) is ErrorResult else 0
            w.write_raw(_MULTI_HEADER.pack(result.op, False, err))
            result.write(w)
        w.write_raw(_MULTI_DONE)

    @classmethod
    def read(cls, r: Reader) -> MultiResponse:
        results: list[Any] = []
        while True:
            op = r.read_int()
            done = r.read_bool()
            r.read_int()  # err: Java takes an error result's code from its body, as we do
            if done:
                return cls(results)
            result_cls = MULTI_RESULT_RECORDS.get(op)
            if result_cls is None:
                raise ProtocolError(f"result type {op} is not valid inside a multi response")
            results.append(result_cls.read(r))
