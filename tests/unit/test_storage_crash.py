"""Stateful crash test for TxnLog: append, sync, roll, truncate, purge, crash, reopen.

fsync is replaced by a spy that records, per file, the content it made durable (and does no
real I/O). A "crash" turns every segment file into its durable content overwritten by a random
prefix of what changed since (writes reaching the disk in file order: the preallocated case
overwrites zeros inside the file, the unpadded case grows it), then the log is reopened.
Invariants: every record acknowledged by sync() (or by a durable truncate/roll) survives, and
what is recovered is a prefix of what was appended since the base (so records removed by a
truncation never come back). Run with and without padding, and with padding in small steps.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from unittest import mock

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ccore.server.storage import TxnLog
from ccore.server.storage.txnlog import DEFAULT_PREALLOCATE_BYTES

SEGMENT_BYTES = 256


class FsyncSpy:
    """Stands in for os.fsync/os.fdatasync: remembers the content each file had when synced."""

    def __init__(self) -> None:
        self.durable: dict[tuple[int, int], bytes] = {}
        self._real_open = os.open

    def __call__(self, fd: int) -> None:
        st_ = os.fstat(fd)
        if stat.S_ISREG(st_.st_mode):  # the log's descriptors are write-only: read it anew
            self.durable[(st_.st_dev, st_.st_ino)] = Path(f"/proc/self/fd/{fd}").read_bytes()

    def open(self, path: str | os.PathLike[str], flags: int, mode: int = 0o777, **kwargs: object) -> int:
        """os.open: a file created now has nothing durable yet (its inode may be a reused one)."""
        fd = self._real_open(path, flags, mode, **kwargs)  # type: ignore[arg-type]
        if flags & os.O_CREAT:
            st_ = os.fstat(fd)
            if st_.st_size == 0:
                self.durable.pop((st_.st_dev, st_.st_ino), None)
        return fd

    def durable_content(self, path: Path) -> bytes:
        st_ = path.stat()
        return self.durable.get((st_.st_dev, st_.st_ino), b"")

    def crashed(self, path: Path, content: bytes) -> None:
        """What the crash left on disk is durable from then on."""
        st_ = path.stat()
        self.durable[(st_.st_dev, st_.st_ino)] = content


def first_difference(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


class TxnLogCrashMachine(RuleBasedStateMachine):
    segment_bytes = SEGMENT_BYTES
    preallocate_bytes = DEFAULT_PREALLOCATE_BYTES  # capped at the segment size: pads it whole
    index_stride_bytes = 40  # a few index points per segment, so reads start mid-segment

    def __init__(self) -> None:
        super().__init__()
        self.spy = FsyncSpy()
        self.patches = [
            mock.patch("os.fsync", self.spy),
            mock.patch("os.fdatasync", self.spy),
            mock.patch("os.open", self.spy.open),
        ]
        for patch in self.patches:
            patch.start()
        self.dir = Path(tempfile.mkdtemp(prefix="txnlog-crash-"))
        self.log = self.reopen()
        self.model: list[tuple[int, bytes]] = []  # what the log should hold after its base
        self.durable = 0  # len(model) known to be on disk
        self.crashes = 0

    def reopen(self) -> TxnLog:
        return TxnLog.recover(self.dir, self.segment_bytes, self.preallocate_bytes, self.index_stride_bytes)

    def teardown(self) -> None:
        try:
            self.log.close()
        finally:
            for patch in self.patches:
                patch.stop()
            shutil.rmtree(self.dir, ignore_errors=True)

    @rule(
        count=st.integers(1, 6),
        gaps=st.lists(st.sampled_from([1, 1, 1, 2, 1 << 32]), min_size=6, max_size=6),
        sizes=st.lists(st.integers(0, 90), min_size=6, max_size=6),
    )
    def append(self, count: int, gaps: list[int], sizes: list[int]) -> None:
        batch, zxid = [], self.log.last_zxid
        for i in range(count):
            zxid += gaps[i]
            batch.append((zxid, bytes([zxid % 256]) * sizes[i]))
        self.log.append(batch)
        self.model.extend(batch)

    @rule()
    def sync(self) -> None:
        self.log.sync()
        self.durable = len(self.model)
        assert self.log.last_synced_zxid == self.log.last_zxid

    @rule()
    def roll(self) -> None:
        self.log.roll()
        self.durable = len(self.model)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def truncate_after(self, data: st.DataObject) -> None:
        keep = data.draw(st.integers(0, len(self.model)))
        zxid = self.model[keep - 1][0] if keep else self.log.base_zxid
        self.log.truncate_after(zxid)
        if keep < len(self.model):
            del self.model[keep:]
            self.durable = keep  # a real truncation is durable when it returns
        self.durable = min(self.durable, len(self.model))

    @precondition(lambda self: self.model)
    @rule(data=st.data(), keep_segments=st.integers(0, 3))
    def purge(self, data: st.DataObject, keep_segments: int) -> None:
        upto = self.model[data.draw(st.integers(0, len(self.model) - 1))][0]
        self.log.purge(upto, keep_segments)
        gone = sum(1 for zxid, _ in self.model if zxid <= self.log.base_zxid)
        assert self.log.base_zxid <= upto
        del self.model[:gone]
        self.durable = max(0, self.durable - gone)

    @rule(data=st.data())
    def crash_and_reopen(self, data: st.DataObject) -> None:
        self.log._close_fd()  # the process dies: no sync, no close
        for path in sorted(self.dir.glob("log.*")):
            durable, current = self.spy.durable_content(path), path.read_bytes()
            written = data.draw(st.integers(first_difference(durable, current), len(current)), label=path.name)
            left = current[:written] + durable[written:]
            path.write_bytes(left)
            self.spy.crashed(path, left)
        self.log = self.reopen()
        recovered = list(self.log.read_after(self.log.base_zxid))
        survivors = [r for r in self.model if r[0] > self.log.base_zxid]
        assert recovered == survivors[: len(recovered)], "recovered log is not a prefix of what was appended"
        lost = len(survivors) - len(recovered)
        assert len(self.model) - lost >= self.durable, "a synced record was lost"
        self.model = self.model[: len(self.model) - lost]
        self.durable = len(self.model)  # open() fsyncs what it recovered
        self.crashes += 1

    @rule(data=st.data())
    def read_after(self, data: st.DataObject) -> None:
        zxids = [self.log.base_zxid] + [z for z, _ in self.model]
        after = data.draw(st.sampled_from(zxids))
        assert list(self.log.read_after(after)) == [r for r in self.model if r[0] > after]

    @rule(data=st.data(), max_entries=st.integers(1, 5), max_bytes=st.integers(1, 200))
    def read_batch(self, data: st.DataObject, max_entries: int, max_bytes: int) -> None:
        base = self.log.base_zxid
        zxids = [base] + [z for z, _ in self.model]
        after = data.draw(st.sampled_from(zxids) | st.integers(base, zxids[-1] + 1))
        expected = [r for r in self.model if r[0] > after]
        got = self.log.read_batch(after, max_entries, max_bytes)
        assert got == expected[: len(got)]
        assert bool(got) == bool(expected), "at least one record when there is any"
        total = sum(len(payload) for _, payload in got)
        assert len(got) <= max_entries and (len(got) == 1 or total <= max_bytes)
        if len(got) < min(max_entries, len(expected)):
            assert total >= max_bytes or total + len(expected[len(got)][1]) > max_bytes, "stopped early"

    @invariant()
    def last_zxid_matches(self) -> None:
        expected = self.model[-1][0] if self.model else self.log.base_zxid
        assert self.log.last_zxid == expected
        assert self.log.last_synced_zxid <= self.log.last_zxid


class UnpaddedCrashMachine(TxnLogCrashMachine):
    preallocate_bytes = 0


class SmallStepCrashMachine(TxnLogCrashMachine):
    """Padding in steps smaller than a segment: writes run past it and take the next step."""

    segment_bytes = 1024
    preallocate_bytes = 100


_SETTINGS = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestTxnLogCrash = TxnLogCrashMachine.TestCase
TestTxnLogCrash.settings = _SETTINGS
TestUnpaddedTxnLogCrash = UnpaddedCrashMachine.TestCase
TestUnpaddedTxnLogCrash.settings = _SETTINGS
TestSmallStepTxnLogCrash = SmallStepCrashMachine.TestCase
TestSmallStepTxnLogCrash.settings = _SETTINGS
