"""Links between the servers of an ensemble: length-framed messages over TCP, one connection
per direction.

Each server dials every other server and sends on that connection only; it receives on the
connections others dialled to it. So every directed link is one TCP stream (FIFO, as Zab
needs), and a fault proxy can sit on any one direction. A connection opens with a hello
naming the sender, the ensemble's membership as it sees it (server ids and which of them are
observers) and its own peer address. Servers legitimately see different addresses for the
same member (`0.0.0.0` for themselves, hostnames, NAT, proxies), as ZooKeeper allows, so
addresses are not compared. With a static membership (`dynamic=False`) a different
membership is refused with one log line naming the difference. With reconfiguration on,
memberships differ while a change spreads or a server joins: any server is taken, and one
we do not know (a joiner) is dialled back at the address its hello gives, for as long as
it stays connected (`set_members` replaces the configured set). A broken outgoing link is
redialled with backoff.

The protocol above sees one link per peer, up when both directions are: `on_connected` when
the second comes up, `on_disconnected` when either breaks or the peer's incoming connection
is replaced (so nothing from a new connection is delivered before the break is reported).
Messages sent while the link is down are dropped, as a TCP reset would lose them. A long
message (a SNAP's snapshot) goes as a stream of bounded frames produced while they are sent
(`send_stream`), in its place among the messages around it.

With `tls` (sslQuorum=true) every connection is TLS with a certificate on both sides, checked
against the quorum trust store; the dialling side also checks the far side's certificate
names the address it dialled. A handshake that fails is logged once per peer and reason (a
refused server redials every second or so) and the connection closed, nothing else.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import ssl
import struct
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import attrs
import cbor2
import trio

from .tls import PeerTls, aclose_bounded, describe_failure, handshake

log = logging.getLogger(__name__)

MAX_FRAME = 256 * 1024 * 1024  # any one frame; a SNAP travels as many (server/snap_stream.py)
_LEN = struct.Struct(">I")
# Below glibc's mmap threshold (128 KiB): a larger recv buffer is mmapped and unmapped on
# every call (~8 us per receive); a big frame (a SNAP) simply takes many receives.
RECEIVE_BYTES = 64 * 1024
HELLO_MAGIC = "ccore-peer-1"
MAX_HELLO = 64 * 1024  # a hello names ids and roles: a few hundred bytes


class PeerFrameError(Exception):
    """A peer sent a frame we cannot read: that connection is dropped, nothing else."""


_MEMBERSHIP_TEXT = re.compile(r"members=([-0-9,]*);observers=([-0-9,]*)")


def _ids(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in sorted(ids))


@attrs.frozen
class Membership:
    """Who is in the ensemble, as servers must agree on it: the ids and which are observers."""

    members: frozenset[int]
    observers: frozenset[int] = frozenset()

    @classmethod
    def of(cls, members: Iterable[int], observers: Iterable[int] = ()) -> Membership:
        return cls(frozenset(members), frozenset(observers))

    @property
    def text(self) -> str:
        """The canonical form, sent in the hello and recorded in the data dir: short and
        readable, so no hash of it is needed (it replaced the address digest)."""
        return f"members={_ids(self.members)};observers={_ids(self.observers)}"

    @classmethod
    def parse(cls, text: object) -> Membership | None:
        """The membership a `text` names, or None if it is no such text (e.g. the address
        digest of an older version)."""
        match = _MEMBERSHIP_TEXT.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            return None
        members, observers = ({int(i) for i in g.split(",") if i} for g in match.groups())
        return cls.of(members, observers)

    def describe(self) -> str:
        observers = f"observers {{{_ids(self.observers)}}}" if self.observers else "no observers"
        return f"{{{_ids(self.members)}}} ({observers})"

    def difference(self, theirs: Membership, their_name: str = "theirs", our_name: str = "ours") -> str:
        """What differs between ours (self) and theirs, in words."""
        parts = []
        if only := theirs.members - self.members:
            parts.append(f"{{{_ids(only)}}} only in {their_name}")
        if only := self.members - theirs.members:
            parts.append(f"{{{_ids(only)}}} only in {our_name}")
        for sid in sorted(self.members & theirs.members):
            if (sid in self.observers) != (sid in theirs.observers):
                role = ("an observer", "a participant")
                there, here = role if sid in theirs.observers else role[::-1]
                parts.append(f"server {sid} is {there} in {their_name} and {here} in {our_name}")
        return "; ".join(parts) or "nothing"


def membership_digest(members: Iterable[int], observers: Iterable[int] = ()) -> str:
    """What a server sends in its hello and expects in others': the membership's canonical
    text. `members` may be the address map of PeerNetwork (only its ids count)."""
    return Membership.of(members, observers).text


def address_digest(members: dict[int, tuple[str, int]]) -> str:
    """The membership digest of older versions, a hash of the ids and quorum addresses; their
    data dirs record it. Only to recognise and upgrade such a record."""
    text = ";".join(f"{sid}={host}:{port}" for sid, (host, port) in sorted(members.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def mismatch_message(peer: object, theirs: object, ours: Membership) -> str:
    """One line for a hello whose membership `theirs` (as sent) differs from ours."""
    parsed = Membership.parse(theirs)
    if parsed is None:
        if isinstance(theirs, str) and re.fullmatch(r"[0-9a-f]{16}", theirs):
            return (
                f"server {peer} sent an address digest ({theirs}): it runs an older version that compares "
                "addresses; run the same version on every server"
            )
        return f"server {peer} sent no membership we can read ({repr(theirs)[:80]})"
    return (
        f"server {peer} lists members {parsed.describe()}, we list {ours.describe()}: "
        f"{ours.difference(parsed)}; fix the server.N lines so that every server names the same ids and roles"
    )


class MembershipMismatch(PeerFrameError):
    """A peer's hello names another membership, or an id that does not fit ours: logged once
    per peer and membership, as the peer redials every second or so."""

    def __init__(self, peer: object, theirs: object, message: str) -> None:
        super().__init__(message)
        self.key = (repr(peer), repr(theirs))


async def read_frames(
    stream: trio.abc.ReceiveStream, on_frame: Callable[[bytes], None], *, first_frame_max: int = MAX_FRAME
) -> None:
    """Call `on_frame` with each frame's payload until the stream ends. The first frame may
    have a lower limit (a hello): a stranger cannot make us buffer a SNAP-sized frame."""
    buf = bytearray()
    limit = first_frame_max
    while True:
        while len(buf) >= 4:
            (size,) = _LEN.unpack_from(buf, 0)
            if size > limit:
                raise PeerFrameError(f"frame of {size} bytes is over the {limit} limit")
            if len(buf) < 4 + size:
                break
            payload = bytes(buf[4 : 4 + size])
            del buf[: 4 + size]
            limit = MAX_FRAME
            on_frame(payload)
        chunk = await stream.receive_some(RECEIVE_BYTES)
        if not chunk:
            return
        buf += chunk


def _address(value: Any, tcp: trio.SocketStream | None) -> tuple[str, int] | None:
    """Where to dial back a peer whose hello gives its address `[host, port]`: a wildcard
    host (it listens everywhere) means the address it came from."""
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and type(value[1]) is int):
        return None
    host, port = value
    if host in ("0.0.0.0", "::", ""):
        if tcp is None:
            return None
        host = str(tcp.socket.getpeername()[0])
    return host, port


def frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


@attrs.define(eq=False)
class _Stream:
    """Messages produced while they are sent; `discard` if they never are."""

    messages: AsyncIterator[Any]
    discard: Callable[[], None]


@attrs.define(eq=False)
class _Outgoing:
    peer_id: int
    queue: list[bytes | _Stream] = attrs.Factory(list)
    ready: trio.Event = attrs.Factory(trio.Event)
    connected: bool = False
    stream: trio.abc.Stream | None = None
    fd: int | None = None  # the stream's socket, for writes straight from `send` (plain TCP only)
    sending: bool = False  # the pump task is inside send_all: `send` must queue behind it
    dialler: trio.CancelScope = attrs.Factory(trio.CancelScope)  # cancelled when the peer is dropped


class PeerNetwork:
    """Owns the peer links of one server. `send` never blocks; received messages and link
    changes are reported through the callbacks, on the Trio thread."""

    def __init__(
        self,
        my_id: int,
        members: dict[int, tuple[str, int]],
        *,
        encode: Callable[[Any], bytes],
        decode: Callable[[bytes], Any],
        on_message: Callable[[int, Any], None],
        on_connected: Callable[[int], None] = lambda peer: None,
        on_disconnected: Callable[[int], None] = lambda peer: None,
        dial_address: Callable[[int], tuple[str, int]] | None = None,
        observers: Iterable[int] = (),
        backoff_s: tuple[float, float] = (0.05, 1.0),
        rng: random.Random | None = None,
        tls: PeerTls | None = None,
        dynamic: bool = False,
    ) -> None:
        self.my_id = my_id
        self.dynamic = dynamic
        self._tls = tls
        # Addresses as this server sees them: its own to bind on (0.0.0.0 is fine), the
        # others' to dial. Other servers may see other addresses for the same members.
        self.members = dict(members)
        self.membership = Membership.of(self.members, observers)
        self.digest = self.membership.text  # what the hello carries
        self._refusals_logged: set[tuple[Any, ...]] = set()
        self._encode = encode
        self._decode = decode
        self._on_message = on_message
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        # Where to dial a peer: its own address, or a fault proxy in front of it (tests).
        self._dial_address = dial_address or (lambda peer: self.members[peer])
        self._backoff = backoff_s
        self._rng = rng or random.Random()
        self._out = {peer: _Outgoing(peer) for peer in self.members if peer != my_id}
        self._configured = set(self.members)  # the rest of `members` are guests (joiners)
        self._nursery: trio.Nursery | None = None
        # peer -> the cancel scope of its live incoming connection's reader (also its token)
        self._incoming: dict[int, trio.CancelScope] = {}
        self._up: set[int] = set()
        self.port: int | None = None
        self._last_message: Any = None
        self._last_frame = b""

    # -- sending -------------------------------------------------------------------------

    def send(self, to: int, message: Any) -> None:
        if to not in self._up:
            return
        out = self._out[to]
        if message is self._last_message:
            data = self._last_frame  # one proposal or commit to every follower: encode once
        else:
            data = frame(self._encode(message))
            self._last_message, self._last_frame = message, data
        if out.fd is not None and not out.queue and not out.sending:
            # Nothing ahead of it: write now rather than wake the pump task (a task switch
            # per message is a good part of a write's latency). A full socket buffer or an
            # error leaves the rest, or all, to the pump, which reports a broken link.
            try:
                sent = os.write(out.fd, data)
            except OSError:
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        out.queue.append(data)
        out.ready.set()

    def send_stream(self, to: int, messages: AsyncIterator[Any], discard: Callable[[], None]) -> None:
        """Send the messages `messages` yields, after everything sent before and before
        everything sent after; `discard()` if the link goes down before they are sent."""
        if to not in self._up:
            discard()
            return
        out = self._out[to]
        out.queue.append(_Stream(messages, discard))
        out.ready.set()

    @staticmethod
    def _drop_queue(out: _Outgoing) -> None:
        queue, out.queue = out.queue, []
        for item in queue:
            if isinstance(item, _Stream):
                item.discard()

    @property
    def backlogged(self) -> bool:
        """Some message waits for its pump task (it could not be written at once)."""
        return any(out.queue for out in self._out.values())

    def is_connected(self, peer: int) -> bool:
        return peer in self._up

    def _update(self, peer: int) -> None:
        """Report the link to `peer` going up or down, from the state of both directions."""
        out = self._out.get(peer)
        up = out is not None and out.connected and peer in self._incoming
        if up and peer not in self._up:
            self._up.add(peer)
            self._on_connected(peer)
        elif not up and peer in self._up:
            self._up.discard(peer)
            self._on_disconnected(peer)

    # -- membership ----------------------------------------------------------------------

    def set_members(self, members: dict[int, tuple[str, int]], observers: Iterable[int] = ()) -> None:
        """The servers to keep links with (and their addresses) changed: a reconfiguration.
        New ones are dialled, dropped ones (unless connected to us as guests) let go."""
        members = {**members, self.my_id: self.members[self.my_id]}  # we keep our own address
        self.membership = Membership.of(members, observers)
        self.digest = self.membership.text
        for peer, address in members.items():
            if peer != self.my_id and (peer not in self.members or self.members[peer] != address):
                self._forget(peer)
                self.members[peer] = address
                self._start_dialling(peer)
        self._configured = set(members)
        for peer in list(self.members):
            if peer not in self._configured and peer not in self._incoming:
                self._forget(peer)

    def _start_dialling(self, peer: int) -> None:
        out = self._out[peer] = _Outgoing(peer)
        if self._nursery is not None:
            self._nursery.start_soon(self._dial_forever, out)

    def _forget(self, peer: int) -> None:
        """Stop dialling `peer` and report its link down (its incoming side may stay)."""
        out = self._out.pop(peer, None)
        if out is None:
            return
        out.dialler.cancel()
        out.connected = False
        self._drop_queue(out)
        self.members.pop(peer, None)
        if peer in self._up:
            self._up.discard(peer)
            self._on_disconnected(peer)

    def _take_guest(self, peer: int, address: tuple[str, int]) -> None:
        """A server outside our membership dialled us (a joiner): dial it back while it stays."""
        log.info("server %d: server %d (at %s:%d) joins us from outside the configuration", self.my_id, peer, *address)
        self.members[peer] = address
        self._start_dialling(peer)

    # -- running -------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        host, port = self.members[self.my_id]
        listeners = await trio.open_tcp_listeners(port, host=host)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(trio.serve_listeners, self._accept, listeners)
            for out in self._out.values():
                nursery.start_soon(self._dial_forever, out)
            task_status.started(self.port)

    async def _dial_forever(self, out: _Outgoing) -> None:
        with out.dialler:
            await self._dial(out)

    async def _dial(self, out: _Outgoing) -> None:
        # A guest can leave (and be forgotten) before this task first runs: the scope it
        # cancelled is only entered now, so look before dialling an address that is gone.
        await trio.lowlevel.checkpoint()
        delay = self._backoff[0]
        while self._out.get(out.peer_id) is out:
            host, port = self._dial_address(out.peer_id)
            stream: trio.abc.Stream | None
            try:
                stream = tcp = await trio.open_tcp_stream(host, port)
            except OSError:
                stream = None
            if stream is not None and self._tls is not None:
                stream = await self._secure_outgoing(tcp, out.peer_id)
            if stream is None:
                await trio.sleep(delay * (0.5 + self._rng.random()))
                delay = min(delay * 2, self._backoff[1])
                continue
            delay = self._backoff[0]
            try:
                hello = cbor2.dumps([HELLO_MAGIC, self.my_id, self.digest, list(self.members[self.my_id])])
                await stream.send_all(frame(hello))
                out.stream, out.connected = stream, True
                # Writing straight to the socket would bypass TLS: only for plain TCP.
                out.fd = tcp.socket.fileno() if stream is tcp else None
                self._drop_queue(out)
                self._update(out.peer_id)
                await self._pump(out, stream)
            except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as group:
                # The hello's send fails bare, the pump's inside its nursery's group.
                broke = group.exceptions[0]
                log.debug("link %d->%d broke: %s", self.my_id, out.peer_id, broke)
                if self._tls is not None and isinstance(broke.__cause__, ssl.SSLError):
                    # With TLS 1.3 the far side checks our certificate after our handshake
                    # has completed: its refusal arrives as an alert on the link.
                    reason = describe_failure(broke)
                    self._log_refusal(
                        ("tls-out", out.peer_id, reason),
                        f"server {out.peer_id} ({host}:{port}) refused our TLS connection: {reason}; "
                        "is our certificate signed by a CA in its ssl.quorum.trustStore?",
                    )
            finally:
                out.connected, out.stream, out.fd, out.sending = False, None, None, False
                self._drop_queue(out)
                if self._out.get(out.peer_id) is out:  # not dropped by set_members meanwhile
                    self._update(out.peer_id)
                await aclose_bounded(stream)
            await trio.sleep(delay * (0.5 + self._rng.random()))

    async def _secure_outgoing(self, tcp: trio.SocketStream, peer: int) -> trio.abc.Stream | None:
        """TLS over a dialled connection, or None (logged) if the handshake fails."""
        assert self._tls is not None
        # The name the peer's certificate must carry is its configured address, not the
        # address dialled (a proxy in tests).
        host = self.members[peer][0]
        stream = trio.SSLStream(tcp, self._tls.client, server_hostname=host)
        failure = await handshake(stream)
        if failure is None:
            return stream
        reason = describe_failure(failure)
        self._log_refusal(("tls-dial", peer, reason), f"refusing server {peer} ({host}): TLS handshake failed: {reason}")
        return None

    async def _secure_incoming(self, tcp: trio.SocketStream) -> trio.abc.Stream | None:
        """TLS over an accepted connection, or None (logged) if the handshake fails."""
        assert self._tls is not None
        try:
            address = str(tcp.socket.getpeername()[0])
        except OSError:
            address = "?"
        stream = trio.SSLStream(tcp, self._tls.server, server_side=True)
        failure = await handshake(stream)
        if failure is None:
            return stream
        reason = describe_failure(failure)
        self._log_refusal(
            ("tls-accept", address, reason), f"refusing peer connection from {address}: TLS handshake failed: {reason}"
        )
        return None

    def _log_refusal(self, key: tuple[Any, ...], message: str) -> None:
        """A warning the first time, debug after: a refused peer redials every second or so."""
        if key not in self._refusals_logged:
            if len(self._refusals_logged) >= 64:
                self._refusals_logged.clear()  # bounded, whatever strangers send
            self._refusals_logged.add(key)
            log.warning("%s", message)
        else:
            log.debug("%s", message)

    async def _pump(self, out: _Outgoing, stream: trio.abc.Stream) -> None:
        async with trio.open_nursery() as nursery:
            # The far side never sends on this connection; reading tells us when it closes.
            nursery.start_soon(self._watch_close, stream, nursery.cancel_scope)
            while True:
                if not out.queue:
                    out.ready = trio.Event()
                    await out.ready.wait()
                    continue
                out.sending = True
                head = out.queue[0]
                if isinstance(head, _Stream):
                    del out.queue[0]
                    await self._send_stream(out.peer_id, head, stream)
                else:
                    count = next((i for i, item in enumerate(out.queue) if not isinstance(item, bytes)), len(out.queue))
                    data = b"".join(out.queue[:count])  # type: ignore[arg-type]
                    del out.queue[:count]
                    await stream.send_all(data)
                out.sending = False

    async def _send_stream(self, peer: int, item: _Stream, stream: trio.abc.Stream) -> None:
        messages = item.messages
        try:
            while True:
                try:
                    message = await anext(messages)
                except StopAsyncIteration:
                    return
                except Exception as e:
                    # Whatever produces the stream failed (a snapshot child died): the far
                    # side cannot use half of it, so the link goes down and comes back.
                    log.error("server %d: stream to server %d failed (%s); restarting the link", self.my_id, peer, e)
                    raise trio.BrokenResourceError(f"stream to server {peer} failed") from e
                await stream.send_all(frame(self._encode(message)))
        finally:
            with trio.CancelScope(shield=True):
                await messages.aclose()  # type: ignore[attr-defined]

    @staticmethod
    async def _watch_close(stream: trio.abc.ReceiveStream, scope: trio.CancelScope) -> None:
        try:
            while await stream.receive_some(4096):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            if isinstance(e.__cause__, ssl.SSLError):
                raise  # a TLS alert: the far side refused us, which _dial_forever reports
        scope.cancel()

    async def _accept(self, tcp: trio.SocketStream) -> None:
        stream: trio.abc.Stream = tcp
        if self._tls is not None:
            secured = await self._secure_incoming(tcp)
            if secured is None:
                return
            stream = secured
        peer: int | None = None
        token = trio.CancelScope()  # cancelled when a newer connection from the same peer wins

        def on_frame(payload: bytes) -> None:
            nonlocal peer
            if peer is None:
                peer = self._check_hello(payload, tcp)
                replaced = self._incoming.pop(peer, None)
                if replaced is not None:
                    # A new connection replaces the old: report the break before its frames,
                    # and close the old one, so that if the newcomer was not really that
                    # peer, the real one sees its connection end and dials again.
                    replaced.cancel()
                    self._update(peer)
                self._incoming[peer] = token
                self._update(peer)
                return
            try:
                message = self._decode(payload)
            except Exception as e:  # a peer's bad bytes drop its link, never this server
                raise PeerFrameError(f"undecodable frame from server {peer}: {e}") from e
            if self._incoming.get(peer) is token and peer in self._up:
                self._on_message(peer, message)
            # else: a stale connection, or the link is down: its frames are lost

        try:
            with token:
                await read_frames(stream, on_frame, first_frame_max=MAX_HELLO)
        except MembershipMismatch as e:
            self._log_refusal(e.key, f"refusing peer connection: {e}")  # once, not at every redial
        except PeerFrameError as e:
            log.warning("dropping peer connection: %s", e)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            if peer is not None and self._incoming.get(peer) is token:
                del self._incoming[peer]
                self._update(peer)
                if peer not in self._configured:
                    self._forget(peer)  # a guest that left
            await aclose_bounded(stream)

    def _check_hello(self, payload: bytes, tcp: trio.SocketStream | None = None) -> int:
        """The server id a connection's first frame names, or PeerFrameError. `tcp`: the
        connection, for the address of a joiner whose hello gives a wildcard host."""
        try:
            hello = cbor2.loads(payload)
            magic, peer, digest = hello[:3]
            address = _address(hello[3], tcp) if len(hello) > 3 else None
        except Exception:
            raise PeerFrameError("connection did not open with a peer hello") from None
        if magic != HELLO_MAGIC:
            raise PeerFrameError(f"unknown hello {repr(magic)[:80]}")
        if not isinstance(peer, int) or isinstance(peer, bool):
            raise PeerFrameError(f"peer hello names no server id ({repr(peer)[:80]})")
        if digest != self.digest and not self.dynamic:
            raise MembershipMismatch(peer, digest, mismatch_message(peer, digest, self.membership))
        if peer == self.my_id:
            raise MembershipMismatch(
                peer, digest, f"another server says it is server {peer}, our own id: two servers have {peer} in their myid file"
            )
        if peer not in self.members:
            if not self.dynamic or address is None:
                raise MembershipMismatch(
                    peer, digest, f"server id {peer} is not a member of this ensemble {self.membership.describe()}"
                )
            self._take_guest(peer, address)
        return peer
