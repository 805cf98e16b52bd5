"""Client sessions in the simulator: the real client core (`ClientProtocol`) talking to the
real server cores (`ServerConnection`, `SessionManager`) of the simulated servers over
simulated TCP connections, through crashes, partitions and elections.

Each `SimClient` keeps a session as a ZooKeeper client does: it connects to a random server,
resumes its session on another when a connection breaks, pings when idle, gives up on a
server silent for two thirds of its timeout, and starts a new session when told the old one
expired. Its requests create and delete ephemerals, write and read a few shared znodes and
leave watches on them. Each server's side (`ServerClients`) is wired as the real server wires
it: touches relayed to the leader, expiry by the leader, connections dropped when leadership
changes.

Checked, besides the cores' own checks (replies in FIFO order, a resumed session that comes
back as another):
- every request ends exactly once: with its reply, or with connection loss;
- a client never goes back in time: no reply carries a zxid below one it has seen;
- a write's reply names a transaction of that session on the committed history;
- nothing of a session commits after its close;
- a session is said to be expired only when it is: its close committed, or the leader
  closing it (a server that lags must not tell a live session's client it expired);
- a watched znode is never read at a newer version before its watch event arrived;
- after healing, every client gets connected with a session and hears every reply.
"""

from __future__ import annotations

import functools
import itertools
import random
from typing import TYPE_CHECKING, Any

import attrs

from ccore.client.protocol import (
    ClientProtocol,
    Connected,
    Phase,
    ProtocolError,
    Reply,
    SessionExpired,
    WatchFired,
    WatchKind,
)
from ccore.server.commit import Committed, OnDone, Outcome
from ccore.server.config import ServerConfig
from ccore.server.requests import Reads, restore_watches
from ccore.server.server_connection import (
    ConnectionServices,
    PendingWrite,
    ServerConnection,
    SessionRequested,
    WriteSubmitted,
)
from ccore.server.server_connection import (
    Phase as ServerPhase,
)
from ccore.server.session_manager import Decision, SessionManager, SessionOpened, SessionRejected
from ccore.server.zab.api import zx
from ccore.znodes import records as r
from ccore.znodes.acl import ACL, OPEN_ACL_UNSAFE, Id
from ccore.znodes.constants import CreateMode, OpCode
from ccore.znodes.errors import Code
from ccore.znodes.tree import DataTree
from ccore.znodes.txn import CloseSession, CreateSession, Op, Result, Txn
from ccore.znodes.watches import WatchManager

from .checker import InvariantError
from .workload import SESSIONS as WORKLOAD_SESSIONS

if TYPE_CHECKING:
    from .cluster import Node, Sim

SHARED = ("/s0", "/s1", "/s2")
# Deliberately wrong servers, to show that the checks catch them (tests/sim/test_sessions.py).
SESSION_BUGS = (
    "late watch events",  # an event leaves after the replies queued behind it
    "local expiry verdict",  # a server that does not know a session says it expired
    "serves clients from the future",  # a server behind a client's last zxid serves it
)
WRITE_OPS = {OpCode.create, OpCode.delete, OpCode.setData}
WALL_CLOCK_BASE = 1_800_000_000.0  # session ids are seeded from a wall clock: a fixed one here


class SessionChecker:
    """What every replica's applies say about sessions, on the committed history."""

    def __init__(self) -> None:
        self.session_of: dict[int, int] = {}  # zxid -> the session whose transaction it is
        self.closed: dict[int, int] = {}  # session -> the zxid of its close
        self.created: dict[int, int] = {}  # session -> the zxid of its creation

    def applied(self, txn: Txn, result: Result) -> None:
        if txn.zxid in self.session_of:
            return  # another replica applied it first
        self.session_of[txn.zxid] = txn.session
        if txn.session in WORKLOAD_SESSIONS:
            return  # the synthetic writer's sessions come and go without clients
        op = txn.op
        if isinstance(op, CreateSession):
            self.created.setdefault(txn.session, txn.zxid)
        elif isinstance(op, CloseSession):
            self.closed.setdefault(txn.session, txn.zxid)
        elif txn.session in self.closed and result.err == 0:
            raise InvariantError(
                f"{type(op).__name__} of session {txn.session:#x} committed at {zx(txn.zxid)}, after the "
                f"session's close at {zx(self.closed[txn.session])}"
            )


