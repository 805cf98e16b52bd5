"""kazoo's own `TestReconfig` (kazoo/tests/test_client.py), unchanged, against three of our
servers with `reconfigEnabled=true` and a super digest, as kazoo's harness configures
Apache ZooKeeper: no super auth gives NoAuth, bad input BadArguments, and an observer is
added, removed, and refused at a future config version."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

# kazoo's harness imports its manager of Java clusters (kazoo.testing.common, which needs
# pyOpenSSL and pyjks); we hand the harness our own cluster instead, so that module is
# replaced by an empty one before the harness loads.
sys.modules.setdefault("kazoo.testing.common", types.ModuleType("kazoo.testing.common"))
sys.modules["kazoo.testing.common"].ZookeeperCluster = None  # type: ignore[attr-defined]

import kazoo.testing.harness as harness  # noqa: E402
from kazoo.tests.test_client import TestReconfig  # noqa: E402, F401  (collected as it is)

from chaos.ensemble import LocalEnsemble  # noqa: E402

pytestmark = pytest.mark.slow

# kazoo's harness gives ZooKeeper this digest: super:test.
RECONFIG = ["reconfigEnabled=true", "DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU="]


class _Server:
    """What kazoo's harness reads of a cluster member."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.secure_address = address
        self.running = True


class _Cluster(list[_Server]):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def terminate(self) -> None: ...
    def reset(self) -> None: ...


@pytest.fixture(scope="module", autouse=True)
def our_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnsemble]:
    """Three servers, in kazoo's harness for the whole module (its tearDownClass asks too)."""
    base: Path = tmp_path_factory.mktemp("reconfig")
    with LocalEnsemble(base, nodes=3, extra_config={sid: RECONFIG for sid in (1, 2, 3)}) as ens:
        ens.start_all()
        ens.wait_leader()
        cluster = _Cluster(_Server(f"127.0.0.1:{ens.client_ports[sid]}") for sid in ens.servers)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(harness, "get_global_cluster", lambda: cluster)
            yield ens
