"""ZooKeeper's error codes as one flat family of exceptions.

`ZKError.from_code(code, path)` maps a wire error code to its exception class; every class
carries the numeric `code` it travels as, and the path or operation it concerns.
"""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    """KeeperException.Code values, as they travel in a ReplyHeader."""

    OK = 0
    SYSTEM_ERROR = -1
    RUNTIME_INCONSISTENCY = -2
    DATA_INCONSISTENCY = -3
    CONNECTION_LOSS = -4
    MARSHALLING_ERROR = -5
    UNIMPLEMENTED = -6
    OPERATION_TIMEOUT = -7
    BAD_ARGUMENTS = -8
    UNKNOWN_SESSION = -12
    NEW_CONFIG_NO_QUORUM = -13
    RECONFIG_IN_PROGRESS = -14
    API_ERROR = -100
    NO_NODE = -101
    NO_AUTH = -102
    BAD_VERSION = -103
    NO_CHILDREN_FOR_EPHEMERALS = -108
    NODE_EXISTS = -110
    NOT_EMPTY = -111
    SESSION_EXPIRED = -112
    INVALID_CALLBACK = -113
    INVALID_ACL = -114
    AUTH_FAILED = -115
    SESSION_MOVED = -118
    NOT_READ_ONLY = -119
    EPHEMERAL_ON_LOCAL_SESSION = -120
    NO_WATCHER = -121
    REQUEST_TIMEOUT = -122
    RECONFIG_DISABLED = -123
    SESSION_CLOSED_REQUIRE_SASL_AUTH = -124
    QUOTA_EXCEEDED = -125
    THROTTLED = -127


class ZKError(Exception):
    """Base of every ZooKeeper error; `code` is the wire code, `path` what it concerns."""

    code: Code = Code.SYSTEM_ERROR

    def __init__(self, path: str | None = None, message: str | None = None) -> None:
        self.path = path
        self.message = message
        text = message or self.code.name.replace("_", " ").lower()
        super().__init__(f"{text}: {path}" if path else text)

    @staticmethod
    def from_code(code: int, path: str | None = None) -> ZKError:
        """The exception for a wire error code (an unknown code gives a plain ZKError)."""
        cls = _BY_CODE.get(code)
        if cls is None:
            err = ZKError(path, f"unknown error code {code}")
            return err
        return cls(path)


class SystemZKError(ZKError):
    """ZooKeeper error -1 (SYSTEM_ERROR)."""

    code = Code.SYSTEM_ERROR


class RuntimeInconsistencyError(ZKError):
    """ZooKeeper error -2 (RUNTIME_INCONSISTENCY)."""

    code = Code.RUNTIME_INCONSISTENCY


class DataInconsistencyError(ZKError):
    """ZooKeeper error -3 (DATA_INCONSISTENCY)."""

    code = Code.DATA_INCONSISTENCY


class ConnectionLossError(ZKError):
    """ZooKeeper error -4 (CONNECTION_LOSS)."""

    code = Code.CONNECTION_LOSS


class MarshallingError(ZKError):
    """ZooKeeper error -5 (MARSHALLING_ERROR)."""

    code = Code.MARSHALLING_ERROR


class UnimplementedError(ZKError):
    """ZooKeeper error -6 (UNIMPLEMENTED)."""

    code = Code.UNIMPLEMENTED


class OperationTimeoutError(ZKError):
    """ZooKeeper error -7 (OPERATION_TIMEOUT)."""

    code = Code.OPERATION_TIMEOUT


class BadArgumentsError(ZKError):
    """ZooKeeper error -8 (BAD_ARGUMENTS)."""

    code = Code.BAD_ARGUMENTS


class UnknownSessionError(ZKError):
    """ZooKeeper error -12 (UNKNOWN_SESSION)."""

    code = Code.UNKNOWN_SESSION


class NewConfigNoQuorumError(ZKError):
    """ZooKeeper error -13 (NEW_CONFIG_NO_QUORUM)."""

    code = Code.NEW_CONFIG_NO_QUORUM


class ReconfigInProgressError(ZKError):
    """ZooKeeper error -14 (RECONFIG_IN_PROGRESS)."""

    code = Code.RECONFIG_IN_PROGRESS


class APIError(ZKError):
    """ZooKeeper error -100 (API_ERROR)."""

    code = Code.API_ERROR


class NoNodeError(ZKError):
    """ZooKeeper error -101 (NO_NODE)."""

    code = Code.NO_NODE


class NoAuthError(ZKError):
    """ZooKeeper error -102 (NO_AUTH)."""

    code = Code.NO_AUTH


class BadVersionError(ZKError):
    """ZooKeeper error -103 (BAD_VERSION)."""

    code = Code.BAD_VERSION


class NoChildrenForEphemeralsError(ZKError):
    """ZooKeeper error -108 (NO_CHILDREN_FOR_EPHEMERALS)."""

    code = Code.NO_CHILDREN_FOR_EPHEMERALS


class NodeExistsError(ZKError):
    """ZooKeeper error -110 (NODE_EXISTS)."""

    code = Code.NODE_EXISTS


class NotEmptyError(ZKError):
    """ZooKeeper error -111 (NOT_EMPTY)."""

    code = Code.NOT_EMPTY


class SessionExpiredError(ZKError):
    """ZooKeeper error -112 (SESSION_EXPIRED)."""

    code = Code.SESSION_EXPIRED


class InvalidCallbackError(ZKError):
    """ZooKeeper error -113 (INVALID_CALLBACK)."""

    code = Code.INVALID_CALLBACK


class InvalidACLError(ZKError):
    """ZooKeeper error -114 (INVALID_ACL)."""

    code = Code.INVALID_ACL


class AuthFailedError(ZKError):
    """ZooKeeper error -115 (AUTH_FAILED)."""

    code = Code.AUTH_FAILED


class SessionMovedError(ZKError):
    """ZooKeeper error -118 (SESSION_MOVED)."""

    code = Code.SESSION_MOVED


class NotReadOnlyError(ZKError):
    """ZooKeeper error -119 (NOT_READ_ONLY)."""

    code = Code.NOT_READ_ONLY


class EphemeralOnLocalSessionError(ZKError):
    """ZooKeeper error -120 (EPHEMERAL_ON_LOCAL_SESSION)."""

    code = Code.EPHEMERAL_ON_LOCAL_SESSION


class NoWatcherError(ZKError):
    """ZooKeeper error -121 (NO_WATCHER)."""

    code = Code.NO_WATCHER


class RequestTimeoutError(ZKError):
    """ZooKeeper error -122 (REQUEST_TIMEOUT)."""

    code = Code.REQUEST_TIMEOUT


class ReconfigDisabledError(ZKError):
    """ZooKeeper error -123 (RECONFIG_DISABLED)."""

    code = Code.RECONFIG_DISABLED


class SessionClosedRequireSaslAuthError(ZKError):
    """ZooKeeper error -124 (SESSION_CLOSED_REQUIRE_SASL_AUTH)."""

    code = Code.SESSION_CLOSED_REQUIRE_SASL_AUTH


class QuotaExceededError(ZKError):
    """ZooKeeper error -125 (QUOTA_EXCEEDED)."""

    code = Code.QUOTA_EXCEEDED


class ThrottledError(ZKError):
    """ZooKeeper error -127 (THROTTLED)."""

    code = Code.THROTTLED


_BY_CODE: dict[int, type[ZKError]] = {
    cls.code: cls for cls in list(globals().values()) if isinstance(cls, type) and issubclass(cls, ZKError) and cls is not ZKError
}
