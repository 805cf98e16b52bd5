"""Per-link TCP fault proxies on loopback: one listening port forwarding to one upstream.

A directed peer link of the ensemble (server 1 dials server 2: name ``("peer", 1, 2)``) or a
client link (``("client", 3)``) goes through its own `LinkProxy`, so a test can fault exactly
that direction:

- `cut()`: every connection is closed now, and new ones are accepted and closed at once
  (the dialler sees a reset-like EOF, as when a host refuses);
- `blackhole()`: connections are accepted and kept, nothing flows and nothing closes (the
  proxy still dials the upstream for a new connection, which so sees an idle one). By
  default bytes are *dropped*; since a TCP stream that lost bytes in the middle can never be
  correct again, `heal()` closes every connection that lost bytes (as TCP gives up on a
  connection that timed out). `blackhole(hold=True)` instead stops reading, so the senders'
  socket buffers fill and they block, and `heal()` lets the held bytes through in order (as
  TCP retransmission does after a short partition): late, stale messages arrive after the
  heal, which a consensus protocol must tolerate too;
- `delay(seconds, jitter)`: every chunk is delivered `seconds + uniform(0, jitter)` after it
  was read, never before a chunk read earlier (order is kept, as on one TCP stream);
- `heal()`: back to forwarding with no delay.

`ProxyFleet` runs many proxies in one Trio nursery. `FleetThread` runs a fleet in a
background thread and gives a blocking, bounded control API to threaded test code: every
call returns once the fault is in force (a cut returns after the connections are closed) or
raises `ProxyControlError` after `command_timeout_s`. We chose a thread over a separate
process: no extra process to start, reap or lose, no control protocol to get wrong, and the
servers under test are separate processes anyway.
"""

from __future__ import annotations

import concurrent.futures
import enum
import logging
import math
import random
import threading
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any

import attrs
import trio

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
LinkName = tuple[Hashable, ...]  # ("peer", 1, 2) for the link 1 -> 2, ("client", 3)
_CHUNK_BYTES = 65536
_QUEUE_CHUNKS = 64  # per direction; a full queue stops reading, so senders feel backpressure
_EOF = b""  # queued to say "the sender closed" (after every byte read before it)


def link_label(name: LinkName) -> str:
    """A report-friendly spelling: ``peer:1->2``, ``client:3``."""
    if len(name) == 3 and name[0] == "peer":
        return f"peer:{name[1]}->{name[2]}"
    return ":".join(str(part) for part in name)


class Mode(enum.Enum):
    PASS = "pass"
    CUT = "cut"
    BLACKHOLE = "blackhole"


class ProxyControlError(RuntimeError):
    """A control call did not complete in time, or the fleet is not running."""


@attrs.frozen
class LinkStats:
    """A snapshot of one proxy's state and counters."""

    name: LinkName
    port: int
    upstream: tuple[str, int]
    mode: str
    hold: bool
    delay_s: float
    jitter_s: float
    accepted: int
    refused: int
    upstream_failures: int
    open_connections: int
    bytes_forwarded: int
    bytes_dropped: int


@attrs.define(eq=False)
class _Pipe:
    """One accepted connection and (once dialled) its upstream connection."""

    client: trio.SocketStream
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    done: trio.Event = attrs.Factory(trio.Event)
    lost: bool = False  # bytes (or an EOF) were dropped: the stream can never be right again


