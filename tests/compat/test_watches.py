"""Watches: one-shot data/exists/child watches through kazoo, their event types and
one-shot-ness; on the wire (raw client): one event per connection, event order, events before
the reply; persistent and persistent-recursive watches (addWatch), removeWatches, checkWatches;
events withheld from connections that may not READ the node."""

from __future__ import annotations

import struct

import pytest
from kazoo.exceptions import NoNodeError, NoWatcherError
from kazoo.protocol.states import EventType
from kazoo.security import (
    ACL,
    OPEN_ACL_UNSAFE,
    Id,
    Permissions,
    make_digest_acl_credential,
)

from tests.compat.helpers import WatchRecorder
from tests.compat.rawzk import (
    AddWatchMode,
    Event,
    Op,
    WatcherType,
    multi_create,
    multi_delete,
    multi_set,
    set_data_body,
)
from tests.compat.rawzk import EventType as E

CREATED, DELETED, CHANGED, CHILD = EventType.CREATED, EventType.DELETED, EventType.CHANGED, EventType.CHILD
SYNC_CONNECTED = 3
WORLD = Id("world", "anyone")


def ev(type_: int, path: str) -> Event:
    return Event(type_, SYNC_CONNECTED, path)


# --- kazoo one-shot watches -----------------------------------------------------------------


def test_data_watch_fires_changed_once(kazoo_factory, zk_root):
    watcher, writer = kazoo_factory(), kazoo_factory()
    writer.create(f"{zk_root}/a", b"0")
    rec = WatchRecorder()
    watcher.get(f"{zk_root}/a", watch=rec)
    writer.set(f"{zk_root}/a", b"1")
    assert rec.one() == (CHANGED, f"{zk_root}/a")
    writer.set(f"{zk_root}/a", b"2")
    watcher.sync(zk_root)
    rec.none()


def test_data_watch_fires_deleted(kazoo_factory, zk_root):
    watcher, writer = kazoo_factory(), kazoo_factory()
    writer.create(f"{zk_root}/a")
    rec = WatchRecorder()
    watcher.get(f"{zk_root}/a", watch=rec)
    writer.delete(f"{zk_root}/a")
    assert rec.one() == (DELETED, f"{zk_root}/a")
    writer.create(f"{zk_root}/a")
    watcher.sync(zk_root)
    rec.none()


def test_exists_watch_on_missing_node_fires_created(kazoo_factory, zk_root):
    watcher, writer = kazoo_factory(), kazoo_factory()
    rec = WatchRecorder()
    assert watcher.exists(f"{zk_root}/a", watch=rec) is None
    writer.create(f"{zk_root}/a")
    assert rec.one() == (CREATED, f"{zk_root}/a")
    writer.set(f"{zk_root}/a", b"x")
    writer.delete(f"{zk_root}/a")
    watcher.sync(zk_root)
    rec.none()


def test_exists_watch_on_existing_node(kazoo_factory, zk_root):
    watcher, writer = kazoo_factory(), kazoo_factory()
    writer.create(f"{zk_root}/a")
    rec = WatchRecorder()
    watcher.exists(f"{zk_root}/a", watch=rec)
    writer.set(f"{zk_root}/a", b"x")
    assert rec.one() == (CHANGED, f"{zk_root}/a")
    rec2 = WatchRecorder()
    watcher.exists(f"{zk_root}/a", watch=rec2)
    writer.delete(f"{zk_root}/a")
    assert rec2.one() == (DELETED, f"{zk_root}/a")
    rec.none()


def test_get_watch_on_missing_node_is_not_set(kazoo_factory, zk_root):
    watcher, writer = kazoo_factory(), kazoo_factory()
    rec = WatchRecorder()
    with pytest.raises(NoNodeError):
        watcher.get(f"{zk_root}/a", watch=rec)
    writer.create(f"{zk_root}/a")
    watcher.sync(zk_root)
    rec.none()


def test_child_watch_fires_on_create_and_delete_of_children(kazoo_factory, zk_root):
    watcher, writer = kazoo_factory(), kazoo_factory()
    rec = WatchRecorder()
    watcher.get_children(zk_root, watch=rec)
    writer.create(f"{zk_root}/c")
    assert rec.one() == (CHILD, zk_root)
    writer.create(f"{zk_root}/d")  # the watch was one-shot
    watcher.sync(zk_root)
    rec.none()
    rec2 = WatchRecorder()
    watcher.get_children(zk_root, watch=rec2, include_data=True)
    writer.delete(f"{zk_root}/c")
    assert rec2.one() == (CHILD, zk_root)


