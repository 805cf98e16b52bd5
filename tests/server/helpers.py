"""In-process server fixtures and a bare async wire client for the server tests.

The bare client speaks through our own codec and does nothing on its own (no pings, no
reconnects), so tests can pipeline, go silent, or send garbage on purpose.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import trio

from ccore.server.config import ServerConfig
from ccore.server.zkserver import ZKServer
from ccore.znodes import protocol
from ccore.znodes import records as r
from ccore.znodes.acl import OPEN_ACL_UNSAFE
from ccore.znodes.constants import XID_WATCH_EVENT, CreateMode, OpCode


def config(tmp_path: Path, **kw: Any) -> ServerConfig:
    kw.setdefault("tick_time_ms", 100)
    kw.setdefault("client_port", 0)
    return ServerConfig(data_dir=tmp_path / "data", **kw)


class RawClient:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.frames = protocol.FrameReader()
        self.xid = 0
        self.ops: dict[int, int] = {}
        self.session_id = 0
        self.passwd = b""
        self.timeout_ms = 0
        self.read_only = False  # the server's answer: a read-only session
        self.events: list[r.WatcherEvent] = []
        self.log: list[tuple[str, Any]] = []  # ("event", WatcherEvent) / ("reply", ReplyHeader)

    @classmethod
    async def connect(
        cls,
        port: int,
        timeout_ms: int = 2000,
        session_id: int = 0,
        passwd: bytes = bytes(16),
        last_zxid: int = 0,
        read_only: bool = False,
    ) -> RawClient:
        """Raises EOFError when the server closes the connection without an answer."""
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        c = cls(stream)
        await stream.send_all(
            protocol.encode_connect_request(r.ConnectRequest(0, last_zxid, timeout_ms, session_id, passwd, read_only))
        )
        resp = protocol.decode_connect_response(await c._frame())
        c.session_id, c.passwd, c.timeout_ms, c.read_only = resp.session_id, resp.passwd, resp.timeout, resp.read_only
        return c

    async def _frame(self) -> bytes:
        while True:
            payload = self.frames.next_frame()
            if payload is not None:
                return payload
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise EOFError("server closed the connection")
            self.frames.feed(chunk)

    async def send(self, op: int, record: Any = None) -> int:
        self.xid += 1
        self.ops[self.xid] = op
        await self.stream.send_all(protocol.encode_request(self.xid, op, record))
        return self.xid

    async def reply(self) -> tuple[r.ReplyHeader, Any]:
        """The next reply, recording (but skipping) watch events before it."""
        while True:
            payload = await self._frame()
            xid = int.from_bytes(payload[:4], "big", signed=True)
            header, body = protocol.decode_reply(payload, self.ops.get(xid))
            if header.xid == XID_WATCH_EVENT:
                self.events.append(body)
                self.log.append(("event", body))
                continue
            self.log.append(("reply", header))
            return header, body

    async def call(self, op: int, record: Any = None) -> tuple[r.ReplyHeader, Any]:
        await self.send(op, record)
        return await self.reply()

    async def create(self, path: str, data: bytes = b"", mode: CreateMode = CreateMode.PERSISTENT) -> tuple[r.ReplyHeader, Any]:
        return await self.call(OpCode.create, r.CreateRequest(path, data, OPEN_ACL_UNSAFE, int(mode)))

    async def aclose(self) -> None:
        await self.stream.aclose()


async def start_server(nursery: trio.Nursery, tmp_path: Path, **kw: Any) -> ZKServer:
    return await nursery.start(ZKServer(config(tmp_path, **kw)).run)


INF = math.inf
