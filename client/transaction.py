"""Multi-op transactions (`multi`) and batched reads (`multiRead`): op records and results.

Build with `client.transaction()`: `txn.create(...)`, `txn.set(...)`, `txn.delete(...)`,
`txn.check(...)` (each returns the transaction, so calls chain), then `await txn.commit()`.
All ops apply atomically or none does. On failure `commit` raises the failing op's own
exception (e.g. `NodeExistsError('/a')`) with two extra attributes: `op_index`, the index of
the op that failed, and `op_errors`, one entry per op (None for an op that would have
succeeded, the exception otherwise; ops after the failing one carry
RuntimeInconsistencyError, as ZooKeeper reports them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ccore.znodes.acl import ACL
from ccore.znodes.constants import OpCode
from ccore.znodes.errors import Code, ZKError
from ccore.znodes.records import (
    CheckResult,
    CheckVersionRequest,
    Create2Result,
    CreateResult,
    DeleteRequest,
    DeleteResult,
    ErrorResult,
    GetChildrenRequest,
    GetChildrenResult,
    GetDataRequest,
    GetDataResult,
    Record,
    SetDataRequest,
    SetDataResult,
)

if TYPE_CHECKING:
    from .client import Client


@attrs.frozen
class GetData:
    """A read for `Client.multi_read`: its result is `(data, stat)`."""

    path: str


@attrs.frozen
class GetChildren:
    """A read for `Client.multi_read`: its result is the list of child names."""

    path: str


def convert_result(result: Record, to_client_path: Any) -> Any:
    """A multi op result as the client API returns it."""
    if isinstance(result, (CreateResult, Create2Result)):
        return to_client_path(result.path)
    if isinstance(result, SetDataResult):
        return result.stat
    if isinstance(result, (DeleteResult, CheckResult)):
        return None
    if isinstance(result, GetDataResult):
        return (result.data or b"", result.stat)
    if isinstance(result, GetChildrenResult):
        return list(result.children)
    raise TypeError(f"unexpected multi result {result!r}")


def raise_for_failure(results: Sequence[Record], paths: Sequence[str]) -> None:
    """Raise the first failing op's error (see the module docstring) if the multi failed."""
    errors: list[ZKError | None] = []
    first: int | None = None
    for i, result in enumerate(results):
        if isinstance(result, ErrorResult) and result.err != Code.OK:
            errors.append(ZKError.from_code(result.err, paths[i] if i < len(paths) else None))
            if first is None and result.err != Code.RUNTIME_INCONSISTENCY:
                first = i
        else:
            errors.append(None)
    if first is None:
        first = next((i for i, e in enumerate(errors) if e is not None), None)
    if first is not None:
        error = errors[first]
        assert error is not None
        error.op_index = first  # type: ignore[attr-defined]
        error.op_errors = tuple(errors)  # type: ignore[attr-defined]
        raise error


class Transaction:
    """Ops gathered for one atomic `multi`; see the module docstring."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.ops: list[tuple[int, Record]] = []
        self.paths: list[str] = []
        self.committed = False

    def _add(self, op: int, record: Record, path: str) -> Transaction:
        if self.committed:
            raise RuntimeError("transaction already committed")
        self.ops.append((op, record))
        self.paths.append(path)
        return self

    def create(
        self,
        path: str,
        data: bytes = b"",
        *,
        acl: Sequence[ACL] | None = None,
        ephemeral: bool = False,
        sequence: bool = False,
        container: bool = False,
        ttl: float | None = None,
    ) -> Transaction:
        op, record = self._client._create_request(path, data, acl, ephemeral, sequence, container, ttl)
        return self._add(op, record, path)

    def delete(self, path: str, *, version: int = -1) -> Transaction:
        return self._add(OpCode.delete, DeleteRequest(self._client._path(path), version), path)

    def set(self, path: str, data: bytes, *, version: int = -1) -> Transaction:
        self._client._check_data(data)
        return self._add(OpCode.setData, SetDataRequest(self._client._path(path), data, version), path)

    def check(self, path: str, version: int) -> Transaction:
        return self._add(OpCode.check, CheckVersionRequest(self._client._path(path), version), path)

    async def commit(self) -> list[Any]:
        """Apply every op atomically; returns one result per op (created path, Stat, None)."""
        self.committed = True
        return await self._client._multi(self.ops, self.paths)


def read_request(op: GetData | GetChildren, full_path: str) -> tuple[int, Record]:
    if isinstance(op, GetData):
        return OpCode.getData, GetDataRequest(full_path, False)
    if isinstance(op, GetChildren):
        return OpCode.getChildren, GetChildrenRequest(full_path, False)
    raise TypeError(f"multi_read takes GetData and GetChildren ops, not {op!r}")