def test_child_watch_ignores_data_changes(kazoo_factory, zk_root):
    watcher, writer = kazoo_factory(), kazoo_factory()
    writer.create(f"{zk_root}/c")
    rec = WatchRecorder()
    watcher.get_children(zk_root, watch=rec)
    writer.set(zk_root, b"parent data")
    writer.set(f"{zk_root}/c", b"child data")
    writer.create(f"{zk_root}/c/grandchild")
    watcher.sync(zk_root)
    rec.none()


def test_child_watch_fires_deleted_when_node_goes(kazoo_factory, zk_root):
    watcher, writer = kazoo_factory(), kazoo_factory()
    writer.create(f"{zk_root}/p")
    rec = WatchRecorder()
    watcher.get_children(f"{zk_root}/p", watch=rec)
    writer.delete(f"{zk_root}/p")
    assert rec.one() == (DELETED, f"{zk_root}/p")


def test_data_watch_ignores_set_acls_and_child_changes(kazoo_factory, zk_root):
    watcher, writer = kazoo_factory(), kazoo_factory()
    writer.create(f"{zk_root}/a")
    rec = WatchRecorder()
    watcher.get(f"{zk_root}/a", watch=rec)
    writer.set_acls(f"{zk_root}/a", writer.get_acls(f"{zk_root}/a")[0])
    writer.create(f"{zk_root}/a/child")
    watcher.sync(zk_root)
    rec.none()


def test_watches_fire_for_writes_of_the_same_session(kazoo_client, zk_root):
    kazoo_client.create(f"{zk_root}/a")
    rec = WatchRecorder()
    kazoo_client.get(f"{zk_root}/a", watch=rec)
    kazoo_client.set(f"{zk_root}/a", b"x")
    assert rec.one() == (CHANGED, f"{zk_root}/a")


def test_ephemeral_removal_on_close_fires_watches(kazoo_factory, zk_root):
    watcher, owner = kazoo_factory(), kazoo_factory()
    owner.create(f"{zk_root}/e", ephemeral=True)
    data_rec, child_rec = WatchRecorder(), WatchRecorder()
    watcher.exists(f"{zk_root}/e", watch=data_rec)
    watcher.get_children(zk_root, watch=child_rec)
    owner.stop()
    assert data_rec.one() == (DELETED, f"{zk_root}/e")
    assert child_rec.one() == (CHILD, zk_root)


# --- on the wire ---------------------------------------------------------------------------


def test_one_event_per_connection_when_several_watches_match(raw_factory, zk_root):
    """Data, exists and child watches on one node: its deletion sends one NodeDeleted."""
    writer, watcher = raw_factory(), raw_factory()
    writer.create(f"{zk_root}/a")
    watcher.get(f"{zk_root}/a", watch=True)
    watcher.exists(f"{zk_root}/a", watch=True)
    watcher.get_children(f"{zk_root}/a", watch=True)
    watcher.get(f"{zk_root}/a", watch=True)  # the same watch twice is one watch
    writer.delete(f"{zk_root}/a")
    assert watcher.drain_events() == [ev(E.NodeDeleted, f"{zk_root}/a")]


def test_delete_event_order_node_then_parent(raw_factory, zk_root):
    writer, watcher = raw_factory(), raw_factory()
    writer.create(f"{zk_root}/a")
    writer.create(f"{zk_root}/a/b")
    watcher.get(f"{zk_root}/a/b", watch=True)
    watcher.get_children(f"{zk_root}/a", watch=True)
    watcher.get(f"{zk_root}/a", watch=True)
    writer.delete(f"{zk_root}/a/b")
    assert watcher.drain_events() == [ev(E.NodeDeleted, f"{zk_root}/a/b"), ev(E.NodeChildrenChanged, f"{zk_root}/a")]


def test_create_event_order_node_then_parent(raw_factory, zk_root):
    writer, watcher = raw_factory(), raw_factory()
    watcher.exists(f"{zk_root}/a", watch=True)
    watcher.get_children(zk_root, watch=True)
    writer.create(f"{zk_root}/a")
    assert watcher.drain_events() == [ev(E.NodeCreated, f"{zk_root}/a"), ev(E.NodeChildrenChanged, zk_root)]


