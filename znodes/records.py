"""The records of ZooKeeper's client protocol (zookeeper.jute), as frozen attrs classes.

Every record has `write(w: Writer)` and a classmethod `read(r: Reader)` that encode and
decode exactly the jute fields, in jute order. Attribute names are snake_case versions of the
jute names (Stat keeps its camelCase). Sequences are tuples so records hash. Null ustrings and
null vectors read as "" and () (see `Reader.read_string`); null buffers stay None, because a
znode's data may really be null and clients can tell.

Multi (`MultiRequest`/`MultiResponse`) follows MultiOperationRecord.java and MultiResponse.java:
a MultiHeader(type, done, err) before each op or result, then MultiHeader(-1, True, -1).
"""

from __future__ import annotations

import struct
from typing import ClassVar, Protocol

import attrs

from .acl import ACL
from .constants import OpCode
from .jute import ProtocolError, Reader, Writer
from .stat import Stat


class Record(Protocol):
    """What every record here provides."""

    def write(self, w: Writer) -> None: ...


def _tuple_field() -> tuple:  # type: ignore[type-arg]
    # A converter so callers may pass lists; records stay hashable.
    return attrs.field(converter=tuple)


# --- connection --------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class ConnectRequest:
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
class ConnectResponse:
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


@attrs.frozen(slots=True)
class RequestHeader:
    xid: int
    type: int

    def write(self, w: Writer) -> None:
        w.write_int(self.xid)
        w.write_int(self.type)

    @classmethod
    def read(cls, r: Reader) -> RequestHeader:
        return cls(r.read_int(), r.read_int())


@attrs.frozen(slots=True)
class ReplyHeader:
    xid: int
    zxid: int
    err: int

    def write(self, w: Writer) -> None:
        w.write_int(self.xid)
        w.write_long(self.zxid)
        w.write_int(self.err)

    @classmethod
    def read(cls, r: Reader) -> ReplyHeader:
        return cls(r.read_int(), r.read_long(), r.read_int())


@attrs.frozen(slots=True)
class WatcherEvent:
    type: int
    state: int
    path: str

    def write(self, w: Writer) -> None:
        w.write_int(self.type)
        w.write_int(self.state)
        w.write_ustring(self.path)

    @classmethod
    def read(cls, r: Reader) -> WatcherEvent:
        return cls(r.read_int(), r.read_int(), r.read_string())


@attrs.frozen(slots=True)
class ErrorResponse:
    """A bare error code: the body of a multi's error result, and of an addWatch reply."""

    err: int

    def write(self, w: Writer) -> None:
        w.write_int(self.err)

    @classmethod
    def read(cls, r: Reader) -> ErrorResponse:
        return cls(r.read_int())


# --- records whose only field is a path ---------------------------------------------------------


class _PathOnly:
    """Shared write/read for records of a single ustring (subclasses are attrs classes)."""

    __slots__ = ()

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)  # type: ignore[attr-defined]

    @classmethod
    def read(cls, r: Reader):  # type: ignore[no-untyped-def]
        return cls(r.read_string())  # type: ignore[call-arg]


@attrs.frozen(slots=True)
class GetACLRequest(_PathOnly):
    path: str


@attrs.frozen(slots=True)
class SyncRequest(_PathOnly):
    path: str


@attrs.frozen(slots=True)
class SyncResponse(_PathOnly):
    path: str


@attrs.frozen(slots=True)
class DeleteContainerRequest(_PathOnly):
    path: str


@attrs.frozen(slots=True)
class GetAllChildrenNumberRequest(_PathOnly):
    path: str


@attrs.frozen(slots=True)
class CreateResponse(_PathOnly):
    path: str


@attrs.frozen(slots=True)
class GetEphemeralsRequest:
    prefix_path: str

    def write(self, w: Writer) -> None:
        w.write_ustring(self.prefix_path)

    @classmethod
    def read(cls, r: Reader) -> GetEphemeralsRequest:
        return cls(r.read_string())


