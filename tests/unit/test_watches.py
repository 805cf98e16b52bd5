"""Watch bookkeeping: which watchers hear which change, and one-shot versus persistent."""

from __future__ import annotations

from ccore.znodes.constants import EventType, WatcherType
from ccore.znodes.watches import WatchManager

CREATED, DELETED, CHANGED, CHILDREN = (
    EventType.NODE_CREATED,
    EventType.NODE_DELETED,
    EventType.NODE_DATA_CHANGED,
    EventType.NODE_CHILDREN_CHANGED,
)


def test_one_shot_watches_fire_once() -> None:
    w = WatchManager()
    w.add_data_watch("/a", "c1")
    w.add_child_watch("/a", "c2")
    assert w.fire([(CHANGED, "/a", ())]) == [("c1", CHANGED, "/a", ())]
    assert w.fire([(CHANGED, "/a", ())]) == []
    assert w.fire([(CHILDREN, "/a", ())]) == [("c2", CHILDREN, "/a", ())]
    assert w.watch_count() == 0


def test_delete_tells_data_and_child_watchers_once_each() -> None:
    w = WatchManager()
    w.add_data_watch("/a", "c1")
    w.add_child_watch("/a", "c1")
    w.add_child_watch("/a", "c2")
    fired = w.fire([(DELETED, "/a", ())])
    assert sorted(fired) == [("c1", DELETED, "/a", ()), ("c2", DELETED, "/a", ())]
    assert w.watch_count() == 0


def test_persistent_watch_stays_and_hears_children() -> None:
    w = WatchManager()
    w.add_persistent("/p", "c", recursive=False)
    for _ in range(2):
        assert w.fire([(CHANGED, "/p", ()), (CHILDREN, "/p", ())]) == [("c", CHANGED, "/p", ()), ("c", CHILDREN, "/p", ())]
    assert w.fire([(CHANGED, "/p/x", ())]) == []


def test_recursive_watch_hears_descendants_but_not_child_lists() -> None:
    w = WatchManager()
    w.add_persistent("/r", "c", recursive=True)
    assert w.fire([(CREATED, "/r/a/b", ())]) == [("c", CREATED, "/r/a/b", ())]
    assert w.fire([(CHILDREN, "/r/a", ())]) == []
    assert w.fire([(DELETED, "/r", ())]) == [("c", DELETED, "/r", ())]
    assert w.fire([(CHANGED, "/other", ())]) == []
    assert w.fire([(CREATED, "/rx", ())]) == []  # a sibling sharing the prefix is not below /r


def test_standard_and_persistent_on_same_path_give_one_event() -> None:
    w = WatchManager()
    w.add_data_watch("/a", "c")
    w.add_persistent("/a", "c", recursive=False)
    assert w.fire([(CHANGED, "/a", ())]) == [("c", CHANGED, "/a", ())]
    assert w.contains("/a", "c", WatcherType.PERSISTENT)
    assert not w.contains("/a", "c", WatcherType.DATA)


def test_remove_and_check_by_kind() -> None:
    w = WatchManager()
    w.add_data_watch("/a", "c")
    w.add_child_watch("/a", "c")
    assert w.contains("/a", "c", WatcherType.ANY)
    assert w.remove("/a", "c", WatcherType.CHILDREN)
    assert not w.remove("/a", "c", WatcherType.CHILDREN)
    assert w.contains("/a", "c", WatcherType.DATA)
    w.add_persistent("/a", "c", recursive=True)
    assert w.remove("/a", "c", WatcherType.PERSISTENT_RECURSIVE)
    assert w.fire([(CREATED, "/a/b", ())]) == []
    assert w.remove("/a", "c", WatcherType.ANY)
    assert w.watch_count() == 0


def test_closed_connection_loses_every_watch() -> None:
    w = WatchManager()
    w.add_data_watch("/a", "c")
    w.add_persistent("/", "c", recursive=True)
    w.add_data_watch("/a", "d")
    w.remove_watcher("c")
    assert w.fire([(CHANGED, "/a", ())]) == [("d", CHANGED, "/a", ())]
    assert w.watchers() == 0
