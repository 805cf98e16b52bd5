"""The examples still run (against the test's server), every process of each on the loop of
the test (`--loop trio|asyncio`): the seed's lease failover, the lock shared by processes, the
leader election, the service registry, and the asyncio web service."""

from __future__ import annotations

import subprocess
import sys

import anyio
import pytest

from tests.compat.servers import REPO_ROOT

# Every async test on Trio and on asyncio (see tests/client/conftest.py).
pytestmark = pytest.mark.anyio


def run(script: str, *args: str, timeout_s: float = 60) -> str:
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / script), *args],
        capture_output=True, text=True, timeout=timeout_s, cwd=REPO_ROOT, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
async def test_lease_failover_example(hosts, root, anyio_backend):
    out = await anyio.to_thread.run_sync(run, "lease_failover.py", "--hosts", hosts + root, "--ttl", "2", "--loop", anyio_backend)
    assert "NodeA: OWNS Migo Group" in out and "NodeB: OWNS Migo Group" in out
    ratio = float(out.split(" x TTL")[-2].rsplit("= ", 1)[1])
    assert 0 < ratio < 2  # the bound itself is checked in test_lease.py and by the bench


@pytest.mark.slow
async def test_lock_shared_example(hosts, root, anyio_backend):
    out = await anyio.to_thread.run_sync(
        run, "lock_shared.py", "--hosts", hosts + root, "--processes", "3", "--rounds", "10", "--loop", anyio_backend
    )
    assert "counter = 30 (expected 30)" in out


@pytest.mark.slow
async def test_leader_election_example(hosts, root, anyio_backend):
    out = await anyio.to_thread.run_sync(
        run, "leader_election.py", "--hosts", hosts + root, "--candidates", "3", "--term", "0.5", "--loop", anyio_backend
    )
    assert out.count(": LEADING (term token") == 3 and out.count(": stepping down") == 3


@pytest.mark.slow
async def test_service_registry_example(hosts, root, anyio_backend):
    out = await anyio.to_thread.run_sync(run, "service_registry.py", "--hosts", hosts + root, "--loop", anyio_backend)
    assert "client: 3 instances" in out and "client: 2 instances left" in out


@pytest.mark.slow
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the example is about asyncio
async def test_asyncio_service_example(hosts, root, anyio_backend):
    out = await anyio.to_thread.run_sync(run, "asyncio_service.py", "--hosts", hosts + root, "--payments", "30")
    assert "ledger = 30 (expected 30)" in out