# --- records of a path and a watch flag ---------------------------------------------------------


class _PathWatch:
    __slots__ = ()

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)  # type: ignore[attr-defined]
        w.write_bool(self.watch)  # type: ignore[attr-defined]

    @classmethod
    def read(cls, r: Reader):  # type: ignore[no-untyped-def]
        return cls(r.read_string(), r.read_bool())  # type: ignore[call-arg]


@attrs.frozen(slots=True)
class ExistsRequest(_PathWatch):
    path: str
    watch: bool


@attrs.frozen(slots=True)
class GetDataRequest(_PathWatch):
    path: str
    watch: bool


@attrs.frozen(slots=True)
class GetChildrenRequest(_PathWatch):
    path: str
    watch: bool


@attrs.frozen(slots=True)
class GetChildren2Request(_PathWatch):
    path: str
    watch: bool


# --- records of a path and an int (version, mode or watcher type) -------------------------------


@attrs.frozen(slots=True)
class DeleteRequest:
    path: str
    version: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_int(self.version)

    @classmethod
    def read(cls, r: Reader) -> DeleteRequest:
        return cls(r.read_string(), r.read_int())


@attrs.frozen(slots=True)
class CheckVersionRequest:
    path: str
    version: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_int(self.version)

    @classmethod
    def read(cls, r: Reader) -> CheckVersionRequest:
        return cls(r.read_string(), r.read_int())


@attrs.frozen(slots=True)
class AddWatchRequest:
    path: str
    mode: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_int(self.mode)

    @classmethod
    def read(cls, r: Reader) -> AddWatchRequest:
        return cls(r.read_string(), r.read_int())


@attrs.frozen(slots=True)
class RemoveWatchesRequest:
    path: str
    type: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_int(self.type)

    @classmethod
    def read(cls, r: Reader) -> RemoveWatchesRequest:
        return cls(r.read_string(), r.read_int())


@attrs.frozen(slots=True)
class CheckWatchesRequest:
    path: str
    type: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_int(self.type)

    @classmethod
    def read(cls, r: Reader) -> CheckWatchesRequest:
        return cls(r.read_string(), r.read_int())


# --- writes -------------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class CreateRequest:
    """create, create2 and createContainer all send this record."""

    path: str
    data: bytes | None
    acl: tuple[ACL, ...] = _tuple_field()
    flags: int = 0

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_buffer(self.data)
        w.write_acl_vector(self.acl)
        w.write_int(self.flags)

    @classmethod
    def read(cls, r: Reader) -> CreateRequest:
        return cls(r.read_string(), r.read_buffer(), r.read_acl_vector(), r.read_int())


@attrs.frozen(slots=True)
class CreateTTLRequest:
    path: str
    data: bytes | None
    acl: tuple[ACL, ...] = _tuple_field()
    flags: int = 0
    ttl: int = 0

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_buffer(self.data)
        w.write_acl_vector(self.acl)
        w.write_int(self.flags)
        w.write_long(self.ttl)

    @classmethod
    def read(cls, r: Reader) -> CreateTTLRequest:
        return cls(
            r.read_string(), r.read_buffer(), r.read_acl_vector(), r.read_int(), r.read_long()
        )


@attrs.frozen(slots=True)
class SetDataRequest:
    path: str
    data: bytes | None
    version: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_buffer(self.data)
        w.write_int(self.version)

    @classmethod
    def read(cls, r: Reader) -> SetDataRequest:
        return cls(r.read_string(), r.read_buffer(), r.read_int())


@attrs.frozen(slots=True)
class SetACLRequest:
    path: str
    acl: tuple[ACL, ...] = _tuple_field()
    version: int = -1

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_acl_vector(self.acl)
        w.write_int(self.version)

    @classmethod
    def read(cls, r: Reader) -> SetACLRequest:
        return cls(r.read_string(), r.read_acl_vector(), r.read_int())


