"""Client sessions in the simulator (sessions.py): real client and server cores across
crashes, partitions and elections, and the checks catching deliberately wrong servers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import pytest

from ccore.znodes import tree as tree_module

from .cluster import Sim
from .runner import _run, run_seed


def _sessions_run(seed: int, **overrides: object) -> Sim:
    sim = Sim(seed, session_clients=4, **overrides)
    _run(sim)
    return sim


def test_session_clients_survive_faults_and_every_check_holds() -> None:
    totals: Counter[str] = Counter()
    for seed in range(12):
        sim = _sessions_run(seed)
        assert sim.clients is not None
        totals["sessions"] += sum(c.sessions for c in sim.clients.clients)
        totals["replies"] += sum(c.replies for c in sim.clients.clients)
        totals["expired"] += sum(c.expired for c in sim.clients.clients)
        totals["closed"] += len(sim.session_checker.closed)
    # Not a vacuous pass: clients worked, and sessions expired and closed along the way.
    assert totals["sessions"] > 48 and totals["replies"] > 500, totals
    assert totals["expired"] > 0 and totals["closed"] > 0, totals


def _first_failure(seeds: Iterable[int], **overrides: Any) -> str:
    for seed in seeds:
        # Without membership changes: these seeds were found before reconfig existed.
        result = run_seed(seed, spares=0, reconfig_rate=0.0, **overrides)
        if not result.ok:
            return result.error
    return ""


def test_the_checks_catch_watch_events_that_leave_after_later_replies() -> None:
    assert "had not fired" in _first_failure(range(40), session_clients=4, session_bug="late watch events")


def test_the_checks_catch_a_server_serving_a_client_that_has_seen_more() -> None:
    """Rare (a client must reconnect to a server behind what it has read): seeds where it
    happens, found with `python -m tests.sim`; if the simulator changes, find others so."""
    seeds = (136, 173, 227)
    caught = _first_failure(seeds, session_clients=4, session_bug="serves clients from the future")
    assert "went back in time" in caught


def test_the_checks_catch_a_lagging_server_that_says_a_live_session_expired() -> None:
    """A client resumes its session on a server whose tree has not applied the session's
    creation yet: rare, so these are seeds where it happens (found by `python -m tests.sim`
    before servers asked the leader; if the simulator changes, find others that way)."""
    seeds = (29, 40, 154)
    caught = _first_failure(seeds, session_clients=4, session_bug="local expiry verdict")
    assert "that it expired; it is live" in caught


def test_the_checks_catch_a_write_committed_after_its_sessions_close(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the tree's rule that a closed session's writes fail, a write a follower
    forwarded while the close was on its way commits after the close."""
    monkeypatch.setattr(tree_module, "_SESSION_WRITES", frozenset())
    # Rare (the leader expires a session just as its client, back from a cut, writes again
    # through a follower): seeds where it happens, found with `python -m tests.sim`.
    seeds = (59, 83, 96, 111, 138)
    assert "after the session's close" in _first_failure(seeds, session_clients=4)


def test_a_seed_with_session_clients_replays_exactly() -> None:
    first, second = run_seed(7, session_clients=4), run_seed(7, session_clients=4)
    assert first.ok and (first.events, first.sim_s, first.committed) == (second.events, second.sim_s, second.committed)
