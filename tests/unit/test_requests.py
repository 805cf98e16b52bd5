"""Write requests to transaction ops: every write opcode has exactly one translation."""

from __future__ import annotations

import pytest

from ccore.server.requests import _TO_OP, WRITE_OPS, to_op
from ccore.znodes import records as r
from ccore.znodes.acl import OPEN_ACL_UNSAFE
from ccore.znodes.constants import OpCode
from ccore.znodes.errors import BadArgumentsError
from ccore.znodes.txn import Check, CloseSession, Create, Delete, Multi, NoOp, SetACL, SetData


def test_every_write_opcode_translates() -> None:
    assert set(_TO_OP) == WRITE_OPS
    with pytest.raises(BadArgumentsError):
        to_op(OpCode.getData, r.GetDataRequest("/a"))


def test_translations() -> None:
    create = r.CreateRequest("/a", b"v", OPEN_ACL_UNSAFE, 2)
    assert to_op(OpCode.create, create) == Create("/a", b"v", OPEN_ACL_UNSAFE, 2)
    assert to_op(OpCode.create2, create) == Create("/a", b"v", OPEN_ACL_UNSAFE, 2)
    assert to_op(OpCode.createContainer, create) == Create("/a", b"v", OPEN_ACL_UNSAFE, 2, container_request=True)
    ttl = r.CreateTTLRequest("/t", None, OPEN_ACL_UNSAFE, 5, 1000)
    assert to_op(OpCode.createTTL, ttl) == Create("/t", None, OPEN_ACL_UNSAFE, 5, 1000, ttl_request=True)
    assert to_op(OpCode.delete, r.DeleteRequest("/a", 3)) == Delete("/a", 3)
    assert to_op(OpCode.setData, r.SetDataRequest("/a", b"x", 1)) == SetData("/a", b"x", 1)
    assert to_op(OpCode.setACL, r.SetACLRequest("/a", OPEN_ACL_UNSAFE, 4)) == SetACL("/a", OPEN_ACL_UNSAFE, 4)
    assert to_op(OpCode.check, r.CheckVersionRequest("/a", 7)) == Check("/a", 7)
    multi = r.MultiRequest([(OpCode.create, create), (OpCode.check, r.CheckVersionRequest("/a", 0))])
    assert to_op(OpCode.multi, multi) == Multi((Create("/a", b"v", OPEN_ACL_UNSAFE, 2), Check("/a", 0)))
    assert to_op(OpCode.closeSession, None) == CloseSession()
    assert to_op(OpCode.sync, r.SyncRequest("/")) == NoOp()