@attrs.frozen(slots=True)
class ReconfigRequest:
    """Decoded so the server can refuse it properly (ZooKeeper answers ReconfigDisabled)."""

    joining_servers: str
    leaving_servers: str
    new_members: str
    cur_config_id: int

    def write(self, w: Writer) -> None:
        w.write_ustring(self.joining_servers)
        w.write_ustring(self.leaving_servers)
        w.write_ustring(self.new_members)
        w.write_long(self.cur_config_id)

    @classmethod
    def read(cls, r: Reader) -> ReconfigRequest:
        return cls(r.read_string(), r.read_string(), r.read_string(), r.read_long())


# --- responses carrying a Stat ------------------------------------------------------------------


class _StatOnly:
    __slots__ = ()

    def write(self, w: Writer) -> None:
        w.write_stat(self.stat)  # type: ignore[attr-defined]

    @classmethod
    def read(cls, r: Reader):  # type: ignore[no-untyped-def]
        return cls(r.read_stat())  # type: ignore[call-arg]


@attrs.frozen(slots=True)
class ExistsResponse(_StatOnly):
    stat: Stat


@attrs.frozen(slots=True)
class SetDataResponse(_StatOnly):
    stat: Stat


@attrs.frozen(slots=True)
class SetACLResponse(_StatOnly):
    stat: Stat


@attrs.frozen(slots=True)
class Create2Response:
    path: str
    stat: Stat

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_stat(self.stat)

    @classmethod
    def read(cls, r: Reader) -> Create2Response:
        return cls(r.read_string(), r.read_stat())


@attrs.frozen(slots=True)
class GetDataResponse:
    data: bytes | None
    stat: Stat

    def write(self, w: Writer) -> None:
        w.write_buffer(self.data)
        w.write_stat(self.stat)

    @classmethod
    def read(cls, r: Reader) -> GetDataResponse:
        return cls(r.read_buffer(), r.read_stat())


@attrs.frozen(slots=True)
class GetACLResponse:
    acl: tuple[ACL, ...] = _tuple_field()
    stat: Stat = attrs.field(kw_only=True)

    def write(self, w: Writer) -> None:
        w.write_acl_vector(self.acl)
        w.write_stat(self.stat)

    @classmethod
    def read(cls, r: Reader) -> GetACLResponse:
        acl = r.read_acl_vector()
        return cls(acl, stat=r.read_stat())


@attrs.frozen(slots=True)
class GetChildrenResponse:
    children: tuple[str, ...] = _tuple_field()

    def write(self, w: Writer) -> None:
        w.write_string_vector(self.children)

    @classmethod
    def read(cls, r: Reader) -> GetChildrenResponse:
        return cls(r.read_string_vector())


@attrs.frozen(slots=True)
class GetChildren2Response:
    children: tuple[str, ...] = _tuple_field()
    stat: Stat = attrs.field(kw_only=True)

    def write(self, w: Writer) -> None:
        w.write_string_vector(self.children)
        w.write_stat(self.stat)

    @classmethod
    def read(cls, r: Reader) -> GetChildren2Response:
        children = r.read_string_vector()
        return cls(children, stat=r.read_stat())


@attrs.frozen(slots=True)
class GetEphemeralsResponse:
    ephemerals: tuple[str, ...] = _tuple_field()

    def write(self, w: Writer) -> None:
        w.write_string_vector(self.ephemerals)

    @classmethod
    def read(cls, r: Reader) -> GetEphemeralsResponse:
        return cls(r.read_string_vector())


@attrs.frozen(slots=True)
class GetAllChildrenNumberResponse:
    total_number: int

    def write(self, w: Writer) -> None:
        w.write_int(self.total_number)

    @classmethod
    def read(cls, r: Reader) -> GetAllChildrenNumberResponse:
        return cls(r.read_int())


# --- session-level requests --------------------------------------------------------------------


