"""The driver of a client session: connects, reads, writes, pings and reconnects.

It is written against anyio, so it runs under Trio and asyncio alike (`trio.run(main)` or
`asyncio.run(main())`); the protocol itself is the sans-I/O `protocol.ClientProtocol`.

Per TCP connection there are three tasks: a reader (bytes -> ClientProtocol -> wake
waiters), a writer (drains the protocol's outbox, coalescing whatever requests queued
meanwhile into one send) and a heartbeat (handshake deadline, pings every timeout/3, and the
read timeout of 2/3 of the session timeout, as ZooKeeper's ClientCnxn). With `follow_config`
each connection asks for /zookeeper/config as soon as it is up, and the reader takes the
ensemble's host list from the reply (no task waits for it). A request is not a
task: the caller's own task queues it and sleeps on an Event (the loop's own: `_loop.py`).

When a connection dies the session moves on to the next host of the connection string, with
its session id, password and last zxid; a server that has seen less than we have refuses us
(it closes the connection) and we try the next. Every watch is re-registered on the new
connection (setWatches / setWatches2).
"""

from __future__ import annotations

import logging
import random
import ssl
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from ccore.znodes.constants import AddWatchMode, EventType, KeeperState, OpCode, WatcherType
from ccore.znodes.errors import (
    AuthFailedError,
    BadArgumentsError,
    ConnectionLossError,
    MarshallingError,
    NoWatcherError,
    SessionExpiredError,
    UnimplementedError,
    ZKError,
)
from ccore.znodes.groups import leaves
from ccore.znodes.jute import ProtocolError
from ccore.znodes.paths import CONFIG
from ccore.znodes.records import AddWatchRequest, GetDataRequest, Record, RemoveWatchesRequest

from . import protocol as p
from ._loop import Flag, event_class
from .errors import ClientClosedError, NoServerError
from .hosts import HostPort, hosts_from_config
from .watches import REMOVED_EVENT, ClientState, StateStream, Watch, WatchStream

log = logging.getLogger(__name__)

# Below glibc's mmap threshold (128 KiB): a larger recv buffer is mmapped and unmapped on
# every call, which costs ~8 us per receive; a big reply simply takes several receives.
RECEIVE_BYTES = 64 * 1024
_PERSISTENT_TYPES = (WatcherType.PERSISTENT, WatcherType.PERSISTENT_RECURSIVE)
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 1.0
CLOSE_TIMEOUT_S = 2.0
# Bound on the removeWatches sent when a watch block is left (it runs shielded).
REMOVE_WATCH_TIMEOUT_S = 2.0


class _Call:
    """One request's rendezvous between the caller's task and the reader task. `on_reply`
    (err, record) runs in the reader when the server answers, for a request nobody awaits."""

    __slots__ = ("done", "err", "error", "on_reply", "path", "record", "zxid")

    def __init__(self, path: str | None, done: Flag) -> None:
        self.done = done
        self.on_reply: Callable[[int, Record | None], None] | None = None
        self.path = path
        self.err = 0
        self.zxid = 0
        self.record: Record | None = None
        self.error: BaseException | None = None


