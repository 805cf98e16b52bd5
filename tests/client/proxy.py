"""A Trio TCP proxy for one upstream server that a test can cut or hold.

proxy = await open_proxy(server.port)      # fixture; runs in the test's nursery
connect(proxy.connect_string)
proxy.cut()      # close every connection, and close new ones at once (server "gone")
proxy.hold()     # keep connections open but forward nothing (a silent network)
proxy.restore()  # forward again
"""

from __future__ import annotations

import trio

HOST = "127.0.0.1"


class Proxy:
    def __init__(self, upstream_port: int, upstream_host: str = HOST) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.mode = "pass"
        self.accepted = 0
        self._flowing = trio.Event()
        self._flowing.set()
        self._scopes: set[trio.CancelScope] = set()

    @property
    def connect_string(self) -> str:
        return f"{HOST}:{self.port}"

    def cut(self) -> None:
        self.mode = "cut"
        for scope in list(self._scopes):
            scope.cancel()

    def hold(self) -> None:
        self.mode = "hold"
        self._flowing = trio.Event()

    def restore(self) -> None:
        self.mode = "pass"
        self._flowing.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host=HOST)
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        self.accepted += 1
        async with client:
            if self.mode == "cut":
                return
            try:
                upstream = await trio.open_tcp_stream(*self.upstream)
            except OSError:
                return
            async with upstream:
                with trio.CancelScope() as scope:
                    self._scopes.add(scope)
                    try:
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(self._pump, client, upstream, nursery.cancel_scope)
                            nursery.start_soon(self._pump, upstream, client, nursery.cancel_scope)
                    finally:
                        self._scopes.discard(scope)

    async def _pump(self, src: trio.SocketStream, dst: trio.SocketStream, scope: trio.CancelScope) -> None:
        try:
            while True:
                data = await src.receive_some(65536)
                if not data:
                    break
                await self._flowing.wait()
                if self.mode == "cut":
                    break
                await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        scope.cancel()