@attrs.frozen(slots=True)
class SetWatches:
    relative_zxid: int
    data_watches: tuple[str, ...] = _tuple_field()
    exist_watches: tuple[str, ...] = _tuple_field()
    child_watches: tuple[str, ...] = _tuple_field()

    def write(self, w: Writer) -> None:
        w.write_long(self.relative_zxid)
        w.write_string_vector(self.data_watches)
        w.write_string_vector(self.exist_watches)
        w.write_string_vector(self.child_watches)

    @classmethod
    def read(cls, r: Reader) -> SetWatches:
        v = r.read_string_vector
        return cls(r.read_long(), v(), v(), v())


@attrs.frozen(slots=True)
class SetWatches2:
    relative_zxid: int
    data_watches: tuple[str, ...] = _tuple_field()
    exist_watches: tuple[str, ...] = _tuple_field()
    child_watches: tuple[str, ...] = _tuple_field()
    persistent_watches: tuple[str, ...] = _tuple_field()
    persistent_recursive_watches: tuple[str, ...] = _tuple_field()

    def write(self, w: Writer) -> None:
        w.write_long(self.relative_zxid)
        w.write_string_vector(self.data_watches)
        w.write_string_vector(self.exist_watches)
        w.write_string_vector(self.child_watches)
        w.write_string_vector(self.persistent_watches)
        w.write_string_vector(self.persistent_recursive_watches)

    @classmethod
    def read(cls, r: Reader) -> SetWatches2:
        v = r.read_string_vector
        return cls(r.read_long(), v(), v(), v(), v(), v())


@attrs.frozen(slots=True)
class AuthPacket:
    type: int
    scheme: str
    auth: bytes | None

    def write(self, w: Writer) -> None:
        w.write_int(self.type)
        w.write_ustring(self.scheme)
        w.write_buffer(self.auth)

    @classmethod
    def read(cls, r: Reader) -> AuthPacket:
        return cls(r.read_int(), r.read_string(), r.read_buffer())


@attrs.frozen(slots=True)
class ClientInfo:
    auth_scheme: str
    user: str

    def write(self, w: Writer) -> None:
        w.write_ustring(self.auth_scheme)
        w.write_ustring(self.user)

    @classmethod
    def read(cls, r: Reader) -> ClientInfo:
        return cls(r.read_string(), r.read_string())


@attrs.frozen(slots=True)
class WhoAmIResponse:
    client_info: tuple[ClientInfo, ...] = _tuple_field()

    def write(self, w: Writer) -> None:
        w.write_vector_len(len(self.client_info))
        for info in self.client_info:
            info.write(w)

    @classmethod
    def read(cls, r: Reader) -> WhoAmIResponse:
        n = r.read_vector_len() or 0
        return cls(tuple([ClientInfo.read(r) for _ in range(n)]))


# --- multi -------------------------------------------------------------------------------------

# MultiHeader {int type; boolean done; int err}: packed in one go on the write side.
_MULTI_HEADER = struct.Struct(">i?i")
_MULTI_DONE = _MULTI_HEADER.pack(-1, True, -1)

