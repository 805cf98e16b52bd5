"""A small HTTP/1.1 server on Trio and h11, for the admin API and the Prometheus endpoint.

h11 is the protocol (sans-I/O: bytes in, events out); this module is the socket loop around
it, and a `Handler` turns one `Request` into one `Response`, whose body is bytes or an async
iterator of chunks (sent chunked, with trailers: a streamed snapshot's checksum). Only GET and
HEAD are served. What a misbehaving client can cost is bounded: the request head (line and
headers) is at most `max_header_bytes`, a request body at most `MAX_BODY_BYTES` (and ignored),
the whole request must arrive within `request_timeout_s`, each chunk of a response must be
taken within it, and at most `max_connections` connections are open at once. A bad request
gets its 4xx and the connection closes; nothing a client sends can stop the server.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs
import h11
import trio

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
RECEIVE_BYTES = 64 * 1024
LINGER_BYTES = 1024 * 1024


@attrs.frozen
class Request:
    method: str
    path: str  # without the query, percent-decoding left to the handler
    query: dict[str, str]
    headers: tuple[tuple[str, str], ...]
    client: str  # host:port of the peer, for logs


@attrs.frozen
class Response:
    status: int
    body: bytes | AsyncIterator[bytes] = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    # For a streamed body: called once the body is exhausted, returns trailer fields.
    trailers: Callable[[], list[tuple[str, str]]] | None = None


Handler = Callable[[Request], Awaitable[Response]]


class HttpServer:
    """Serve `handler` on host:port (port 0: any free port) until cancelled."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        handler: Handler,
        *,
        max_header_bytes: int = 16 * 1024,
        request_timeout_s: float = 10.0,
        max_connections: int = 64,
    ) -> None:
        self.name = name
        self.host = host
        self.requested_port = port
        self.handler = handler
        self.max_header_bytes = max_header_bytes
        self.request_timeout_s = request_timeout_s
        self.max_connections = max_connections
        self.open_connections = 0
        self.port: int | None = None
        self._listeners: list[trio.SocketListener] = []

    async def listen(self) -> None:
        """Bind (before any task starts, so that a port in use is one error the caller sees)."""
        self._listeners = await trio.open_tcp_listeners(self.requested_port, host=self.host)
        self.port = self._listeners[0].socket.getsockname()[1]

    async def run(self, *, task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED) -> None:
        if not self._listeners:
            await self.listen()
        await trio.serve_listeners(self._serve, self._listeners, task_status=task_status)

    async def _serve(self, stream: trio.SocketStream) -> None:
        if self.open_connections >= self.max_connections:
            log.warning("%s: %d connections open already; closing a new one", self.name, self.max_connections)
            await stream.aclose()
            return
        self.open_connections += 1
        try:
            peer = stream.socket.getpeername()
            client = f"{peer[0]}:{peer[1]}"
        except OSError:
            client = "?"
        try:
            await self._serve_requests(stream, client)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the client went away
        except trio.TooSlowError:
            log.warning("%s: client %s too slow (over %.0f s); closed", self.name, client, self.request_timeout_s)
        except Exception:
            # A bug met by one request costs that connection, never the server.
            log.exception("%s: request from %s failed unexpectedly; connection closed", self.name, client)
        finally:
            self.open_connections -= 1
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _serve_requests(self, stream: trio.SocketStream, client: str) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_header_bytes)
        while True:
            try:
                with trio.fail_after(self.request_timeout_s):
                    request = await self._receive_request(stream, conn, client)
            except h11.RemoteProtocolError as e:
                status = e.error_status_hint if 400 <= e.error_status_hint < 500 else 400
                log.warning("%s: bad request from %s (%s); answered %d", self.name, client, e, status)
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self._send_simple(stream, conn, status, f"bad request: {e}")
                    await self._linger(stream)
                return
            except _BodyTooLarge:
                await self._send_simple(stream, conn, 413, f"request body over {MAX_BODY_BYTES} bytes")
                await self._linger(stream)
                return
            if request is None:
                return
            if request.method not in ("GET", "HEAD"):
                await self._send_simple(stream, conn, 405, f"method {request.method} not allowed", [("Allow", "GET, HEAD")])
            else:
                response = await self.handler(request)
                await self._send(stream, conn, response, head_only=request.method == "HEAD")
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return  # h11 says this connection cannot carry another request (Connection: close, ...)
            conn.start_next_cycle()

    async def _linger(self, stream: trio.SocketStream) -> None:
        """After an error answer with input left unread: close our side and drain theirs a
        little, so the kernel does not reset the connection (and lose the answer) when we
        close with unread data. Bounded in time and bytes."""
        with trio.move_on_after(min(1.0, self.request_timeout_s)):
            await stream.send_eof()
            drained = 0
            while drained < LINGER_BYTES:
                data = await stream.receive_some(RECEIVE_BYTES)
                if not data:
                    break
                drained += len(data)

    async def _receive_request(self, stream: trio.SocketStream, conn: h11.Connection, client: str) -> Request | None:
        """The next request, its body read and dropped; None if the client closed first."""
        request: h11.Request | None = None
        body = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(RECEIVE_BYTES)
                conn.receive_data(data)  # b"" is the end of input; h11 then reports it
                continue
            if isinstance(event, h11.ConnectionClosed):
                if request is not None:
                    raise h11.RemoteProtocolError("connection closed mid-request", error_status_hint=400)
                return None
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += len(event.data)
                if body > MAX_BODY_BYTES:
                    raise _BodyTooLarge
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return _request(request, client)
            elif event is h11.PAUSED:  # pragma: no cover - only after a complete request
                return None

    async def _send(self, stream: trio.SocketStream, conn: h11.Connection, response: Response, head_only: bool) -> None:
        headers = [("Content-Type", response.content_type), ("Cache-Control", "no-store"), *response.headers]
        body = response.body
        if isinstance(body, bytes):
            headers.append(("Content-Length", str(len(body))))
            await self._write(stream, conn.send(h11.Response(status_code=response.status, headers=headers)))
            if body and not head_only:
                await self._write(stream, conn.send(h11.Data(data=body)))
            await self._write(stream, conn.send(h11.EndOfMessage()))
            return
        if head_only:
            closer = getattr(body, "aclose", None)
            if closer is not None:
                await closer()
            await self._write(stream, conn.send(h11.Response(status_code=response.status, headers=headers)))
            await self._write(stream, conn.send(h11.EndOfMessage()))
            return
        # Streamed: h11 chunks it for an HTTP/1.1 client (an HTTP/1.0 one gets it to the
        # close). If the body fails midway the connection is dropped without the final
        # chunk, so the client sees a truncated response, never a short one that looks whole.
        try:
            await self._write(stream, conn.send(h11.Response(status_code=response.status, headers=headers)))
            async for chunk in body:
                if chunk:
                    await self._write(stream, conn.send(h11.Data(data=chunk)))
        finally:
            closer = getattr(body, "aclose", None)
            if closer is not None:
                with trio.CancelScope(shield=True):
                    await closer()  # its cleanup now, not whenever the generator is collected
        trailers = response.trailers() if response.trailers is not None else []
        await self._write(stream, conn.send(h11.EndOfMessage(headers=trailers)))

    async def _write(self, stream: trio.SocketStream, data: bytes | None) -> None:
        if data:
            # A client that stops reading holds a connection slot for one timeout at most.
            with trio.fail_after(self.request_timeout_s):
                await stream.send_all(data)

    async def _send_simple(
        self,
        stream: trio.SocketStream,
        conn: h11.Connection,
        status: int,
        message: str,
        extra: list[tuple[str, str]] | None = None,
    ) -> None:
        body = (message + "\n").encode()
        headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *(extra or [])]
        try:
            await self._write(stream, conn.send(h11.Response(status_code=status, headers=headers)))
            await self._write(stream, conn.send(h11.Data(data=body)))
            await self._write(stream, conn.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:
            pass  # h11 refuses (a response already started): closing is all that is left


class _BodyTooLarge(Exception):
    pass


def _request(event: h11.Request, client: str) -> Request:
    target = event.target.decode("ascii", "replace")
    parts = urlsplit(target)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    headers = tuple((name.decode("ascii", "replace"), value.decode("latin-1")) for name, value in event.headers)
    return Request(event.method.decode("ascii", "replace"), parts.path or "/", query, headers, client)


def json_default(value: Any) -> Any:
    """What json.dumps cannot write itself: sets (sorted) and paths."""
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)
