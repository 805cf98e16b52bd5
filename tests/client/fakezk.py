"""A fake ZooKeeper server for client tests: it speaks just enough of the protocol to record
what a client sends and answer as ZooKeeper would (sessions, pings, auth, /zookeeper/config,
reconfig)."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.abc

from ccore.znodes import protocol
from ccore.znodes import records as r
from ccore.znodes.constants import XID_AUTH, XID_PING, OpCode
from ccore.znodes.errors import Code
from ccore.znodes.stat import Stat

CONFIG_STAT = Stat(5, 5, 0, 0, -1, 0, 0, 0, 40, 0, 5)


class FakeServer:
    """Accepts any session, answers getData of /zookeeper/config with `config`, sync, a reconfig with
    `reconfig_answer` (an error code, or the new config's text), pings; records every request.
    `hang_up_after_config`: close the connection once the config was read."""

    def __init__(self, config: bytes = b"", reconfig_answer: int | bytes = b"") -> None:
        self.config = config
        self.reconfig_answer = reconfig_answer
        self.requests: list[tuple[int, Any]] = []
        self.auth: list[r.AuthPacket] = []
        self.connections = 0
        self.hang_up_after_config = False

    async def __call__(self, stream: anyio.abc.ByteStream) -> None:
        self.connections += 1
        frames = protocol.FrameReader()
        connected = False
        while True:
            try:
                frames.feed(await stream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return
            while (payload := frames.next_frame()) is not None:
                if not connected:
                    request = protocol.decode_connect_request(payload)
                    session = request.session_id or 0x1234
                    await stream.send(protocol.encode_connect_response(r.ConnectResponse(0, 10_000, session, bytes(16), False)))
                    connected = True
                    continue
                header, record = protocol.decode_request(payload)
                if header.type == OpCode.ping:
                    await stream.send(protocol.encode_reply(XID_PING, 0, 0))
                    continue
                if header.type == OpCode.auth:
                    self.auth.append(record)
                    await stream.send(protocol.encode_reply(XID_AUTH, 0, 0))
                    continue
                self.requests.append((header.type, record))
                reply = self._answer(header.xid, header.type, record)
                await stream.send(reply)
                if header.type == OpCode.closeSession or (
                    self.hang_up_after_config and header.type == OpCode.getData and record.path == "/zookeeper/config"
                ):
                    await stream.aclose()
                    return

    def _answer(self, xid: int, op: int, record: Any) -> bytes:
        if op == OpCode.getData and record.path == "/zookeeper/config":
            return protocol.encode_reply(xid, 5, 0, r.GetDataResponse(self.config, CONFIG_STAT))
        if op == OpCode.reconfig:
            if isinstance(self.reconfig_answer, int):
                return protocol.encode_reply(xid, 5, self.reconfig_answer)
            return protocol.encode_reply(xid, 6, 0, r.GetDataResponse(self.reconfig_answer, CONFIG_STAT))
        if op == OpCode.sync:
            return protocol.encode_reply(xid, 5, 0, r.SyncResponse(record.path))
        if op == OpCode.closeSession:
            return protocol.encode_reply(xid, 5, 0)
        return protocol.encode_reply(xid, 5, Code.NO_NODE)

    def sent(self, op: int) -> list[Any]:
        return [record for code, record in self.requests if code == op]


@contextlib.contextmanager
def serve_in_thread(handler: FakeServer) -> Iterator[int]:
    """Serve `handler` on 127.0.0.1 from an event loop in a thread (for blocking clients);
    yields the port."""
    ready: queue.Queue[int] = queue.Queue()
    stop = threading.Event()

    async def serve() -> None:
        async with await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0) as listener:
            ready.put(int(listener.extra(anyio.abc.SocketAttribute.local_port)))
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(listener.serve, handler)
                while not stop.is_set():  # noqa: ASYNC110 - set by another thread
                    await anyio.sleep(0.02)
                tasks.cancel_scope.cancel()

    thread = threading.Thread(target=anyio.run, args=(serve,), daemon=True)
    thread.start()
    try:
        yield ready.get(timeout=10)
    finally:
        stop.set()
        thread.join(10)