# The request record each op inside a multi (or multiRead) carries, as MultiOperationRecord
# reads them; any other type inside a multi is malformed.
MULTI_OP_RECORDS: dict[int, type] = {
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
class MultiRequest:
    """The ops of a multi or multiRead: (OpCode, request record) pairs, in order."""

    ops: tuple[tuple[int, Record], ...] = _tuple_field()

    def write(self, w: Writer) -> None:
        for op, record in self.ops:
            w.write_raw(_MULTI_HEADER.pack(op, False, -1))
            record.write(w)
        w.write_raw(_MULTI_DONE)

    @classmethod
    def read(cls, r: Reader) -> MultiRequest:
        ops = []
        while True:
            op = r.read_int()
            done = r.read_bool()
            r.read_int()  # err: meaningless in a request
            if done:
                return cls(tuple(ops))
            record_cls = MULTI_OP_RECORDS.get(op)
            if record_cls is None:
                raise ProtocolError(f"op type {op} is not allowed inside a multi")
            ops.append((OpCode(op), record_cls.read(r)))


@attrs.frozen(slots=True)
class CreateResult(_PathOnly):
    op: ClassVar[int] = OpCode.create
    path: str


@attrs.frozen(slots=True)
class Create2Result:
    """ZooKeeper answers create2, createTTL and createContainer inside a multi with this."""

    op: ClassVar[int] = OpCode.create2
    path: str
    stat: Stat

    def write(self, w: Writer) -> None:
        w.write_ustring(self.path)
        w.write_stat(self.stat)

    @classmethod
    def read(cls, r: Reader) -> Create2Result:
        return cls(r.read_string(), r.read_stat())


@attrs.frozen(slots=True)
class DeleteResult:
    op: ClassVar[int] = OpCode.delete

    def write(self, w: Writer) -> None:
        pass

    @classmethod
    def read(cls, r: Reader) -> DeleteResult:
        return _DELETE_RESULT


@attrs.frozen(slots=True)
class CheckResult:
    op: ClassVar[int] = OpCode.check

    def write(self, w: Writer) -> None:
        pass

    @classmethod
    def read(cls, r: Reader) -> CheckResult:
        return _CHECK_RESULT


_DELETE_RESULT = DeleteResult()
_CHECK_RESULT = CheckResult()


@attrs.frozen(slots=True)
class SetDataResult(_StatOnly):
    op: ClassVar[int] = OpCode.setData
    stat: Stat


@attrs.frozen(slots=True)
class GetDataResult:
    op: ClassVar[int] = OpCode.getData
    data: bytes | None
    stat: Stat

    def write(self, w: Writer) -> None:
        w.write_buffer(self.data)
        w.write_stat(self.stat)

    @classmethod
    def read(cls, r: Reader) -> GetDataResult:
        return cls(r.read_buffer(), r.read_stat())


@attrs.frozen(slots=True)
class GetChildrenResult:
    op: ClassVar[int] = OpCode.getChildren
    children: tuple[str, ...] = _tuple_field()

    def write(self, w: Writer) -> None:
        w.write_string_vector(self.children)

    @classmethod
    def read(cls, r: Reader) -> GetChildrenResult:
        return cls(r.read_string_vector())


@attrs.frozen(slots=True)
class ErrorResult:
    """An op of a failed multi: in one, every op gets an ErrorResult (as DataTree builds them):
    the failing op its own code, ops before it 0 (rolled back), ops after it
    RUNTIME_INCONSISTENCY. The reply header of a failed multi still says err 0."""

    op: ClassVar[int] = OpCode.error
    err: int

    def write(self, w: Writer) -> None:
        w.write_int(self.err)

    @classmethod
    def read(cls, r: Reader) -> ErrorResult:
        return cls(r.read_int())


OpResult = (
    CreateResult | Create2Result | DeleteResult | CheckResult | SetDataResult
    | GetDataResult | GetChildrenResult | ErrorResult
)  # fmt: skip

MULTI_RESULT_RECORDS: dict[int, type] = {
    cls.op: cls
    for cls in (CreateResult, Create2Result, DeleteResult, CheckResult, SetDataResult,
                GetDataResult, GetChildrenResult, ErrorResult)
}  # fmt: skip


@attrs.frozen(slots=True)
class MultiResponse:
    """The per-op results of a multi or multiRead, in op order."""

    results: tuple[OpResult, ...] = _tuple_field()

    def write(self, w: Writer) -> None:
        for result in self.results:
            # The header's err repeats an error result's code; it is 0 for the others.
            err = result.err if type(result) is ErrorResult else 0
            w.write_raw(_MULTI_HEADER.pack(result.op, False, err))
            result.write(w)
        w.write_raw(_MULTI_DONE)

    @classmethod
    def read(cls, r: Reader) -> MultiResponse:
        results = []
        while True:
            op = r.read_int()
            done = r.read_bool()
            r.read_int()  # err: an error result's own body carries the code Java reads
            if done:
                return cls(tuple(results))
            result_cls = MULTI_RESULT_RECORDS.get(op)
            if result_cls is None:
                raise ProtocolError(f"result type {op} is not valid inside a multi response")
            results.append(result_cls.read(r))
