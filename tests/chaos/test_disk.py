"""Full-disk faults on a live process: RLIMIT_FSIZE (EFBIG) and a shrunken tmpfs (ENOSPC)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaos.disk import FsizeLimit, TmpfsDisk, tmpfs_available

# A child that appends 1000 bytes every 20 ms for up to 5 s and reports each result.
WRITER = r"""
import os, sys, time
f = open(sys.argv[1], "ab", buffering=0)
for i in range(250):
    try:
        f.write(b"x" * 1000); os.fsync(f.fileno()); print("ok", os.path.getsize(sys.argv[1]), flush=True)
    except OSError as e:
        print("err", e.errno, flush=True)
    if os.path.exists(sys.argv[1] + ".stop"):
        break
    time.sleep(0.02)
"""


def _run_writer(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)


def _wait_lines(proc: subprocess.Popen[str], want: str, count: int, timeout_s: float = 5.0) -> list[str]:
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline().strip()
        if not line:
            break
        seen.append(line)
        if sum(1 for s in seen if s.startswith(want)) >= count:
            return seen
    raise AssertionError(f"wanted {count} lines starting {want!r}, got {seen[-5:]}")


def test_fsize_limit_makes_appends_fail_with_efbig_and_heals(tmp_path: Path) -> None:
    target = tmp_path / "log"
    proc = _run_writer(target)
    try:
        _wait_lines(proc, "ok", 3)
        limit = FsizeLimit(proc.pid)
        limit.fill(0)
        assert limit.limited()
        errors = _wait_lines(proc, "err", 3)
        assert "err 27" in errors[-1]  # EFBIG
        size_while_full = target.stat().st_size
        limit.heal()
        assert not limit.limited()
        _wait_lines(proc, "ok", 2)
        assert target.stat().st_size > size_while_full
    finally:
        (tmp_path / "log.stop").touch()
        proc.wait(timeout=10)
    FsizeLimit(proc.pid).heal()  # healing a process that is gone is a no-op


@pytest.mark.skipif(not tmpfs_available(), reason="cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
def test_tmpfs_shrunk_live_gives_enospc_and_grows_back(tmp_path: Path) -> None:
    with TmpfsDisk(tmp_path / "data", size_bytes=4 << 20) as disk:
        target = disk.path / "log"
        proc = _run_writer(target)
        try:
            _wait_lines(proc, "ok", 3)
            disk.fill(slack_bytes=0)
            errors = _wait_lines(proc, "err", 2)
            assert "err 28" in errors[-1]  # ENOSPC
            disk.heal()
            _wait_lines(proc, "ok", 2)
        finally:
            (disk.path / "log.stop").touch()
            proc.wait(timeout=10)
    assert not (tmp_path / "data" / "log").exists()  # unmounted: the tmpfs and its files are gone
