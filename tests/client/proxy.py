"""A TCP proxy for one upstream server that a test can cut or hold (anyio: it runs in the
test's own event loop, Trio or asyncio).

proxy = await open_proxy(server.port)      # fixture; runs in the test's task group
connect(proxy.connect_string)
proxy.cut()      # close every connection, and close new ones at once (server "gone")
proxy.hold()     # keep connections open but forward nothing (a silent network)
proxy.restore()  # forward again
"""

from __future__ import annotations

import anyio
import anyio.abc

HOST = "127.0.0.1"


class Proxy:
    def __init__(self, upstream_port: int, upstream_host: str = HOST) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.mode = "pass"
        self.accepted = 0
        self._flowing = anyio.Event()
        self._flowing.set()
        self._scopes: set[anyio.CancelScope] = set()

    @property
    def connect_string(self) -> str:
        return f"{HOST}:{self.port}"

    def cut(self) -> None:
        self.mode = "cut"
        for scope in list(self._scopes):
            scope.cancel()

    def hold(self) -> None:
        self.mode = "hold"
        self._flowing = anyio.Event()

    def restore(self) -> None:
        self.mode = "pass"
        self._flowing.set()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with await anyio.create_tcp_listener(local_host=HOST, local_port=0) as listener:
            self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
            task_status.started()
            await listener.serve(self._handle)

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        self.accepted += 1
        async with client:
            if self.mode == "cut":
                return
            try:
                upstream = await anyio.connect_tcp(*self.upstream)
            except OSError:
                return
            async with upstream:
                with anyio.CancelScope() as scope:
                    self._scopes.add(scope)
                    try:
                        async with anyio.create_task_group() as tasks:
                            tasks.start_soon(self._pump, client, upstream, tasks.cancel_scope)
                            tasks.start_soon(self._pump, upstream, client, tasks.cancel_scope)
                    finally:
                        self._scopes.discard(scope)

    async def _pump(self, src: anyio.abc.SocketStream, dst: anyio.abc.SocketStream, scope: anyio.CancelScope) -> None:
        try:
            while True:
                data = await src.receive(65536)
                await self._flowing.wait()
                if self.mode == "cut":
                    break
                await dst.send(data)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        scope.cancel()
