"""The core reads stored log in bounded batches (`ReadOnlyStorage.entries_after`), and a
DIFF or an apply that spans many batches still delivers every entry."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ccore.server.zab import Timing, make_zxid
from ccore.server.zab.api import Entry
from ccore.server.zab.history import History

from .memory import Bus, MemoryStorage
from .test_zab_sync import floor_in, histories

MAX_ENTRIES = 64
MAX_BYTES = 4000  # 40 of the 100-byte payloads below


def log_of(count: int, epoch: int = 1) -> list[Entry]:
    return [(make_zxid(epoch, i), b"%099d" % i) for i in range(1, count + 1)]


def check_bounded(storage: MemoryStorage) -> None:
    for after, max_entries, max_bytes, returned in storage.reads:
        assert max_entries <= MAX_ENTRIES and max_bytes <= MAX_BYTES, (after, max_entries, max_bytes)
        assert returned <= min(max_entries, max(1, max_bytes // 100)), (after, returned)


def test_a_diff_of_many_entries_is_read_in_batches_and_arrives_whole() -> None:
    history = log_of(3000)
    storages = {
        1: MemoryStorage(history[:10], current_epoch=1),  # far behind: a DIFF of 2990 entries
        2: MemoryStorage(history[:2000], current_epoch=1),
        3: MemoryStorage(history, current_epoch=1),  # the longest history: it leads
    }
    timing = Timing(
        tick_s=1.0, finalize_wait_s=0.1, committed_window=50, read_batch_entries=MAX_ENTRIES, read_batch_bytes=MAX_BYTES
    )
    bus = Bus(storages, timing=timing)
    bus.tick(2.0)
    assert bus.leader() == 3
    for storage in storages.values():
        assert storage.log == history, "the DIFF left entries out"
        assert storage.applied == history, "the apply left entries out"
        check_bounded(storage)
    leader_reads = storages[3].reads
    # The leader read its log from storage: 2990 entries for 1's DIFF, 1000 for 2's, 3000
    # to apply; 40 at most per call.
    assert len(leader_reads) >= (2990 + 1000 + 3000) // 40
    assert max(returned for *_, returned in leader_reads) == 40


def test_a_bounded_apply_after_restart_reads_the_log_in_batches() -> None:
    history = log_of(500)
    storage = MemoryStorage(history, current_epoch=1)
    bus = Bus({1: storage}, timing=Timing(tick_s=1.0, read_batch_entries=7, read_batch_bytes=1 << 20, max_apply_batch=30))
    bus.drain()
    assert bus.peers[1].is_leader
    assert storage.applied == history
    assert all(returned <= 7 for *_, returned in storage.reads)


def test_floor_reads_single_records_not_the_log() -> None:
    """The sync decision's floor used to read the stored log from its base up to the zxid."""
    entries = log_of(5000, epoch=1) + log_of(5000, epoch=3)
    storage = MemoryStorage(entries, current_epoch=3)
    history = History(storage, storage.last_zxid(), window=10, read_entries=MAX_ENTRIES, read_bytes=MAX_BYTES)
    reference = floor_in([z for z, _ in entries], 0)
    for zxid in (make_zxid(1, 4000), make_zxid(1, 7000), make_zxid(2, 5), make_zxid(3, 0), make_zxid(3, 4999)):
        storage.reads.clear()
        assert history.floor(zxid) == reference(zxid)
        assert len(storage.reads) <= 70, zxid
        assert all(returned <= 1 for *_, returned in storage.reads)


@settings(max_examples=300)
@given(histories(), st.integers(0, 3), st.data())
def test_floor_over_storage_matches_a_scan(case: tuple[list[int], list[int]], purged: int, data: st.DataObject) -> None:
    leader, learner = case
    base = leader[purged - 1] if 0 < purged <= len(leader) else 0
    kept = [x for x in leader if x > base]
    storage = MemoryStorage([(x, b"x") for x in kept])
    storage.base = base
    history = History(storage, storage.last_zxid(), window=2, read_entries=2, read_bytes=1)
    reference = floor_in(kept, base)
    probes = {base, *leader, *learner, *(x + 1 for x in leader), *(x - 1 for x in leader if x > 0)}
    for zxid in sorted(probes):
        assert history.floor(zxid) == reference(zxid), hex(zxid)
    after = data.draw(st.sampled_from(sorted({base, *kept})))
    assert history.entries(after, history.last) == [(x, b"x") for x in kept if x > after]
