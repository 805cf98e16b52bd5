"""Differential test: the same Hypothesis-generated programs run by kazoo against Apache
ZooKeeper and against our server, side by side; results, exception classes, normalised
Stats, watch events and the final subtree must agree. See differential.py for what is
generated and how transcripts are normalised.

`CCORE_DIFF_AGAINST=apache` runs the main test against a second Apache server instead, to
check the test itself; `test_differential_apache_against_apache` always does a few of those.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings

from tests.compat.differential import (
    describe_mismatch,
    new_example_root,
    programs,
    run_side,
)
from tests.compat.helpers import close_kazoo, new_kazoo, start_server
from tests.compat.servers import ServerHandle

# Apache must never reap a container or TTL node on its own timer during an example.
NO_REAPING = {"znode.container.checkIntervalMs": str(3_600_000)}
MAX_EXAMPLES = int(os.environ.get("CCORE_DIFF_EXAMPLES", "60"))
SELF_CHECK_EXAMPLES = 15


class Side:
    def __init__(self, name: str, handle: ServerHandle) -> None:
        self.name = name
        self.handle = handle
        # the cleanup client is alice too, so it may open any ACL the programs set
        self.admin = new_kazoo(handle.connect_string, auth_data=[("digest", "alice:secret")])

    def close(self) -> None:
        close_kazoo(self.admin)


def start_side(kind: str, name: str, tmp_path_factory) -> tuple[Side, ServerHandle]:
    options = {"system_properties": NO_REAPING} if kind == "apache" else {}
    handle = start_server(kind, tmp_path_factory.mktemp(f"diff-{name}"), **options)
    try:
        return Side(name, handle), handle
    except BaseException:
        handle.kill()
        raise


@pytest.fixture(scope="module")
def apache_side(tmp_path_factory) -> Iterator[Side]:
    side, handle = start_side("apache", "apache", tmp_path_factory)
    try:
        yield side
    finally:
        side.close()
        handle.kill()


@pytest.fixture(scope="module")
def other_side(tmp_path_factory) -> Iterator[Side]:
    kind = os.environ.get("CCORE_DIFF_AGAINST", "ccore")
    side, handle = start_side(kind, kind if kind == "ccore" else "apache-2", tmp_path_factory)
    try:
        yield side
    finally:
        side.close()
        handle.kill()


@pytest.fixture(scope="module")
def second_apache_side(tmp_path_factory) -> Iterator[Side]:
    side, handle = start_side("apache", "apache-2", tmp_path_factory)
    try:
        yield side
    finally:
        side.close()
        handle.kill()


def compare(left: Side, right: Side, program: list) -> None:
    root = new_example_root()
    a = run_side(left.handle, left.admin, root, program)
    b = run_side(right.handle, right.admin, root, program)
    mismatch = describe_mismatch(program, (left.name, right.name), a, b)
    if mismatch:
        raise AssertionError(mismatch)


@pytest.mark.slow
def test_differential_ccore_matches_zookeeper(apache_side, other_side):
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(program=programs)
    def check(program):
        compare(apache_side, other_side, program)

    check()


@pytest.mark.slow
def test_differential_apache_against_apache(apache_side, second_apache_side):
    """The normalisation must make two Apache servers (different session ids, different
    zxid histories) agree exactly; otherwise the test above would cry wolf."""

    @settings(
        max_examples=SELF_CHECK_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
    )
    @given(program=programs)
    def check(program):
        compare(apache_side, second_apache_side, program)

    check()
