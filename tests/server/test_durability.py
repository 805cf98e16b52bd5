"""A real server process killed with SIGKILL keeps every acknowledged write; a torn log tail
is repaired at start, a corrupt record in the middle stops start-up with a clear error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.compat.servers import ccore_server


def _client(handle) -> KazooClient:
    zk = KazooClient(hosts=handle.connect_string, timeout=5.0)
    zk.start(timeout=10)
    return zk


def _segments(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "log").glob("log.*"))


@pytest.mark.slow
def test_sigkill_keeps_every_acknowledged_write(tmp_path) -> None:
    handle = ccore_server(tmp_path / "s").start()
    try:
        zk = _client(handle)
        zk.create("/d", b"")
        pending = [zk.create_async(f"/d/n{i:04d}", b"v" * 100) for i in range(1000)]
        acked = {p.get(timeout=30) for p in pending}
        zk.set("/d", b"last")
        # More writes in flight when the server dies: these may or may not survive.
        for i in range(200):
            zk.create_async(f"/d/late{i}", b"")
        handle.kill()
        zk.stop()
        zk.close()
        handle.start()
        zk = _client(handle)
        children = set(zk.get_children("/d"))
        assert {p.rsplit("/", 1)[1] for p in acked} <= children
        assert zk.get("/d")[0] == b"last"
        zk.stop()
        zk.close()
    finally:
        handle.kill()


@pytest.mark.slow
def test_torn_tail_is_truncated_and_corrupt_middle_refuses_start(tmp_path) -> None:
    handle = ccore_server(tmp_path / "s").start()
    try:
        zk = _client(handle)
        for i in range(50):
            zk.create(f"/k{i}", b"x" * 50)
        zk.stop()
        zk.close()
        handle.kill()
        segment = _segments(handle.data_dir)[-1]
        with open(segment, "ab") as f:
            f.write(b"\x00\x00\x01\x00partial record")  # a write torn by the crash
        handle.start()
        zk = _client(handle)
        assert all(zk.exists(f"/k{i}") for i in range(50))
        zk.create("/after", b"")  # the log takes appends after the repair
        zk.stop()
        zk.close()
        handle.kill()
        # Flip a byte in an early record: that is corruption, not a torn tail. (The records
        # end where the zero padding after them starts.)
        raw = bytearray(segment.read_bytes())
        raw[len(bytes(raw).rstrip(b"\0")) // 3] ^= 0xFF
        segment.write_bytes(bytes(raw))
        result = subprocess.run(handle.argv, cwd=handle.cwd, env=handle.env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("ccore serve: txn log") and "crc mismatch" in last.lower(), result.stderr
        assert "Traceback" not in result.stderr
    finally:
        handle.kill()


def test_unusable_data_dir_is_a_clear_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = subprocess.run(
        [sys.executable, "-m", "ccore", "serve", "--client-port", "0", "--data-dir", str(blocker / "data")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("ccore serve: data dir") and "Traceback" not in result.stderr