def test_multi_events_in_op_order(raw_factory, zk_root):
    writer, watcher = raw_factory(), raw_factory()
    writer.create(f"{zk_root}/x")
    watcher.exists(f"{zk_root}/m1", watch=True)
    watcher.exists(f"{zk_root}/m2", watch=True)
    watcher.get(f"{zk_root}/x", watch=True)
    watcher.get_children(zk_root, watch=True)
    results = writer.multi(
        [
            multi_create(f"{zk_root}/m1"),
            multi_set(f"{zk_root}/x", b"1"),
            multi_create(f"{zk_root}/m2"),
            multi_delete(f"{zk_root}/x"),
        ]
    )
    assert results[0] == f"{zk_root}/m1"
    assert watcher.drain_events() == [
        ev(E.NodeCreated, f"{zk_root}/m1"),
        ev(E.NodeChildrenChanged, zk_root),
        ev(E.NodeDataChanged, f"{zk_root}/x"),
        ev(E.NodeCreated, f"{zk_root}/m2"),
    ]


def test_failed_multi_fires_nothing(raw_factory, zk_root):
    writer, watcher = raw_factory(), raw_factory()
    watcher.exists(f"{zk_root}/m1", watch=True)
    watcher.get_children(zk_root, watch=True)
    writer.multi([multi_create(f"{zk_root}/m1"), multi_delete(f"{zk_root}/missing")])
    assert watcher.drain_events() == []


def test_event_precedes_reply_of_triggering_write(raw_factory, zk_root):
    client = raw_factory()
    client.create(f"{zk_root}/a")
    client.get(f"{zk_root}/a", watch=True)
    xid = client.send(Op.setData, set_data_body(f"{zk_root}/a", b"x", -1))
    first = client._read_frame(10.0)
    second = client._read_frame(10.0)
    first_xid, first_zxid, _ = struct.unpack_from("!iqi", first)
    second_xid, _, second_err = struct.unpack_from("!iqi", second)
    assert first_xid == -1, "the watch event must come before the reply"
    assert first_zxid == -1  # notifications carry zxid -1 in their header
    assert (second_xid, second_err) == (xid, 0)


def test_ephemeral_cleanup_events_on_session_close(raw_factory, zk_root):
    owner, watcher = raw_factory(), raw_factory()
    owner.create(f"{zk_root}/p")
    owner.create(f"{zk_root}/e1", flags=1)
    owner.create(f"{zk_root}/p/e2", flags=1)
    watcher.exists(f"{zk_root}/e1", watch=True)
    watcher.get(f"{zk_root}/p/e2", watch=True)
    watcher.get_children(zk_root, watch=True)
    watcher.get_children(f"{zk_root}/p", watch=True)
    owner.close_session()
    events = watcher.drain_events()
    # ZooKeeper deletes a session's ephemerals in hash-set order: compare as a set, but each
    # node's NodeDeleted must come before its parent's NodeChildrenChanged.
    assert sorted(events) == sorted(
        [
            ev(E.NodeDeleted, f"{zk_root}/e1"),
            ev(E.NodeChildrenChanged, zk_root),
            ev(E.NodeDeleted, f"{zk_root}/p/e2"),
            ev(E.NodeChildrenChanged, f"{zk_root}/p"),
        ]
    )
    assert events.index(ev(E.NodeDeleted, f"{zk_root}/e1")) < events.index(ev(E.NodeChildrenChanged, zk_root))
    assert events.index(ev(E.NodeDeleted, f"{zk_root}/p/e2")) < events.index(ev(E.NodeChildrenChanged, f"{zk_root}/p"))


# --- persistent and persistent-recursive watches (addWatch, 3.6+) --------------------------


def test_persistent_watch(raw_factory, zk_root):
    writer, watcher = raw_factory(), raw_factory()
    p = f"{zk_root}/p"
    watcher.add_watch(p, AddWatchMode.PERSISTENT)  # the node need not exist
    writer.create(p)
    writer.set(p, b"1")
    writer.set(p, b"2")
    writer.create(f"{p}/c")
    writer.set(f"{p}/c", b"child data: not watched")
    writer.create(f"{p}/c/g")  # grandchild: not watched
    writer.delete(f"{p}/c/g")
    writer.delete(f"{p}/c")
    writer.delete(p)
    writer.create(p)  # still there after NodeDeleted
    assert watcher.drain_events() == [
        ev(E.NodeCreated, p),
        ev(E.NodeDataChanged, p),
        ev(E.NodeDataChanged, p),
        ev(E.NodeChildrenChanged, p),
        ev(E.NodeChildrenChanged, p),
        ev(E.NodeDeleted, p),
        ev(E.NodeCreated, p),
    ]