class ClientLink:
    """One simulated TCP connection between a client and a server: the bytes of each
    direction arrive in order after a random latency, and a close reaches the other side
    after the bytes sent before it. A reset (the server crashed) loses what is in flight."""

    def __init__(self, sim: Sim, client: SimClient, node: Node) -> None:
        self.sim = sim
        self.client = client
        self.node = node
        self.server: SimConnection | None = None
        self.client_open = self.server_open = True
        self.blackholed = False  # a partition: nothing arrives either way, nothing closes
        self._tail = {"up": 0.0, "down": 0.0}

    def _after_latency(self, direction: str, fn: Any, *args: Any) -> None:
        if self.blackholed:
            return
        cfg = self.sim.cfg
        when = max(self.sim.now + self.sim.rng.uniform(cfg.latency_min_s, cfg.latency_max_s), self._tail[direction])
        self._tail[direction] = when
        self.sim.at(when, fn, *args)

    # client -> server
    def to_server(self, data: bytes) -> None:
        if self.client_open:
            self._after_latency("up", self._at_server, data)

    def _at_server(self, data: bytes) -> None:
        if self.server_open and self.server is not None and not self.blackholed:
            self.server.receive(data)

    def close_from_client(self) -> None:
        if self.client_open:
            self.client_open = False
            self._after_latency("up", self._eof_at_server)

    def _eof_at_server(self) -> None:
        if self.server_open and self.server is not None and not self.blackholed:
            self.server.client_closed()

    # server -> client
    def to_client(self, data: bytes) -> None:
        if self.server_open:
            self._after_latency("down", self._at_client, data)

    def _at_client(self, data: bytes) -> None:
        if self.client_open and not self.blackholed:
            self.client.received(self, data)

    def close_from_server(self) -> None:
        if self.server_open:
            self.server_open = False
            self._after_latency("down", self._eof_at_client)

    def _eof_at_client(self) -> None:
        if self.client_open and not self.blackholed:
            self.client.lost(self, f"server {self.node.id} closed the connection")

    def reset(self) -> None:
        """The server crashed: nothing more arrives either way; the client notices later."""
        if self.server_open and not self.blackholed:
            self.server_open = False
            self._tail["down"] = self.sim.now  # what was in flight is lost
            self.sim.at(self.sim.now + self.sim.rng.uniform(0.001, self.sim.cfg.notice_max_s), self._eof_at_client)


