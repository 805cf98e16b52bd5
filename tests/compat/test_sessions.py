"""Sessions: timeout negotiation, ephemerals on close and on expiry (a client that goes
silent), reconnecting to the same session, SetWatches after a reconnect, and sessions and
data surviving a server restart (SIGKILL and SIGTERM)."""

from __future__ import annotations

import threading
import time

import pytest
from kazoo.client import KazooState
from kazoo.exceptions import ConnectionLoss, SessionExpiredError

from tests.compat.helpers import close_kazoo, new_kazoo, wait_until
from tests.compat.proxy import TcpProxy
from tests.compat.rawzk import AddWatchMode, CreateFlag, Event, RawClient
from tests.compat.rawzk import EventType as E

SYNC_CONNECTED = 3
FAST_TICK_MS = 500  # fresh servers for expiry tests: sessions of 1-10 s


def ev(type_: int, path: str) -> Event:
    return Event(type_, SYNC_CONNECTED, path)


# --- negotiation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "requested_ms, expected_ms",
    [(1, 4000), (0, 4000), (3999, 4000), (4000, 4000), (12345, 12345), (40000, 40000), (40001, 40000), (10**6, 40000)],
)
def test_session_timeout_clamped_to_2_and_20_ticks(raw_factory, requested_ms, expected_ms):
    """The shared servers run tickTime=2000: sessions are clamped to [4000, 40000] ms."""
    client = raw_factory(timeout_ms=requested_ms)
    assert client.negotiated_timeout_ms == expected_ms
    assert client.session_id != 0 and len(client.passwd) == 16


@pytest.mark.slow
def test_session_timeout_bounds_configurable(server_factory):
    server = server_factory(tick_time_ms=1000, min_session_timeout_ms=3000, max_session_timeout_ms=5000)
    for requested_ms, expected_ms in [(1000, 3000), (4000, 4000), (60000, 5000)]:
        client = RawClient(server.host, server.port).connect(requested_ms)
        try:
            assert client.negotiated_timeout_ms == expected_ms, requested_ms
        finally:
            client.close_session()


def test_session_ids_are_distinct(raw_factory):
    ids = {raw_factory().session_id for _ in range(5)}
    assert len(ids) == 5


def test_client_without_read_only_flag_is_served(raw_factory):
    """Pre-3.4 clients send no readOnly byte in ConnectRequest."""
    client = raw_factory(with_read_only_flag=False)
    assert client.exists("/") is not None


# --- close, reconnect ---------------------------------------------------------------------------


def test_ephemerals_removed_when_session_closes(kazoo_factory, zk_root):
    owner, observer = kazoo_factory(), kazoo_factory()
    owner.create(f"{zk_root}/e1", ephemeral=True)
    owner.create(f"{zk_root}/e2", ephemeral=True, sequence=True)
    owner.create(f"{zk_root}/p")
    owner.stop()
    assert observer.get_children(zk_root) == ["p"]


def test_closed_session_cannot_be_resumed(zk_handle, zk_root):
    client = RawClient(zk_handle.host, zk_handle.port).connect(10000)
    session_id, passwd = client.session_id, client.passwd
    client.close_session()
    with pytest.raises(SessionExpiredError):
        RawClient(zk_handle.host, zk_handle.port).connect(10000, session_id=session_id, passwd=passwd)


def test_reconnect_same_session_keeps_ephemerals(zk_handle, raw_factory, zk_root):
    client = raw_factory(timeout_ms=20000)
    client.create(f"{zk_root}/e", flags=CreateFlag.EPHEMERAL)
    session_id, passwd, last_zxid = client.session_id, client.passwd, client.last_zxid
    client.close()  # TCP only: the session lives on
    again = raw_factory(timeout_ms=20000, session_id=session_id, passwd=passwd, last_zxid=last_zxid)
    assert again.session_id == session_id and again.passwd == passwd
    assert again.exists(f"{zk_root}/e").ephemeralOwner == session_id
    assert again.get_ephemerals(zk_root) == [f"{zk_root}/e"]


def test_reconnect_renegotiates_timeout(raw_factory):
    client = raw_factory(timeout_ms=10000)
    client.close()
    again = raw_factory(timeout_ms=20000, session_id=client.session_id, passwd=client.passwd)
    assert again.negotiated_timeout_ms == 20000


