"""The Stat record of a znode: all 11 fields, exactly as ZooKeeper reports them."""

from __future__ import annotations

import attrs


@attrs.frozen(slots=True)
class Stat:
    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeralOwner: int
    dataLength: int
    numChildren: int
    pzxid: int