class SimConnection:
    """The server's driver of one connection (what `server/connection.py` is over TCP)."""

    def __init__(self, host: ServerClients, link: ClientLink) -> None:
        self.host = host
        self.link = link
        self.core = ServerConnection(host, self, f"10.0.0.{link.client.id}", host.config.max_buffer)
        self.ended = False
        # Watch tables keep connections in sets: a hash numbering the run's connections, not
        # one from the address, keeps the order of events (and so a seed's replay) the same.
        host.sim.stats["client connections"] += 1
        self._hash = host.sim.stats["client connections"]

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return f"client {self.link.client.id}"

    def receive(self, data: bytes) -> None:
        for event in self.core.receive_data(data):
            self._handle(event)
        self.flush()

    def client_closed(self) -> None:
        self.core.end_of_input()
        self.flush()

    def _handle(self, event: Any) -> None:
        if isinstance(event, WriteSubmitted):
            on_done = functools.partial(self._write_done, event.write)
            self.host.node.submit(self.core.session_id, event.op, on_done, self.core.auth)
        elif isinstance(event, SessionRequested):
            request = event.request
            if self.host.sim.cfg.session_bug == "serves clients from the future":
                request = attrs.evolve(request, last_zxid_seen=0)
            self.host.sessions.decide(request, str(self), functools.partial(self._decided, request))
        else:
            raise InvariantError(f"unexpected event from a client connection: {event}")

    def _decided(self, request: r.ConnectRequest, decision: Decision) -> None:
        core = self.core
        if core.phase is not ServerPhase.CONNECTING:
            return  # aborted meanwhile
        if isinstance(decision, SessionOpened):
            self.host.sessions.attach(decision.session_id, self, str(self))
            for event in core.accept_session(decision.session_id, decision.timeout_ms, decision.password):
                self._handle(event)
        elif isinstance(decision, SessionRejected):
            self.host.check_rejection(request.session_id)
            core.reject_session()
        else:
            core.abort()
        self.flush()

    def _write_done(self, write: PendingWrite, outcome: Outcome) -> None:
        if isinstance(outcome, Committed):
            self.core.write_committed(write, outcome.txn, outcome.result)
        else:
            self.core.write_abandoned(write)
        self.flush()

    def flush(self) -> None:
        if self.ended:
            return
        data = self.core.data_to_send()
        if data:
            self.link.to_client(data)
        if self.core.finished:
            self.ended = True
            self.link.close_from_server()
            self.host.connection_closed(self)

    # -- what the server calls (Watcher, SessionConnection) --------------------------------------

    def send_event(self, event_type: int, path: str, acl: tuple[ACL, ...] = ()) -> None:
        sim = self.host.sim
        if sim.cfg.session_bug == "late watch events":
            sim.at(sim.now + 0.02, self._late_event, event_type, path, acl)
            return
        self.core.send_event(event_type, path, acl)
        self.flush()

    def _late_event(self, event_type: int, path: str, acl: tuple[ACL, ...]) -> None:
        if not self.ended:
            self.core.send_event(event_type, path, acl)
            self.flush()

    def close(self) -> None:
        self.core.close()
        self.flush()

    def abort(self) -> None:
        self.core.abort()
        self.flush()