def test_reconnect_with_wrong_password_is_expired(zk_handle, raw_factory, zk_root):
    """A wrong password gets a ConnectResponse with timeout 0 (the client reports the session
    expired); the session itself lives on for whoever has the right password.
    (With the session still attached to a live connection, ZooKeeper first kicks that
    connection off and then may drop the new one without an answer: not pinned here.)"""
    client = raw_factory(timeout_ms=20000)
    client.create(f"{zk_root}/e", flags=CreateFlag.EPHEMERAL)
    client.close()
    with pytest.raises(SessionExpiredError):
        RawClient(zk_handle.host, zk_handle.port).connect(20000, session_id=client.session_id, passwd=b"\x01" * 16)
    again = raw_factory(timeout_ms=20000, session_id=client.session_id, passwd=client.passwd)
    assert again.exists(f"{zk_root}/e").ephemeralOwner == client.session_id


def test_reconnect_to_unknown_session_is_expired(zk_handle):
    with pytest.raises(SessionExpiredError):
        RawClient(zk_handle.host, zk_handle.port).connect(10000, session_id=0x1234567, passwd=b"\x00" * 16)


def test_client_that_has_seen_a_future_zxid_is_refused(zk_handle):
    """A client whose lastZxidSeen is ahead of the server must not be served stale data:
    ZooKeeper closes the connection without a ConnectResponse."""
    with pytest.raises((ConnectionLoss, ConnectionError, TimeoutError)):
        RawClient(zk_handle.host, zk_handle.port, io_timeout_s=5).connect(10000, last_zxid=1 << 60)


def test_second_connection_moves_the_session(zk_handle, raw_factory, zk_root):
    """Connecting with a session that is still attached elsewhere takes it over; the old
    connection is closed by the server."""
    first = raw_factory(timeout_ms=20000)
    first.create(f"{zk_root}/e", flags=CreateFlag.EPHEMERAL)
    second = raw_factory(timeout_ms=20000, session_id=first.session_id, passwd=first.passwd)
    assert second.exists(f"{zk_root}/e") is not None

    def old_connection_closed() -> bool:
        try:
            first.exists("/")
        except (ConnectionLoss, OSError, TimeoutError):
            return True
        return False

    wait_until(old_connection_closed, 10, what="old connection closed")
    assert second.exists(f"{zk_root}/e").ephemeralOwner == second.session_id


def test_kazoo_reconnect_keeps_session_and_ephemerals(zk_handle, kazoo_factory, zk_root):
    with TcpProxy(zk_handle.port) as proxy:
        states: list[str] = []
        client = kazoo_factory(hosts=proxy.connect_string)
        client.add_listener(states.append)
        observer = kazoo_factory()
        client.create(f"{zk_root}/e", ephemeral=True)
        session_id = client.client_id[0]
        proxy.cut()
        wait_until(lambda: KazooState.SUSPENDED in states, 10, what="kazoo SUSPENDED")
        assert observer.exists(f"{zk_root}/e") is not None  # the session is alive
        proxy.restore()
        wait_until(lambda: client.connected and states[-1] == KazooState.CONNECTED, 15, what="kazoo reconnected")
        assert client.client_id[0] == session_id
        assert KazooState.LOST not in states
        assert client.exists(f"{zk_root}/e").ephemeralOwner == session_id


# --- SetWatches after a reconnect -------------------------------------------------------------