class LinkProxy:
    """One listening port on 127.0.0.1 forwarding to one upstream, with faults."""

    def __init__(
        self,
        name: LinkName,
        upstream: tuple[str, int],
        *,
        host: str = HOST,
        port: int = 0,
        rng: random.Random | None = None,
        connect_timeout_s: float = 2.0,
    ) -> None:
        self.name = name
        self.upstream = upstream
        self.host = host
        self.port = port
        self.mode = Mode.PASS
        self.hold = False
        self.delay_s = 0.0
        self.jitter_s = 0.0
        self._rng = rng or random.Random(0)
        self._connect_timeout_s = connect_timeout_s
        self._pipes: set[_Pipe] = set()
        # Replaced (after being set) on every fault change, so waiters wake and re-check.
        self._changed = trio.Event()
        self._counters = {"accepted": 0, "refused": 0, "upstream_failures": 0, "forwarded": 0, "dropped": 0}

    # -- faults (called on the Trio thread) -------------------------------------------------

    async def cut(self) -> None:
        """Close every connection now and refuse new ones (accept-and-close) until `heal`."""
        self._set(Mode.CUT)
        await self._close_pipes(list(self._pipes))

    def blackhole(self, hold: bool = False) -> None:
        """Keep connections, deliver nothing: drop the bytes, or with `hold` stop reading."""
        self.hold = hold
        self._set(Mode.BLACKHOLE)

    def delay(self, seconds: float, jitter: float = 0.0) -> None:
        """Delay bytes read from now on by `seconds + uniform(0, jitter)`, keeping order."""
        if not (math.isfinite(seconds) and seconds >= 0 and math.isfinite(jitter) and jitter >= 0):
            raise ValueError(f"delay needs finite seconds >= 0 and jitter >= 0, got {seconds}, {jitter}")
        self.delay_s, self.jitter_s = seconds, jitter
        self._set(self.mode)

    async def heal(self) -> None:
        """Forward again with no delay; connections that lost bytes in a blackhole are closed."""
        self.delay_s = self.jitter_s = 0.0
        self.hold = False
        self._set(Mode.PASS)
        await self._close_pipes([p for p in self._pipes if p.lost])

    def stats(self) -> LinkStats:
        c = self._counters
        return LinkStats(
            self.name, self.port, self.upstream, self.mode.value, self.hold, self.delay_s, self.jitter_s,
            c["accepted"], c["refused"], c["upstream_failures"], len(self._pipes), c["forwarded"], c["dropped"],
        )  # fmt: skip

    def _set(self, mode: Mode) -> None:
        self.mode = mode
        self._changed.set()
        self._changed = trio.Event()

    async def _close_pipes(self, pipes: list[_Pipe]) -> None:
        for pipe in pipes:
            pipe.scope.cancel()
        for pipe in pipes:
            await pipe.done.wait()

    def _dropping(self) -> bool:
        return self.mode is Mode.BLACKHOLE and not self.hold

    async def _until_flowing(self) -> None:
        """Wait while a holding blackhole is in force."""
        while self.mode is Mode.BLACKHOLE and self.hold:
            await self._changed.wait()

    # -- serving ----------------------------------------------------------------------------

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and forward until cancelled; `task_status.started(port)`."""
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        listener = listeners[0]
        for extra in listeners[1:]:
            await extra.aclose()
        self.port = listener.socket.getsockname()[1]
        async with listener, trio.open_nursery() as nursery:
            task_status.started(self.port)
            while True:
                stream = await listener.accept()
                nursery.start_soon(self._handle, stream)

    async def _handle(self, client: trio.SocketStream) -> None:
        pipe = _Pipe(client)
        upstream: trio.SocketStream | None = None
        if self.mode is Mode.CUT:
            self._counters["refused"] += 1
            await client.aclose()
            pipe.done.set()
            return
        self._counters["accepted"] += 1
        self._pipes.add(pipe)
        try:
            with pipe.scope:
                # Dialled even in a blackhole: the upstream sees an idle connection (no byte
                # gets through), and one code path keeps drop/hold/heal the same for all.
                upstream = await self._dial()
                if upstream is None:
                    return
                async with trio.open_nursery() as nursery:
                    self._start_direction(nursery, pipe, client, upstream)
                    self._start_direction(nursery, pipe, upstream, client)
        finally:
            self._pipes.discard(pipe)
            with trio.CancelScope(shield=True):
                for stream in (client, upstream):
                    if stream is not None:
                        await stream.aclose()
            pipe.done.set()

    async def _dial(self) -> trio.SocketStream | None:
        with trio.move_on_after(self._connect_timeout_s):
            try:
                return await trio.open_tcp_stream(*self.upstream)
            except OSError as exc:
                log.debug("%s: upstream %s refused: %s", link_label(self.name), self.upstream, exc)
        self._counters["upstream_failures"] += 1
        return None

    def _start_direction(self, nursery: trio.Nursery, pipe: _Pipe, src: trio.SocketStream, dst: trio.SocketStream) -> None:
        send, receive = trio.open_memory_channel[tuple[float, bytes]](_QUEUE_CHUNKS)
        nursery.start_soon(self._reader, pipe, src, send)
        nursery.start_soon(self._writer, pipe, dst, receive)

    async def _receive(self, stream: trio.SocketStream) -> bytes:
        try:
            return await stream.receive_some(_CHUNK_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return _EOF  # a reset is an end of stream here; the other side learns it as EOF

    async def _reader(self, pipe: _Pipe, src: trio.SocketStream, send: trio.MemorySendChannel[tuple[float, bytes]]) -> None:
        last_due = 0.0
        async with send:
            while True:
                await self._until_flowing()
                chunk = await self._receive(src)
                if self._dropping():
                    pipe.lost = True
                    self._counters["dropped"] += len(chunk)
                    if not chunk:
                        return  # the EOF is dropped: the writer stays, nothing closes
                    continue
                # Never due before an earlier chunk: jitter must not reorder a TCP stream.
                due = trio.current_time() + self.delay_s + self._rng.uniform(0.0, self.jitter_s)
                last_due = max(last_due, due)
                await send.send((last_due, chunk))
                if not chunk:
                    return

    async def _writer(self, pipe: _Pipe, dst: trio.SocketStream, receive: trio.MemoryReceiveChannel[tuple[float, bytes]]) -> None:
        async with receive:
            async for due, chunk in receive:
                await trio.sleep_until(due)
                await self._until_flowing()
                if self._dropping():
                    pipe.lost = True
                    self._counters["dropped"] += len(chunk)
                    continue
                if not chunk:
                    pipe.scope.cancel()  # every earlier byte is delivered: close both ends
                    return
                try:
                    await dst.send_all(chunk)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pipe.scope.cancel()
                    return
                self._counters["forwarded"] += len(chunk)
        await trio.sleep_forever()  # the reader dropped an EOF: keep the connection open


class ProxyFleet:
    """Many `LinkProxy`s in one nursery, addressed by link name. Use on the Trio thread:

    async with trio.open_nursery() as nursery:
        fleet = await nursery.start(ProxyFleet().run)
        port = await fleet.add(("peer", 1, 2), ("127.0.0.1", 4002))
    """

    def __init__(self, *, host: str = HOST, seed: int = 0) -> None:
        self.host = host
        self._seed = seed
        self._proxies: dict[LinkName, LinkProxy] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                task_status.started(self)
                await trio.sleep_forever()
            finally:
                self._nursery = None

    async def add(self, name: LinkName, upstream: tuple[str, int], port: int = 0) -> int:
        """Start a proxy for `name` forwarding to `upstream`; returns its listening port."""
        if self._nursery is None:
            raise ProxyControlError("the fleet is not running")
        if name in self._proxies:
            raise ValueError(f"a proxy named {link_label(name)} already exists")
        # One Random per link, derived from the fleet's seed and the name: jitter replays.
        rng = random.Random(f"{self._seed}/{link_label(name)}")
        proxy = LinkProxy(name, upstream, host=self.host, port=port, rng=rng)
        self._proxies[name] = proxy
        try:
            return await self._nursery.start(proxy.serve)
        except BaseException:
            del self._proxies[name]
            raise

    def __getitem__(self, name: LinkName) -> LinkProxy:
        try:
            return self._proxies[name]
        except KeyError:
            raise KeyError(f"no proxy named {link_label(name)}") from None

    def names(self) -> list[LinkName]:
        return list(self._proxies)

    async def heal_all(self) -> None:
        for proxy in list(self._proxies.values()):
            await proxy.heal()


class FleetThread:
    """A `ProxyFleet` in a background thread with a blocking control API.

        with FleetThread(seed=7) as fleet:
            port = fleet.add(("client", 1), ("127.0.0.1", server_port))
            fleet.cut(("client", 1)); ...; fleet.heal(("client", 1))

    Every call waits at most `command_timeout_s` and raises `ProxyControlError` past it.
    """

    def __init__(self, *, seed: int = 0, host: str = HOST, command_timeout_s: float = 5.0) -> None:
        self.host = host
        self.command_timeout_s = command_timeout_s
        self._fleet = ProxyFleet(host=host, seed=seed)
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._ports: dict[LinkName, int] = {}

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FleetThread:
        self._thread = threading.Thread(target=self._main, name="chaos-proxy-fleet", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.command_timeout_s) or self._token is None:
            raise ProxyControlError(f"proxy fleet did not start within {self.command_timeout_s}s: {self._error!r}")
        return self

    def close(self) -> None:
        """Stop every proxy (closing their connections) and join the thread, bounded."""
        token, nursery = self._token, self._nursery
        if token is not None and nursery is not None:
            try:
                token.run_sync_soon(nursery.cancel_scope.cancel)
            except trio.RunFinishedError:
                pass
        if self._thread is not None:
            self._thread.join(self.command_timeout_s)
            if self._thread.is_alive():
                raise ProxyControlError(f"proxy fleet thread did not stop within {self.command_timeout_s}s")

    def __enter__(self) -> FleetThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _main(self) -> None:
        try:
            trio.run(self._run)
        except BaseException as exc:  # reported to start() or logged; the thread must end
            self._error = exc
            log.exception("proxy fleet thread failed")
        finally:
            self._token = None
            self._ready.set()

    async def _run(self) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self._fleet.run)
            self._token = trio.lowlevel.current_trio_token()
            self._nursery = nursery
            self._ready.set()

    # -- control ----------------------------------------------------------------------------

    def _call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run `fn` on the fleet's Trio thread; return its result or raise, within the timeout."""
        token, nursery = self._token, self._nursery
        if token is None or nursery is None:
            raise ProxyControlError("the proxy fleet is not running")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        timeout_s = self.command_timeout_s

        async def command() -> None:
            try:
                with trio.fail_after(timeout_s):
                    result = await fn()
            except BaseException as exc:  # handed to the caller, who re-raises it
                if not future.done():
                    future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                if not future.done():
                    future.set_result(result)

        try:
            token.run_sync_soon(nursery.start_soon, command)
        except trio.RunFinishedError:
            raise ProxyControlError("the proxy fleet has stopped") from None
        try:
            return future.result(timeout_s + 1.0)
        except concurrent.futures.TimeoutError:
            raise ProxyControlError(f"proxy fleet did not answer within {timeout_s}s") from None
        except trio.TooSlowError:
            raise ProxyControlError(f"proxy command took over {timeout_s}s") from None

    def add(self, name: LinkName, upstream: tuple[str, int], port: int = 0) -> int:
        """Start a proxy; returns its port on `self.host`."""
        bound = self._call(lambda: self._fleet.add(name, upstream, port))
        self._ports[name] = bound
        return bound

    def port(self, name: LinkName) -> int:
        try:
            return self._ports[name]
        except KeyError:
            raise KeyError(f"no proxy named {link_label(name)}") from None

    def address(self, name: LinkName) -> tuple[str, int]:
        return (self.host, self.port(name))

    def names(self) -> list[LinkName]:
        return list(self._ports)

    def cut(self, name: LinkName) -> None:
        self._call(lambda: self._fleet[name].cut())

    def blackhole(self, name: LinkName, hold: bool = False) -> None:
        self._call(_sync(lambda: self._fleet[name].blackhole(hold)))

    def delay(self, name: LinkName, seconds: float, jitter: float = 0.0) -> None:
        self._call(_sync(lambda: self._fleet[name].delay(seconds, jitter)))

    def heal(self, name: LinkName) -> None:
        self._call(lambda: self._fleet[name].heal())

    def heal_all(self) -> None:
        self._call(self._fleet.heal_all)

    def stats(self, name: LinkName) -> LinkStats:
        return self._call(_sync(lambda: self._fleet[name].stats()))

    # -- ensemble wiring --------------------------------------------------------------------

    def add_ensemble(
        self, peer_addresses: dict[int, tuple[str, int]], client_addresses: dict[int, tuple[str, int]] | None = None
    ) -> None:
        """A proxy for every directed peer link i -> j (upstream: j's peer address) and, if
        given, one per server's client port (``("client", i)``)."""
        for i in peer_addresses:
            for j, address in peer_addresses.items():
                if i != j:
                    self.add(("peer", i, j), address)
        for i, address in (client_addresses or {}).items():
            self.add(("client", i), address)

    def dial_map(self, server: int, peers: Iterable[int]) -> dict[int, tuple[str, int]]:
        """Where `server` should dial each peer: the proxy of that directed link (feed this to
        the `dial_address` hook of server/peers.py)."""
        return {j: self.address(("peer", server, j)) for j in peers if j != server}


def _sync(fn: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    async def run() -> Any:
        return fn()

    return run