def test_persistent_recursive_watch(raw_factory, zk_root):
    writer, watcher = raw_factory(), raw_factory()
    r = f"{zk_root}/r"
    writer.create(r)
    watcher.add_watch(r, AddWatchMode.PERSISTENT_RECURSIVE)
    writer.create(f"{r}/a")
    writer.create(f"{r}/a/b")
    writer.set(f"{r}/a/b", b"x")
    writer.set(r, b"y")
    writer.create(f"{zk_root}/rr")  # a sibling sharing the prefix is outside
    writer.delete(f"{r}/a/b")
    writer.delete(f"{r}/a")
    assert watcher.drain_events() == [
        ev(E.NodeCreated, f"{r}/a"),
        ev(E.NodeCreated, f"{r}/a/b"),
        ev(E.NodeDataChanged, f"{r}/a/b"),
        ev(E.NodeDataChanged, r),
        ev(E.NodeDeleted, f"{r}/a/b"),
        ev(E.NodeDeleted, f"{r}/a"),
    ]  # never NodeChildrenChanged


def test_persistent_recursive_watch_on_root(raw_factory, zk_root):
    writer, watcher = raw_factory(), raw_factory()
    watcher.add_watch("/", AddWatchMode.PERSISTENT_RECURSIVE)
    writer.create(f"{zk_root}/a")
    writer.delete(f"{zk_root}/a")
    events = watcher.drain_events()
    assert events == [ev(E.NodeCreated, f"{zk_root}/a"), ev(E.NodeDeleted, f"{zk_root}/a")]


def test_persistent_watch_survives_many_events(raw_factory, zk_root):
    writer, watcher = raw_factory(), raw_factory()
    writer.create(f"{zk_root}/p")
    watcher.add_watch(f"{zk_root}/p", AddWatchMode.PERSISTENT)
    for i in range(20):
        writer.set(f"{zk_root}/p", str(i).encode())
    assert watcher.drain_events() == [ev(E.NodeDataChanged, f"{zk_root}/p")] * 20


def test_persistent_and_recursive_on_same_session_one_event_each(raw_factory, zk_root):
    writer, watcher = raw_factory(), raw_factory()
    writer.create(f"{zk_root}/p")
    watcher.add_watch(f"{zk_root}/p", AddWatchMode.PERSISTENT)
    watcher.add_watch(zk_root, AddWatchMode.PERSISTENT_RECURSIVE)
    writer.set(f"{zk_root}/p", b"x")
    assert watcher.drain_events() == [ev(E.NodeDataChanged, f"{zk_root}/p")]


def test_remove_watches_any_removes_persistent_watch(raw_factory, zk_root):
    writer, watcher = raw_factory(), raw_factory()
    writer.create(f"{zk_root}/p")
    watcher.add_watch(f"{zk_root}/p", AddWatchMode.PERSISTENT)
    watcher.remove_watches(f"{zk_root}/p", WatcherType.Any)
    writer.set(f"{zk_root}/p", b"x")
    assert watcher.drain_events() == []
    with pytest.raises(NoWatcherError):
        watcher.remove_watches(f"{zk_root}/p", WatcherType.Any)


def test_remove_data_watch(raw_factory, zk_root):
    writer, watcher = raw_factory(), raw_factory()
    writer.create(f"{zk_root}/a")
    watcher.get(f"{zk_root}/a", watch=True)
    watcher.get_children(f"{zk_root}/a", watch=True)
    watcher.check_watches(f"{zk_root}/a", WatcherType.Data)
    watcher.remove_watches(f"{zk_root}/a", WatcherType.Data)
    with pytest.raises(NoWatcherError):
        watcher.check_watches(f"{zk_root}/a", WatcherType.Data)
    watcher.check_watches(f"{zk_root}/a", WatcherType.Children)  # untouched
    writer.set(f"{zk_root}/a", b"x")
    assert watcher.drain_events() == []  # the server sends no event for a removal
    writer.create(f"{zk_root}/a/c")
    assert watcher.drain_events() == [ev(E.NodeChildrenChanged, f"{zk_root}/a")]


def test_remove_child_watch_and_any(raw_factory, zk_root):
    writer, watcher = raw_factory(), raw_factory()
    writer.create(f"{zk_root}/a")
    watcher.get_children(f"{zk_root}/a", watch=True)
    with pytest.raises(NoWatcherError):
        watcher.remove_watches(f"{zk_root}/a", WatcherType.Data)
    watcher.remove_watches(f"{zk_root}/a", WatcherType.Children)
    with pytest.raises(NoWatcherError):
        watcher.remove_watches(f"{zk_root}/a", WatcherType.Children)
    watcher.exists(f"{zk_root}/a", watch=True)
    watcher.get_children(f"{zk_root}/a", watch=True)
    watcher.remove_watches(f"{zk_root}/a", WatcherType.Any)
    writer.delete(f"{zk_root}/a")
    assert watcher.drain_events() == []