def test_set_watches_delivers_changes_made_while_away(zk_handle, raw_factory, zk_root):
    """kazoo 2.11 does not re-register watches on reconnect, so this speaks SetWatches itself:
    a data watch on a changed node gets NodeDataChanged, on a deleted node NodeDeleted, an
    exists watch on a created node NodeCreated, a child watch on a node whose children
    changed NodeChildrenChanged. Unchanged paths are simply watched again."""
    writer = raw_factory()
    for name in ("changed", "deleted", "parent", "quiet"):
        writer.create(f"{zk_root}/{name}")
    client = raw_factory(timeout_ms=20000)
    client.sync("/")
    relative_zxid = client.last_zxid
    client.close()

    writer.set(f"{zk_root}/changed", b"x")
    writer.delete(f"{zk_root}/deleted")
    writer.create(f"{zk_root}/born")
    writer.create(f"{zk_root}/parent/kid")

    again = raw_factory(timeout_ms=20000, session_id=client.session_id, passwd=client.passwd, last_zxid=relative_zxid)
    again.set_watches(
        relative_zxid,
        data=[f"{zk_root}/changed", f"{zk_root}/deleted", f"{zk_root}/quiet"],
        exist=[f"{zk_root}/born", f"{zk_root}/unborn"],
        child=[f"{zk_root}/parent", f"{zk_root}/quiet"],
    )
    assert again.drain_events() == [
        ev(E.NodeDataChanged, f"{zk_root}/changed"),
        ev(E.NodeDeleted, f"{zk_root}/deleted"),
        ev(E.NodeCreated, f"{zk_root}/born"),
        ev(E.NodeChildrenChanged, f"{zk_root}/parent"),
    ]
    # the unchanged ones are armed again
    writer.set(f"{zk_root}/quiet", b"1")
    writer.create(f"{zk_root}/unborn")
    writer.create(f"{zk_root}/quiet/kid")
    assert again.drain_events() == [
        ev(E.NodeDataChanged, f"{zk_root}/quiet"),
        ev(E.NodeCreated, f"{zk_root}/unborn"),
        ev(E.NodeChildrenChanged, f"{zk_root}/quiet"),
    ]


def test_set_watches_edge_cases(raw_factory, zk_root):
    """An exists watch on a node that exists fires NodeCreated whatever its zxid, and a child
    watch on a missing node fires NodeDeleted (DataTree.setWatches)."""
    client = raw_factory()
    client.create(f"{zk_root}/old")
    client.sync("/")
    client.set_watches(client.last_zxid, data=[f"{zk_root}/old"], exist=[f"{zk_root}/old"], child=[f"{zk_root}/missing"])
    assert client.drain_events() == [ev(E.NodeCreated, f"{zk_root}/old"), ev(E.NodeDeleted, f"{zk_root}/missing")]


def test_set_watches2_restores_persistent_watches(raw_factory, zk_root):
    writer = raw_factory()
    writer.create(f"{zk_root}/p")
    writer.create(f"{zk_root}/r")
    client = raw_factory(timeout_ms=20000)
    client.add_watch(f"{zk_root}/p", AddWatchMode.PERSISTENT)
    client.sync("/")
    relative_zxid = client.last_zxid
    client.close()
    again = raw_factory(timeout_ms=20000, session_id=client.session_id, passwd=client.passwd, last_zxid=relative_zxid)
    # a fresh connection has no watches until the client sends them
    writer.set(f"{zk_root}/p", b"lost")
    assert again.drain_events() == []
    again.set_watches2(again.last_zxid, persistent=[f"{zk_root}/p"], recursive=[f"{zk_root}/r"])
    writer.set(f"{zk_root}/p", b"1")
    writer.create(f"{zk_root}/r/a")
    writer.set(f"{zk_root}/p", b"2")
    assert again.drain_events() == [
        ev(E.NodeDataChanged, f"{zk_root}/p"),
        ev(E.NodeCreated, f"{zk_root}/r/a"),
        ev(E.NodeDataChanged, f"{zk_root}/p"),
    ]


def test_watches_do_not_survive_the_connection(raw_factory, zk_root):
    """Watches belong to the connection: reconnecting without SetWatches loses them."""
    writer = raw_factory()
    writer.create(f"{zk_root}/a")
    client = raw_factory(timeout_ms=20000)
    client.get(f"{zk_root}/a", watch=True)
    client.close()
    again = raw_factory(timeout_ms=20000, session_id=client.session_id, passwd=client.passwd)
    writer.set(f"{zk_root}/a", b"x")
    assert again.drain_events() == []


# --- expiry --------------------------------------------------------------------------------------


def expiry_bound_s(server, timeout_ms: int) -> float:
    """How late an expiry may be. Ours keeps exact deadlines: timeout + 10% + slack. ZooKeeper
    expires in tick buckets, up to a tick (or two, rounding) after the deadline."""
    if server.kind == "ccore":
        return timeout_ms * 1.1 / 1000 + 0.5
    return (timeout_ms + 2 * server.tick_time_ms) / 1000 + 1.0


def watch_deletion(observer, path: str) -> threading.Event:
    gone = threading.Event()

    def on_event(event) -> None:
        if event.type == "DELETED":
            gone.set()

    assert observer.exists(path, watch=on_event) is not None
    return gone