class Session:
    """One client's connection management; `Client` is its public face."""

    def __init__(
        self,
        hosts: Sequence[HostPort],
        *,
        session_timeout_s: float,
        connect_timeout_s: float,
        read_only: bool = False,
        auth: Sequence[tuple[str, bytes]] = (),
        chroot: str | None = None,
        randomize_hosts: bool = True,
        session: tuple[int, bytes] | None = None,
        rng: random.Random | None = None,
        ssl_context: ssl.SSLContext | None = None,
        follow_config: bool = False,
    ) -> None:
        self._rng = rng or random.Random()
        self._randomize_hosts = randomize_hosts
        # A config lists plain client ports only: a TLS client cannot follow it.
        self.follow_config = follow_config and ssl_context is None
        if follow_config and ssl_context is not None:
            log.info("follow_config is ignored with TLS: /zookeeper/config lists plain client ports only")
        self._config_version: int | None = None  # of the config the host list was last taken from
        self._ssl_context = ssl_context  # TLS on every connection when set (client/tls.py)
        self.hosts = list(hosts)
        if randomize_hosts:
            self._rng.shuffle(self.hosts)
        self.hosts_text = ",".join(map(str, hosts))
        self.chroot = chroot
        self.connect_timeout_s = connect_timeout_s
        session_id, passwd = session or (0, None)
        self.core = p.ClientProtocol(
            int(session_timeout_s * 1000), read_only=read_only, auth=auth, session_id=session_id, passwd=passwd
        )
        self.state = ClientState.CONNECTING
        self.host: HostPort | None = None  # the server we are connected to
        self._listeners: set[StateStream] = set()
        self._streams: set[WatchStream] = set()
        # Per request: the loop's own Event, not anyio's wrapper of it (see _loop.py).
        self._new_event = event_class()
        self._connected = anyio.Event()  # set while CONNECTED (and once CLOSED, to wake waiters)
        self._wake_writer = self._new_event()
        self._conn_ready = anyio.Event()  # this connection completed its handshake
        self._conn_scope: anyio.CancelScope | None = None
        self._drop_reason: str | None = None
        self._closing = False
        self._close_error: ZKError | None = None
        self._run_scope = anyio.CancelScope()
        self._last_recv = self._last_send = 0.0
        self._precise_watch_removal = True  # False once a server refuses removeWatches types 4/5

    # --- public-ish state -----------------------------------------------------------------

    @property
    def session_timeout_s(self) -> float:
        ms = self.core.negotiated_timeout_ms or self.core.session_timeout_ms
        return ms / 1000.0

    @property
    def closed(self) -> bool:
        return self.state is ClientState.CLOSED

    def to_client_path(self, server_path: str) -> str:
        root = self.chroot
        if root is None:
            return server_path
        if server_path == root:
            return "/"
        if server_path.startswith(root + "/"):
            return server_path[len(root) :]
        return server_path

    def _set_state(self, state: ClientState) -> None:
        if state is self.state:
            return
        log.info("session %#x: %s -> %s", self.core.session_id, self.state.value, state.value)
        self.state = state
        for listener in list(self._listeners):
            listener._put(state)

    def state_stream(self) -> StateStream:
        return StateStream(self._listeners.add, self._listeners.discard)

    # --- the session's life ---------------------------------------------------------------

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, serve and reconnect until closed. Reports started at the first CONNECTED;
        raises NoServerError if that does not happen within the connect timeout."""
        self._task_status = task_status
        self._started = False
        first_deadline = anyio.current_time() + self.connect_timeout_s
        errors: dict[str, str] = {}
        index, failures = 0, 0
        with self._run_scope:
            while not self._closing and not self.closed:
                host = self.hosts[index % len(self.hosts)]
                budget = self.session_timeout_s / len(self.hosts)  # ZooKeeper's connectTimeout
                if not self._started:
                    left = first_deadline - anyio.current_time()
                    if left <= 0:
                        raise NoServerError(self.hosts_text, self.connect_timeout_s, [f"{h}: {e}" for h, e in errors.items()])
                    budget = min(budget, left)
                reason, was_connected, expired = await self._serve_connection(host, budget)
                errors[str(host)] = reason
                if not was_connected:
                    log.debug("attempt on %s failed: %s", host, reason)
                if expired:
                    continue  # the same server, at once, for a new session
                index += 1
                failures = 0 if was_connected else failures + 1
                if failures and failures % len(self.hosts) == 0 and not self._closing:
                    rounds = failures // len(self.hosts)
                    delay = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** (rounds - 1))
                    await anyio.sleep(delay * (0.5 + self._rng.random()))
        if not self._started:
            # Closed before the first connection was ready (authentication refused).
            raise self._close_error or ClientClosedError()

    async def _serve_connection(self, host: HostPort, budget_s: float) -> tuple[str, bool, bool]:
        """One TCP connection's life. Returns (why it ended, whether it got CONNECTED,
        whether the session expired on it)."""
        self._drop_reason = None
        self._expired = False
        stream: anyio.abc.ByteStream | None = None
        with anyio.move_on_after(budget_s):
            try:
                tcp = await anyio.connect_tcp(host.host, host.port)
            except OSError as e:
                return f"cannot connect: {_connect_reason(e)}", False, False
            try:
                # Assigned once whole: a handshake cut short by the budget leaves None.
                stream = tcp if self._ssl_context is None else await self._secure(tcp, host)
            except (OSError, anyio.BrokenResourceError, anyio.EndOfStream) as e:
                # ssl.SSLError is an OSError: a refused certificate, or not TLS at all.
                return f"TLS handshake failed: {_tls_reason(e)}", False, False
        if stream is None:
            what = "TLS handshake" if self._ssl_context is not None else "TCP connection"
            return f"no {what} within {budget_s:.2g}s", False, False
        self.host = host
        self._conn_ready = anyio.Event()
        self.core.start_connection()
        now = anyio.current_time()
        self._last_recv = self._last_send = now
        try:
            try:
                with anyio.CancelScope() as self._conn_scope:
                    async with anyio.create_task_group() as tasks:
                        tasks.start_soon(self._reader, stream)
                        tasks.start_soon(self._writer, stream)
                        tasks.start_soon(self._heartbeat, now + budget_s)
            finally:
                # TLS says goodbye (close_notify) on close; a server that stopped reading must
                # not hold us here: cancelled (the bound, or the client closing), aclose drops
                # the socket without it. A goodbye to a peer that broke the TLS session off (it
                # refused our certificate: "shutdown while in init") fails, the socket closed
                # all the same: nothing to report beyond the reason the connection ended.
                with anyio.move_on_after(CLOSE_TIMEOUT_S):
                    try:
                        await stream.aclose()
                    except (OSError, anyio.BrokenResourceError) as e:
                        log.debug("closing the connection to %s: %r", host, e)
        finally:
            self._conn_scope = None
            self._connection_ended()
        return self._drop_reason or "connection ended", self._conn_ready.is_set(), self._expired

    async def _secure(self, tcp: anyio.abc.SocketStream, host: HostPort) -> TLSStream:
        """TLS over `tcp`, the server's certificate checked for `host`'s name."""
        assert self._ssl_context is not None
        try:
            return await TLSStream.wrap(tcp, hostname=host.host, ssl_context=self._ssl_context)
        except BaseException:
            await anyio.aclose_forcefully(tcp)
            raise

    def _drop(self, reason: str) -> None:
        """End the current connection (first reason wins)."""
        if self._drop_reason is None:
            self._drop_reason = reason
            if self.host is not None and not self._closing:
                log.info("connection to %s ends: %s", self.host, reason)
        if self._conn_scope is not None:
            self._conn_scope.cancel()

    def _connection_ended(self) -> None:
        for token in self.core.connection_lost():
            if isinstance(token, _Call):
                error: ZKError = ClientClosedError(token.path) if self._closing else ConnectionLossError(token.path)
                self._resolve(token, error=error)
        if self.state is ClientState.CONNECTED and not self._closing:
            self._connected = anyio.Event()
            self._set_state(ClientState.SUSPENDED)
            self._notify_streams(KeeperState.DISCONNECTED)

    async def _reader(self, stream: anyio.abc.ByteReceiveStream) -> None:
        while True:
            try:
                data = await stream.receive(RECEIVE_BYTES)
            except anyio.EndOfStream:
                return self._drop("server closed the connection")
            except (anyio.BrokenResourceError, OSError) as e:
                return self._drop(f"receive failed: {_tls_reason(e)}")
            self._last_recv = anyio.current_time()
            try:
                events = self.core.receive_data(bytes(data))  # TLS gives a bytearray
            except ProtocolError as e:
                # Not ZooKeeper's protocol (or a reply out of order): try another server.
                return self._drop(f"protocol error: {e}")
            for event in events:
                self._dispatch(event)
            if self.core.has_data_to_send:
                # The handshake queues auth and setWatches packets: nobody else would send them.
                self._wake_writer.set()

    async def _writer(self, stream: anyio.abc.ByteSendStream) -> None:
        while True:
            data = self.core.data_to_send()
            if not data:
                await self._wake_writer.wait()
                self._wake_writer = self._new_event()
                continue
            try:
                await stream.send(data)
            except (anyio.BrokenResourceError, OSError) as e:
                return self._drop(f"send failed: {_tls_reason(e)}")
            self._last_send = anyio.current_time()

    async def _heartbeat(self, handshake_deadline: float) -> None:
        with anyio.CancelScope(deadline=handshake_deadline):
            await self._conn_ready.wait()
        if not self._conn_ready.is_set():
            return self._drop("no session established before the connect timeout")
        timeout_s = self.session_timeout_s
        read_timeout_s = timeout_s * 2 / 3
        ping_interval_s = min(timeout_s / 3, 10.0)  # Java: readTimeout/2, at most 10 s apart
        while True:
            now = anyio.current_time()
            if now - self._last_recv >= read_timeout_s:
                return self._drop(f"nothing heard for {read_timeout_s:.2g}s (read timeout)")
            if now - self._last_send >= ping_interval_s:
                self.core.ping()
                self._wake_writer.set()
                self._last_send = now  # the writer will send it at once
            await anyio.sleep_until(min(self._last_recv + read_timeout_s, self._last_send + ping_interval_s))

    def _ask_config(self) -> None:
        """Ask for /zookeeper/config; its reply sets the host list for future reconnections
        (ZooKeeper's client leaves this to the application: a watch and updateServerList).
        Answered in the reader, so a connection that ends right after cannot lose it."""
        call = _Call(CONFIG, self._new_event())
        call.on_reply = self._config_reply
        self.core.request(OpCode.getData, GetDataRequest(CONFIG, False), call)
        self._wake_writer.set()

    def _config_reply(self, err: int, record: Record | None) -> None:
        if err:  # no such node (ZooKeeper 3.4), no access: keep the list
            log.debug("cannot read %s for the host list: error %d", CONFIG, err)
            return
        self.take_config(getattr(record, "data", None) or b"")

    def take_config(self, data: bytes) -> None:
        """Reconnect to the client addresses of this /zookeeper/config text from now on, if it
        names any and is not the version the host list already came from."""
        found = hosts_from_config(data)
        if found is None:
            return
        version, hosts = found
        if version == self._config_version and self._config_version is not None:
            return
        self._config_version = version
        if set(hosts) == set(self.hosts):
            return
        if self._randomize_hosts:
            self._rng.shuffle(hosts)
        log.info("hosts from the config (version %#x): %s", version, ",".join(map(str, hosts)))
        self.hosts = hosts

    # --- events from the protocol ---------------------------------------------------------

    def _dispatch(self, event: p.Event) -> None:
        if isinstance(event, p.Reply):
            token = event.token
            if isinstance(token, _Call):
                self._resolve(token, err=event.err, zxid=event.zxid, record=event.record)
        elif isinstance(event, p.WatchFired):
            ev = event.event
            client_event = p.WatchedEvent(ev.type, ev.state, self.to_client_path(ev.path), ev.zxid)
            for watcher in event.watchers:
                watcher._deliver(client_event)
        elif isinstance(event, p.Connected):
            self._on_connected(event)
        elif isinstance(event, p.AuthReply):
            if isinstance(event.token, _Call):
                self._resolve(event.token, err=event.err)
        elif isinstance(event, p.SessionExpired):
            self._on_expired(event)
        elif isinstance(event, p.AuthFailed):
            self._on_auth_failed(event)

    @staticmethod
    def _resolve(
        call: _Call, *, err: int = 0, zxid: int = 0, record: Record | None = None, error: BaseException | None = None
    ) -> None:
        call.err, call.zxid, call.record, call.error = err, zxid, record, error
        call.done.set()
        if call.on_reply is not None and error is None:
            call.on_reply(err, record)

    def _on_connected(self, event: p.Connected) -> None:
        log.info(
            "connected to %s: session %#x (%s), timeout %d ms%s",
            self.host, event.session_id, "new" if event.new_session else "resumed",
            event.timeout_ms, ", read-only" if event.read_only else "",
        )  # fmt: skip
        self._conn_ready.set()
        self._set_state(ClientState.CONNECTED)
        self._connected.set()
        if not event.new_session:
            self._notify_streams(KeeperState.SYNC_CONNECTED)
        if self.follow_config and self.core.can_send:
            self._ask_config()
        if not self._started:
            self._started = True
            self._task_status.started()

    def _on_expired(self, event: p.SessionExpired) -> None:
        log.warning("session expired; starting a new one")
        self._expired = True
        self._set_state(ClientState.LOST)
        error = SessionExpiredError()
        for watcher in event.watchers:
            watcher._fail(error)
        for stream in self._streams:
            stream._fail(error)
        self._streams.clear()
        self._drop("session expired")

    def _on_auth_failed(self, event: p.AuthFailed) -> None:
        self._close_with(AuthFailedError(None, f"authentication failed (scheme {event.scheme!r})"))

    def _notify_streams(self, state: KeeperState) -> None:
        for stream in self._streams:
            stream._connection_event(p.WatchedEvent(EventType.NONE, state, stream.path))

    # --- requests -------------------------------------------------------------------------

    async def _wait_connected(self) -> None:
        while self.state is not ClientState.CONNECTED or not self.core.can_send:
            if self.closed or self._closing:
                raise self._close_error or ClientClosedError()
            await self._connected.wait()

    async def call(
        self, op: int, record: Record | None, path: str | None = None, watch: tuple[p.WatchKind, str, Any] | None = None
    ) -> Record | None:
        """Send one request (waiting for a connection first) and return its reply record.

        Raises the ZooKeeper error it got, ConnectionLossError if the connection dropped
        with the request in flight (its outcome is unknown), ClientClosedError once closed.
        Cancelling the caller abandons the reply (a write may still happen).
        """
        await self._wait_connected()
        call = _Call(path, self._new_event())
        self.core.request(op, record, call, watch)
        self._wake_writer.set()
        await call.done.wait()
        if call.error is not None:
            raise call.error
        if call.err:
            if op in (OpCode.multi, OpCode.multiRead) and call.record is not None:
                return call.record
            raise ZKError.from_code(call.err, path)
        return call.record

    async def add_auth(self, scheme: str, credential: bytes) -> None:
        call = _Call(None, self._new_event())
        if self.core.add_auth(scheme, credential, call):
            self._wake_writer.set()
            await call.done.wait()
            if call.error is not None:
                raise call.error
            if call.err:
                raise ZKError.from_code(call.err, None)

    # --- watches --------------------------------------------------------------------------

    async def remove_one_shot(self, watch: Watch, server_path: str) -> None:
        """Take a one-shot watch off (and off the server when no other Watch shares it)."""
        kinds = (p.WatchKind.DATA, p.WatchKind.EXIST) if watch.kind is not p.WatchKind.CHILD else (p.WatchKind.CHILD,)
        # Remove from every table it may be in (exists() watches move to EXIST), then ask
        # whether any watcher of those kinds is left on the path.
        removed = [self.core.remove_watcher(k, server_path, watch) for k in kinds]
        last = removed[-1]
        wtype = WatcherType.CHILDREN if watch.kind is p.WatchKind.CHILD else WatcherType.DATA
        watch._deliver(p.WatchedEvent(REMOVED_EVENT[watch.kind], KeeperState.SYNC_CONNECTED, watch.path))
        if last and self.state is ClientState.CONNECTED:
            await self._remove_on_server(server_path, wtype, wtype)

    async def add_persistent_watch(self, stream: WatchStream) -> None:
        mode = AddWatchMode.PERSISTENT_RECURSIVE if stream.recursive else AddWatchMode.PERSISTENT
        await self.call(
            OpCode.addWatch, AddWatchRequest(stream.server_path, int(mode)), stream.path,
            watch=(stream.kind, stream.server_path, stream),
        )  # fmt: skip
        self._streams.add(stream)

    async def remove_persistent_watch(self, stream: WatchStream) -> None:
        self._streams.discard(stream)
        if self.closed:
            return
        if not self.core.remove_watcher(stream.kind, stream.server_path, stream):
            return  # another stream still uses the server's watch
        wtype = WatcherType.PERSISTENT_RECURSIVE if stream.recursive else WatcherType.PERSISTENT
        if self.state is ClientState.CONNECTED:
            with anyio.CancelScope(shield=True), anyio.move_on_after(REMOVE_WATCH_TIMEOUT_S):
                await self._remove_on_server(stream.server_path, wtype, WatcherType.ANY)

    async def _remove_on_server(self, server_path: str, wtype: WatcherType, fallback: WatcherType) -> None:
        """removeWatches(path, wtype), then put back, with setWatches, the watches we still
        hold on the path. ZooKeeper before 3.9 knows only types 1-3 (it answers 4 and 5 with
        MARSHALLING_ERROR: then use `fallback`) and removes watches of every mode with them,
        persistent ones included; putting back what we hold keeps both kinds of server right."""
        try:
            try:
                if not self._precise_watch_removal and wtype in _PERSISTENT_TYPES:
                    raise UnimplementedError(server_path)
                await self.call(OpCode.removeWatches, RemoveWatchesRequest(server_path, int(wtype)), server_path)
            except (MarshallingError, BadArgumentsError, UnimplementedError):
                if wtype not in _PERSISTENT_TYPES:
                    raise
                if self._precise_watch_removal:
                    log.info("server refuses removeWatches type %s; using %s", wtype.name, fallback.name)
                self._precise_watch_removal = False
                await self.call(OpCode.removeWatches, RemoveWatchesRequest(server_path, int(fallback)), server_path)
        except (NoWatcherError, ConnectionLossError, ClientClosedError, SessionExpiredError):
            pass  # nothing to remove, or no connection (the next one will not restore it)
        if self.core.has_watches(server_path) and self.core.can_send:
            self.core.reassert_watches([server_path])
            self._wake_writer.set()

    # --- closing --------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the session on the server (bounded wait) and stop every task."""
        if self.closed or self._closing:
            return
        self._closing = True
        if self.state is ClientState.CONNECTED and self.core.can_send:
            call = _Call(None, self._new_event())
            self.core.request(OpCode.closeSession, None, call)
            self._wake_writer.set()
            with anyio.move_on_after(min(CLOSE_TIMEOUT_S, self.session_timeout_s)):
                await call.done.wait()
        self._close_with(ClientClosedError())

    def _close_with(self, error: ZKError) -> None:
        self._closing = True
        self._close_error = error
        for token in self.core.close():
            if isinstance(token, _Call):
                self._resolve(token, error=error)
            else:
                token._fail(error)
        for stream in self._streams:
            stream._fail(error)
        self._streams.clear()
        self._set_state(ClientState.CLOSED)
        self._connected.set()
        self._drop("closed")
        self._run_scope.cancel()


def _tls_reason(error: BaseException) -> str:
    """Why a connection failed: OpenSSL's reason for a TLS failure (anyio raises the
    ssl.SSLError itself, or a BrokenResourceError caused by it), else the OS's."""
    for e in (error, error.__cause__):
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {e.verify_message}"
        if isinstance(e, ssl.SSLError):
            return (e.reason or str(e)).lower().replace("_", " ")
    for e in (error, error.__cause__):
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
    return str(error) or str(error.__cause__ or "") or "the server closed the connection"


def _connect_reason(error: OSError) -> str:
    """The OS's reason a TCP connect failed. anyio tries every address of the host and raises
    "All connection attempts failed" from the one error (or a group of them): name those."""
    cause = error.__cause__
    found = leaves(cause) if isinstance(cause, BaseExceptionGroup) else [cause] if cause is not None else [error]
    reasons = dict.fromkeys(e.strerror or str(e) if isinstance(e, OSError) else str(e) for e in found)
    return "; ".join(reasons)