def test_exists_watch_on_missing_node_is_a_data_watch(raw_factory, zk_root):
    watcher = raw_factory()
    watcher.exists(f"{zk_root}/nope", watch=True)
    watcher.check_watches(f"{zk_root}/nope", WatcherType.Data)
    watcher.remove_watches(f"{zk_root}/nope", WatcherType.Data)


def test_check_watches_without_watch(raw_factory, zk_root):
    watcher = raw_factory()
    for watcher_type in (WatcherType.Data, WatcherType.Children, WatcherType.Any):
        with pytest.raises(NoWatcherError):
            watcher.check_watches(zk_root, watcher_type)


def test_watches_are_per_session(raw_factory, zk_root):
    """A watch set by one session is not visible to (or removable by) another."""
    writer, a, b = raw_factory(), raw_factory(), raw_factory()
    writer.create(f"{zk_root}/x")
    a.get(f"{zk_root}/x", watch=True)
    with pytest.raises(NoWatcherError):
        b.remove_watches(f"{zk_root}/x", WatcherType.Data)
    writer.set(f"{zk_root}/x", b"1")
    assert a.drain_events() == [ev(E.NodeDataChanged, f"{zk_root}/x")]
    assert b.drain_events() == []


# --- events are filtered by READ permission (ZOOKEEPER-4799 / CVE-2024-23944) -----------------


def test_events_for_unreadable_nodes_are_not_delivered(raw_factory, zk_root):
    """The reference server (Debian's 3.8.0 carries the ZOOKEEPER-4799 fix) checks, at
    delivery, that the watching connection may READ the node the event is about (for
    NodeChildrenChanged: the parent). Events it may not read are dropped, and a one-shot
    watch is consumed all the same."""
    writer, watcher = raw_factory(), raw_factory()
    no_read = [ACL(Permissions.ALL & ~Permissions.READ, WORLD)]
    watcher.add_watch(zk_root, AddWatchMode.PERSISTENT_RECURSIVE)
    writer.create(f"{zk_root}/open")
    writer.create(f"{zk_root}/hidden", acl=no_read)
    writer.set(f"{zk_root}/hidden", b"x")
    writer.create(f"{zk_root}/hidden/kid")  # the kid itself is readable
    writer.delete(f"{zk_root}/hidden/kid")
    writer.delete(f"{zk_root}/hidden")
    assert watcher.drain_events() == [
        ev(E.NodeCreated, f"{zk_root}/open"),
        ev(E.NodeCreated, f"{zk_root}/hidden/kid"),
        ev(E.NodeDeleted, f"{zk_root}/hidden/kid"),
    ]


def test_standard_watches_on_unreadable_nodes_are_silent_and_consumed(raw_factory, zk_root):
    writer, watcher = raw_factory(), raw_factory()
    no_read = [ACL(Permissions.ALL & ~Permissions.READ, WORLD)]
    writer.create(f"{zk_root}/hidden", acl=no_read)
    assert watcher.exists(f"{zk_root}/hidden", watch=True) is not None  # exists needs no READ
    watcher.exists(f"{zk_root}/later", watch=True)
    writer.set(f"{zk_root}/hidden", b"1")
    writer.create(f"{zk_root}/later", acl=no_read)
    assert watcher.drain_events() == []
    # the watches were used up: opening the ACL later brings nothing
    writer.set_acl(f"{zk_root}/hidden", OPEN_ACL_UNSAFE)
    writer.set(f"{zk_root}/hidden", b"2")
    assert watcher.drain_events() == []
    # a child watch on a readable parent still sees an unreadable child come and go
    watcher.get_children(zk_root, watch=True)
    writer.delete(f"{zk_root}/later")
    assert watcher.drain_events() == [ev(E.NodeChildrenChanged, zk_root)]


def test_events_follow_the_watchers_authentication(raw_factory, zk_root):
    writer, alice = raw_factory(), raw_factory()
    alice.add_auth("digest", "alice:secret")
    alice_only = [ACL(Permissions.ALL, Id("digest", make_digest_acl_credential("alice", "secret")))]
    writer.create(f"{zk_root}/a", acl=[ACL(Permissions.ALL & ~Permissions.READ, WORLD)] + alice_only)
    alice.exists(f"{zk_root}/a", watch=True)
    writer.set(f"{zk_root}/a", b"x")
    assert alice.drain_events() == [ev(E.NodeDataChanged, f"{zk_root}/a")]