@pytest.mark.slow
def test_silent_client_session_expires_and_ephemerals_go(server_factory):
    server = server_factory(tick_time_ms=FAST_TICK_MS)
    timeout_ms = 2000
    observer = new_kazoo(server.connect_string)
    try:
        silent = RawClient(server.host, server.port).connect(timeout_ms)
        assert silent.negotiated_timeout_ms == timeout_ms
        silent.create("/e", flags=CreateFlag.EPHEMERAL)
        silent.create("/es-", flags=CreateFlag.EPHEMERAL_SEQUENTIAL)
        gone = watch_deletion(observer, "/e")
        went_silent = time.monotonic()  # the create's reply was our last traffic
        # not before the timeout...
        assert not gone.wait(timeout_ms * 0.8 / 1000), "ephemeral removed before the session timeout"
        # ...but soon after it
        assert gone.wait(expiry_bound_s(server, timeout_ms)), "ephemeral still there after the session timeout"
        elapsed = time.monotonic() - went_silent
        assert elapsed >= timeout_ms * 0.8 / 1000
        wait_until(lambda: observer.get_children("/") == ["zookeeper"], 5, what="all ephemerals gone")
        with pytest.raises(SessionExpiredError):
            RawClient(server.host, server.port).connect(timeout_ms, session_id=silent.session_id, passwd=silent.passwd)
        silent.close()
    finally:
        close_kazoo(observer)


@pytest.mark.slow
def test_pinging_client_keeps_its_session(server_factory):
    server = server_factory(tick_time_ms=FAST_TICK_MS)
    client = RawClient(server.host, server.port).connect(2000)
    try:
        client.create("/e", flags=CreateFlag.EPHEMERAL)
        client.pump(5.0)  # pings every timeout/3
        assert client.exists("/e") is not None
    finally:
        client.close_session()


@pytest.mark.slow
def test_expired_server_side_closes_connection_and_kazoo_sees_lost(server_factory):
    server = server_factory(tick_time_ms=FAST_TICK_MS)
    with TcpProxy(server.port) as proxy:
        states: list[str] = []
        client = new_kazoo(proxy.connect_string, timeout=2.0)
        observer = new_kazoo(server.connect_string)
        try:
            client.add_listener(states.append)
            client.create("/e", ephemeral=True)
            gone = watch_deletion(observer, "/e")
            proxy.cut()
            assert gone.wait(expiry_bound_s(server, 2000) + 1), "ephemeral of a partitioned client not removed"
            proxy.restore()
            wait_until(lambda: KazooState.LOST in states, 15, what="kazoo LOST after expiry")
        finally:
            close_kazoo(client)
            close_kazoo(observer)


# --- restart ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill", "term"])
def test_data_and_session_survive_restart(server_factory, how):
    server = server_factory()
    client = new_kazoo(server.connect_string)
    try:
        client.create("/persist/a", b"payload", makepath=True)
        client.create("/persist/s-", sequence=True)
        client.set("/persist/a", b"v2")
        client.create("/persist/e", ephemeral=True)
        session_id = client.client_id[0]
        before = client.get("/persist/a")
        states: list[str] = []
        client.add_listener(states.append)
        server.restart(how)
        # kazoo may not have noticed the restart yet: wait for it to lose and regain the server
        try:
            wait_until(
                lambda: KazooState.SUSPENDED in states and states[-1] == KazooState.CONNECTED and client.connected,
                45,
                what="kazoo reconnected after restart",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; kazoo states {states}\n--- server log ---\n{server.log_tail(40)}") from None
        assert client.client_id[0] == session_id
        assert client.get("/persist/a") == before
        assert sorted(client.get_children("/persist")) == ["a", "e", "s-0000000001"]
        assert client.exists("/persist/e").ephemeralOwner == session_id
        # the zxid moves on from where it was
        client.create("/persist/after")
        assert client.exists("/persist/after").czxid > before[1].mzxid
    finally:
        close_kazoo(client)


@pytest.mark.slow
def test_closed_session_ephemerals_stay_gone_after_restart(server_factory):
    server = server_factory()
    client = new_kazoo(server.connect_string)
    client.create("/e", ephemeral=True)
    client.stop()
    client.close()
    server.restart("kill")
    observer = new_kazoo(server.connect_string)
    try:
        assert observer.exists("/e") is None
    finally:
        close_kazoo(observer)
