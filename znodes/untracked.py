"""Objects the cyclic garbage collector never needs to walk: the tree's nodes.

CPython's cyclic collector walks every object it tracks when it collects the old generation.
Each znode was two such objects (its `Node` and its children's set), and on a tree of a
million znodes a full collection, which the interpreter starts on its own as the heap grows,
held the event loop for about a second. A node references only bytes, ints, strings and a
tuple of ACLs, never another node or anything that could lead back to it: it can never be part
of a reference cycle, and reference counting alone frees it when it leaves the tree. So it is
taken off the collector's list when made (`PyObject_GC_UnTrack`, CPython's public C API,
called through ctypes: about 0.2 µs). A full collection on a million znodes now takes about
5 ms plus one pass over the path -> node dict (which stays tracked: every insert would track
it again), 40 ms in all.

`gc.freeze()` would hide the nodes as well, but it freezes everything alive with them, and an
object frozen alive that later ends in a garbage cycle (as Trio's tasks do when they end with
an exception) is never freed.

On an interpreter without `ctypes.pythonapi` (not CPython) this does nothing: nodes stay
tracked, which is only slower.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def _untrack_function() -> Callable[[object], None]:
    try:
        # The object's address as a plain pointer (`id` is that in CPython): ctypes converts
        # it in 200 ns where a py_object argument costs 340, and restarts call this per node.
        by_address = ctypes.PYFUNCTYPE(None, ctypes.c_void_p)(("PyObject_GC_UnTrack", ctypes.pythonapi))
    except (AttributeError, OSError):
        return lambda obj: None

    def untrack(obj: object) -> None:
        by_address(id(obj))

    return untrack


untrack: Callable[[object], None] = _untrack_function()
"""Take `obj` off the cyclic collector's list. Only for objects that can never be part of a
reference cycle; sets and slotted instances stay untracked however they change later."""