class ServerClients(ConnectionServices):
    """One server's client side, for one life of it: its session manager, watches and
    connections, wired to the node as `ZKServer` wires them (the node is the committer)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        sim = node.sim
        self.sim = sim
        self.config = ServerConfig(tick_time_ms=int(sim.cfg.timing.tick_s * 1000), server_id=node.id)
        rng = random.Random(sim.rng.getrandbits(64))
        self.sessions = SessionManager(
            self.config,
            lambda: node.tree,
            lambda: WALL_CLOCK_BASE + sim.now,
            lambda: sim.now,
            new_password=lambda: rng.randbytes(16),
        )
        self.sessions.bind(self)
        self.sessions.track_all(node.tree)
        self.watches = WatchManager()
        self.reads = Reads(lambda: node.tree, self.watches)
        self.connections: list[SimConnection] = []

    def accept(self, link: ClientLink) -> None:
        conn = SimConnection(self, link)
        link.server = conn
        self.connections.append(conn)

    def connection_closed(self, conn: SimConnection) -> None:
        if conn in self.connections:
            self.connections.remove(conn)
        self.watches.remove_watcher(conn)
        self.sessions.detach(conn.core.session_id, conn)

    def check_rejection(self, session_id: int) -> None:
        """This server is about to tell a client its session expired: it must be so."""
        checker = self.sim.session_checker
        if session_id in checker.closed:
            return
        if self.owns_sessions and self.sessions.is_closing(session_id):
            return  # the leader is closing it (the close may yet be lost with the leader)
        created = checker.created.get(session_id)
        where = f"created at {zx(created)}" if created is not None else "never created"
        raise InvariantError(
            f"server {self.node.id} (tree at {zx(self.node.tree.last_zxid)}) told the client of session "
            f"{session_id:#x} that it expired; it is live ({where}, not closed)"
        )

    # -- what the node tells -------------------------------------------------------------------

    def applied(self, txn: Txn, result: Result, triggers: list[Any], writer: OnDone | None) -> None:
        """In the applier's order: the session's creation, watch events, the reply, the close."""
        op = txn.op
        if isinstance(op, CreateSession):
            self.sessions.created(txn.session, op.timeout_ms)
        for watcher, event_type, path, acl in self.watches.fire(triggers):
            watcher.send_event(event_type, path, acl)
        if writer is not None:
            writer(Committed(txn, result))
        if isinstance(op, CloseSession):
            self.sessions.closed(txn.session)

    def role_changed(self, was_serving: bool, leading: bool) -> None:
        if was_serving:
            self.sessions.leadership_lost()
            for conn in list(self.connections):
                conn.abort()
        if leading:
            self.sessions.became_leader()

    def tree_replaced(self, tree: DataTree) -> None:
        self.sessions.reload(tree)

    def crashed(self) -> None:
        for conn in list(self.connections):
            conn.link.reset()
        self.connections.clear()

    # -- the committer the session manager sees ----------------------------------------------------

    @property
    def serving(self) -> bool:
        return self.node.router.role.serving

    @property
    def read_only(self) -> bool:
        return False  # the simulator runs no member in read-only mode

    @property
    def owns_sessions(self) -> bool:
        role = self.node.router.role
        return role.serving and role.leading

    @property
    def mode(self) -> str:
        return "leader" if self.owns_sessions else "follower" if self.serving else "looking"

    def submit(self, session: int, op: Op, auth: tuple[Id, ...], on_done: OnDone | None) -> None:
        self.node.submit(session, op, on_done, auth)

    def session_touched(self, session: int, now: float) -> None:
        self.node.router.touched(session, now)

    def check_session(self, session: int, password: bytes, on_verdict: Any) -> None:
        if self.sim.cfg.session_bug == "local expiry verdict":
            on_verdict(True)  # not in our tree: "expired", without asking the leader
            return
        for to, frame in self.node.router.check_session(session, password, on_verdict):
            self.sim.net.send(self.node.id, to, frame)

    # -- ConnectionServices ----------------------------------------------------------------------

    @property
    def last_zxid(self) -> int:
        return self.node.tree.last_zxid

    def monotonic(self) -> float:
        return self.sim.now

    def request_received(self, session_id: int) -> None:
        self.sessions.touch(session_id)

    def record_latency(self, seconds: float, update: bool = False) -> None:
        pass

    def is_closing(self, session_id: int) -> bool:
        return self.sessions.is_closing(session_id)

    def answer_read(
        self, op: int, record: Any, watcher: Any, auth: tuple[Id, ...], session_id: int
    ) -> tuple[int, r.Record | None] | None:
        if not self.reads.handles(op):
            return None
        return self.reads.answer(op, record, watcher, auth, session_id)

    def restore_watches(self, watcher: Any, record: Any) -> list[tuple[int, str]]:
        return restore_watches(self.node.tree, self.watches, watcher, record)


@attrs.define
class _Request:
    op: int
    path: str
    watch: bool
    session: int


class SimClient:
    """One ZooKeeper client (see the module docstring)."""

    def __init__(self, sim: Sim, client_id: int) -> None:
        self.sim = sim
        self.id = client_id
        self.rng = random.Random(sim.rng.getrandbits(64))
        self.timeout_ms = self.rng.choice((300, 500, 800))
        self.core = ClientProtocol(self.timeout_ms)
        self.link: ClientLink | None = None
        self.running = True  # issuing requests (pings go on regardless)
        self.pending: dict[int, _Request] = {}
        self._tokens = itertools.count(1)
        self.max_zxid = 0
        self.last_heard = 0.0
        self.last_sent = 0.0
        self.connecting_since = 0.0
        self.watched: dict[str, int] = {}  # path -> the mzxid it had when its watch was set
        self.ephemerals: list[str] = []
        self.cut_until = 0.0  # partitioned from every server until then
        self.sessions = 0
        self.expired = 0
        self.replies = 0

    def start(self) -> None:
        self._connect()
        self._tick()

    @property
    def settled(self) -> bool:
        return self.core.phase is Phase.CONNECTED and not self.pending and self.core.in_flight == 0

    # -- connections ------------------------------------------------------------------------------

    def _connect(self) -> None:
        if self.link is not None or self.core.phase is not Phase.DISCONNECTED:
            return
        node = self.sim.nodes[self.rng.choice(sorted(self.sim.nodes))]
        if not node.alive or node.clients is None or self.sim.now < self.cut_until:
            self.sim.at(self.sim.now + self.rng.uniform(0.005, 0.05), self._connect)  # refused
            return
        link = self.link = ClientLink(self.sim, self, node)
        node.clients.accept(link)
        self.core.start_connection()
        self.connecting_since = self.last_heard = self.sim.now
        self._flush()

    def _flush(self) -> None:
        data = self.core.data_to_send()
        if data and self.link is not None:
            self.link.to_server(data)
            self.last_sent = self.sim.now

    def cut(self, duration_s: float) -> None:
        """A partition between this client and every server: its connection goes silent (it
        notices by its own timer) and it reaches no server for `duration_s`."""
        self.cut_until = self.sim.now + duration_s
        if self.link is not None:
            self.link.blackholed = True

    def lost(self, link: ClientLink, why: str) -> None:
        if link is not self.link:
            return
        for token in self.core.connection_lost():
            self._finish(token)
        link.close_from_client()
        self.link = None
        if self.core.phase is Phase.CLOSED:
            # It closed its session: a new one comes next, never earlier in time.
            last_zxid = self.core.last_zxid
            self.core = ClientProtocol(self.timeout_ms)
            self.core.last_zxid = last_zxid
            self.watched.clear()
            self.ephemerals.clear()
        self.sim.stats[f"client connections lost: {why.split(' ', 2)[-1] if why.startswith('server ') else why}"] += 1
        self.sim.at(self.sim.now + self.rng.uniform(0.001, 0.03), self._connect)

    def received(self, link: ClientLink, data: bytes) -> None:
        if link is not self.link:
            return
        self.last_heard = self.sim.now
        try:
            events = self.core.receive_data(data)
        except ProtocolError as e:
            raise InvariantError(f"client {self.id} got a protocol violation from server {link.node.id}: {e}") from e
        for event in events:
            if isinstance(event, Reply):
                self._reply(event)
            elif isinstance(event, WatchFired):
                self.watched.pop(event.event.path, None)
            elif isinstance(event, Connected):
                if event.new_session:
                    self.sessions += 1
                    self.sim.stats["client sessions"] += 1
            elif isinstance(event, SessionExpired):
                self.expired += 1
                self.sim.stats["client sessions expired"] += 1
                self.watched.clear()
                self.ephemerals.clear()
        self._flush()

    # -- time -----------------------------------------------------------------------------------

    def _tick(self) -> None:
        sim = self.sim
        now = sim.now
        timeout = self.timeout_ms / 1000.0
        core = self.core
        if self.link is not None:
            if now - self.last_heard > timeout * 2 / 3 and core.phase is not Phase.HANDSHAKE:
                self.lost(self.link, "the server is silent")
            elif core.phase is Phase.HANDSHAKE and now - self.connecting_since > timeout:
                self.lost(self.link, "the handshake takes too long")
            elif core.phase is Phase.CONNECTED:
                if self.running and core.in_flight < 3 and self.rng.random() < 0.7:
                    self._request()
                if now - self.last_sent > timeout / 3:
                    core.ping()
                self._flush()
        sim.at(now + self.rng.uniform(0.005, 0.03), self._tick)

    # -- requests ---------------------------------------------------------------------------------

    def _request(self) -> None:
        rng = self.rng
        core = self.core
        token = next(self._tokens)
        choice = rng.random()
        path = rng.choice(SHARED)
        watch = None
        if choice < 0.01:
            core.request(OpCode.closeSession, None, token)
            self.pending[token] = _Request(OpCode.closeSession, "", False, core.session_id)
            return
        if choice < 0.2:
            op, record = OpCode.create, r.CreateRequest(path, b"x", OPEN_ACL_UNSAFE, 0)
        elif choice < 0.35:
            op, record = OpCode.setData, r.SetDataRequest(path, rng.randbytes(4), -1)
        elif choice < 0.45:
            op, record = OpCode.delete, r.DeleteRequest(path, -1)
        elif choice < 0.6:
            path = f"/c{self.id}-{token}"
            op, record = OpCode.create, r.CreateRequest(path, b"e", OPEN_ACL_UNSAFE, int(CreateMode.EPHEMERAL))
        elif choice < 0.65 and self.ephemerals:
            path = rng.choice(self.ephemerals)
            op, record = OpCode.delete, r.DeleteRequest(path, -1)
        elif choice < 0.85:
            want = rng.random() < 0.6
            op, record = OpCode.getData, r.GetDataRequest(path, want)
            watch = (WatchKind.DATA, path, token) if want else None
        else:
            want = rng.random() < 0.6
            op, record = OpCode.exists, r.ExistsRequest(path, want)
            watch = (WatchKind.DATA, path, token) if want else None
        core.request(op, record, token, watch)
        self.pending[token] = _Request(op, path, watch is not None, core.session_id)

    def _finish(self, token: int) -> _Request:
        request = self.pending.pop(token, None)
        if request is None:
            raise InvariantError(f"client {self.id}: request {token} ended twice (or was never sent)")
        return request

    def _reply(self, reply: Reply) -> None:
        request = self._finish(reply.token)
        self.replies += 1
        zxid = reply.zxid
        if zxid > 0:
            if zxid < self.max_zxid:
                raise InvariantError(
                    f"client {self.id} went back in time: a reply at {zx(zxid)} after one at {zx(self.max_zxid)}"
                )
            self.max_zxid = zxid
        err = reply.err
        if request.op in WRITE_OPS and err not in (Code.SESSION_EXPIRED, Code.SESSION_MOVED):
            session = self.sim.session_checker.session_of.get(zxid)
            if session != request.session:
                raise InvariantError(
                    f"client {self.id}: the reply to its {OpCode(request.op).name} {request.path} names {zx(zxid)}, "
                    f"which is {'not committed' if session is None else f'a transaction of session {session:#x}'}"
                )
            if err == 0 and request.op == OpCode.create and request.path.startswith("/c"):
                self.ephemerals.append(request.path)
            if err == 0 and request.op == OpCode.delete and request.path in self.ephemerals:
                self.ephemerals.remove(request.path)
        if request.op in (OpCode.getData, OpCode.exists):
            self._check_watched_read(request, reply)

    def _check_watched_read(self, request: _Request, reply: Reply) -> None:
        """A read of a watched znode shows no version newer than the watched one unless the
        watch's event came first (ZooKeeper's ordering guarantee); then note the new watch."""
        if reply.err not in (0, Code.NO_NODE):
            return
        record = reply.record
        mzxid = record.stat.mzxid if record is not None and reply.err == 0 else 0
        watched = self.watched.get(request.path)
        if watched is not None and mzxid != watched:
            raise InvariantError(
                f"client {self.id} read {request.path} at mzxid {zx(mzxid)} (reply at {zx(reply.zxid)}) while its "
                f"watch, set at mzxid {zx(watched)}, had not fired"
            )
        registered = request.watch and (reply.err == 0 or request.op == OpCode.exists)
        if registered and request.session == self.core.session_id:
            self.watched[request.path] = mzxid


class Clients:
    """The simulation's session clients: started together, settled at the end."""

    def __init__(self, sim: Sim, count: int, cut_rate: float, cuts_until: float) -> None:
        self.sim = sim
        self.clients = [SimClient(sim, i + 1) for i in range(count)]
        for client in self.clients:
            client.start()
            if cut_rate > 0:
                self._next_cut(client, cut_rate, cuts_until)

    def _next_cut(self, client: SimClient, rate: float, until: float) -> None:
        when = self.sim.now + client.rng.expovariate(rate)
        if when < until:
            self.sim.at(when, self._cut, client, rate, until)

    def _cut(self, client: SimClient, rate: float, until: float) -> None:
        # From a blip to twice the session timeout: sometimes the session outlives it.
        client.cut(client.rng.uniform(0.0, 2.0) * client.timeout_ms / 1000.0)
        self.sim.trace_event("fault", f"client {client.id} cut off until {client.cut_until:.3f}")
        self._next_cut(client, rate, until)

    def stop_requests(self) -> None:
        for client in self.clients:
            client.running = False

    def settled(self) -> bool:
        return all(client.settled for client in self.clients)

    def describe(self) -> str:
        return "; ".join(
            f"client {c.id} {c.core.phase.value}, {len(c.pending)} pending, "
            f"{'on ' + str(c.link.node.id) if c.link else 'unconnected'}"
            for c in self.clients
        )
