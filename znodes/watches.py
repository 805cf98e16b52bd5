"""Watch bookkeeping, as ZooKeeper's WatchManager keeps it, for one server.

Two tables, data and child, map a path to the watchers on it and each watcher's modes:
a one-shot (standard) watch, a persistent watch, a persistent-recursive watch. A watcher is any
hashable token the server chooses (its connection). `fire(triggers)` turns the triggers a
transaction returned into the events to deliver, consuming one-shot watches.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from . import paths
from .acl import ACL
from .constants import EventType, WatcherType

STANDARD = 1
PERSISTENT = 2
RECURSIVE = 4

Watcher = Hashable
Event = tuple[EventType, str, tuple[ACL, ...]]  # (type, path, the ACL that filters who hears it)


class _Table:
    """path -> {watcher: mode bits}, plus the reverse index for removing a watcher."""

    def __init__(self) -> None:
        self.by_path: dict[str, dict[Watcher, int]] = {}
        self.by_watcher: dict[Watcher, set[str]] = {}
        self.recursive_count = 0

    def add(self, path: str, watcher: Watcher, mode: int) -> None:
        watchers = self.by_path.setdefault(path, {})
        old = watchers.get(watcher, 0)
        watchers[watcher] = old | mode
        self.by_watcher.setdefault(watcher, set()).add(path)
        if mode & RECURSIVE and not old & RECURSIVE:
            self.recursive_count += 1

    def has(self, path: str, watcher: Watcher, mode: int | None) -> bool:
        bits = self.by_path.get(path, {}).get(watcher, 0)
        return bool(bits) if mode is None else bool(bits & mode)

    def remove(self, path: str, watcher: Watcher, mode: int | None) -> bool:
        watchers = self.by_path.get(path)
        if not watchers or watcher not in watchers:
            return False
        old = watchers[watcher]
        new = 0 if mode is None else old & ~mode
        if new == old:
            return False
        self._set(path, watchers, watcher, old, new)
        return True

    def _set(self, path: str, watchers: dict[Watcher, int], watcher: Watcher, old: int, new: int) -> None:
        if old & RECURSIVE and not new & RECURSIVE:
            self.recursive_count -= 1
        if new:
            watchers[watcher] = new
            return
        del watchers[watcher]
        if not watchers:
            del self.by_path[path]
        mine = self.by_watcher.get(watcher)
        if mine is not None:
            mine.discard(path)
            if not mine:
                del self.by_watcher[watcher]

    def remove_watcher(self, watcher: Watcher) -> None:
        for path in self.by_watcher.pop(watcher, ()):
            watchers = self.by_path[path]
            if watchers.pop(watcher) & RECURSIVE:
                self.recursive_count -= 1
            if not watchers:
                del self.by_path[path]

    def trigger(self, path: str) -> set[Watcher]:
        """Watchers told of a change at `path`; one-shot watches there are consumed."""
        fired: set[Watcher] = set()
        watchers = self.by_path.get(path)
        if watchers:
            for watcher, bits in list(watchers.items()):
                fired.add(watcher)
                if bits & STANDARD:
                    self._set(path, watchers, watcher, bits, bits & ~STANDARD)
        if self.recursive_count:
            # Recursive watches on any ancestor hear of changes below them.
            for ancestor in paths.ancestors(path):
                for watcher, bits in self.by_path.get(ancestor, {}).items():
                    if bits & RECURSIVE:
                        fired.add(watcher)
        return fired

    def count(self) -> int:
        return sum(len(p) for p in self.by_watcher.values())


class WatchManager:
    """All watches registered on one server, keyed by watcher (connection) token."""

    def __init__(self) -> None:
        self._data = _Table()
        self._child = _Table()

    # -- registration -------------------------------------------------------------------

    def add_data_watch(self, path: str, watcher: Watcher) -> None:
        """A one-shot watch from getData or exists."""
        self._data.add(path, watcher, STANDARD)

    def add_child_watch(self, path: str, watcher: Watcher) -> None:
        """A one-shot watch from getChildren."""
        self._child.add(path, watcher, STANDARD)

    def add_persistent(self, path: str, watcher: Watcher, recursive: bool) -> None:
        """addWatch: a persistent watch hears data and child changes; a recursive one hears
        creations, deletions and data changes of the path and every node below it."""
        if recursive:
            self._data.add(path, watcher, RECURSIVE)
        else:
            self._data.add(path, watcher, PERSISTENT)
            self._child.add(path, watcher, PERSISTENT)

    def remove_watcher(self, watcher: Watcher) -> None:
        """Drop every watch of a connection that closed."""
        self._data.remove_watcher(watcher)
        self._child.remove_watcher(watcher)

    def remove(self, path: str, watcher: Watcher, kind: WatcherType) -> bool:
        """removeWatches: True when a watch of that kind was there and is now gone."""
        if kind == WatcherType.CHILDREN:
            return self._child.remove(path, watcher, STANDARD)
        if kind == WatcherType.DATA:
            return self._data.remove(path, watcher, STANDARD)
        if kind == WatcherType.PERSISTENT:
            child = self._child.remove(path, watcher, PERSISTENT)
            data = self._data.remove(path, watcher, PERSISTENT)
            return child or data
        if kind == WatcherType.PERSISTENT_RECURSIVE:
            return self._data.remove(path, watcher, RECURSIVE)
        child = self._child.remove(path, watcher, None)
        data = self._data.remove(path, watcher, None)
        return child or data

    def contains(self, path: str, watcher: Watcher, kind: WatcherType) -> bool:
        """checkWatches: is a watch of that kind registered?"""
        if kind == WatcherType.CHILDREN:
            return self._child.has(path, watcher, STANDARD)
        if kind == WatcherType.DATA:
            return self._data.has(path, watcher, STANDARD)
        if kind == WatcherType.PERSISTENT:
            return self._data.has(path, watcher, PERSISTENT)
        if kind == WatcherType.PERSISTENT_RECURSIVE:
            return self._data.has(path, watcher, RECURSIVE)
        return self._child.has(path, watcher, None) or self._data.has(path, watcher, None)

    # -- firing -------------------------------------------------------------------------

    def fire(self, triggers: Iterable[Event]) -> list[tuple[Watcher, EventType, str, tuple[ACL, ...]]]:
        """Events to deliver, in order, for the triggers of one applied transaction, each with
        the ACL of the node it concerns: ZooKeeper delivers it only to watchers that may READ."""
        out: list[tuple[Watcher, EventType, str, tuple[ACL, ...]]] = []
        if not self._data.by_path and not self._child.by_path:
            return out  # nobody watches anything (the common case under a write load)
        for event_type, path, acl in triggers:
            if event_type == EventType.NODE_CHILDREN_CHANGED:
                fired = self._child.trigger(path)
            elif event_type == EventType.NODE_DELETED:
                fired = self._data.trigger(path)
                # A watcher on both tables hears of the deletion once.
                fired |= self._child.trigger(path)
            else:
                fired = self._data.trigger(path)
            out.extend((w, event_type, path, acl) for w in fired)
        return out

    # -- statistics (four-letter words) ---------------------------------------------------

    def watch_count(self) -> int:
        return self._data.count() + self._child.count()

    def paths_watched(self) -> int:
        return len(self._data.by_path.keys() | self._child.by_path.keys())

    def watchers(self) -> int:
        return len(self._data.by_watcher.keys() | self._child.by_watcher.keys())

    def by_watcher(self) -> dict[Watcher, set[str]]:
        out: dict[Watcher, set[str]] = {}
        for table in (self._data, self._child):
            for watcher, ps in table.by_watcher.items():
                out.setdefault(watcher, set()).update(ps)
        return out

    def by_path(self) -> dict[str, set[Watcher]]:
        out: dict[str, set[Watcher]] = {}
        for table in (self._data, self._child):
            for path, ws in table.by_path.items():
                out.setdefault(path, set()).update(ws)
        return out
