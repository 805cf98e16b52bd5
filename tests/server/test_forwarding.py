"""The write router: forwarding to the leader, refusals, touches, and one outcome per write."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ccore.server.commit import Abandoned, Committed, Outcome
from ccore.server.forwarding import CheckSession, ForwardWrite, RefuseWrite, Role, SessionChecked, Touches, WriteRouter
from ccore.znodes.txn import NoOp, Result, Txn

LEADER, FOLLOWER = 1, 2


class Sessions:
    """The session owner a router talks to: records touches, knows which sessions expired."""

    def __init__(self, touches: list[Any]) -> None:
        self.touches = touches
        self.expired: set[int] = set()

    def touch_from_peer(self, session: int, heard_at: float) -> None:
        self.touches.append((session, heard_at))

    def surely_expired(self, session: int, password: bytes) -> bool:
        return session in self.expired

    committed = applied = 0  # zxids

    def committed_zxid(self) -> int:
        return self.committed

    def applied_zxid(self) -> int:
        return self.applied


def _router(my_id: int, touches: list[Any] | None = None) -> WriteRouter:
    return WriteRouter(my_id, 1000 * my_id, Sessions(touches if touches is not None else []))


def test_a_follower_forwards_to_the_leader_which_queues_it_with_its_origin():
    leader, follower = _router(LEADER), _router(FOLLOWER)
    leader.set_role(Role(True, LEADER, True, 1), "")
    follower.set_role(Role(False, LEADER, True, 1), "")
    outcomes: list[Outcome] = []
    ((to, frame),) = follower.submit(7, NoOp(), (), outcomes.append)
    assert to == LEADER and isinstance(frame, ForwardWrite)
    assert leader.receive(FOLLOWER, frame, 0.0) == []
    (proposal,) = leader.take_proposals()
    assert (proposal.origin, proposal.request_id, proposal.session) == (FOLLOWER, frame.request_id, 7)
    txn = Txn(5, 0, 7, NoOp(), (), proposal.origin, proposal.request_id)
    assert leader.writer_of(txn) is None  # not the leader's client
    writer = follower.writer_of(txn)
    assert writer is not None
    writer(Committed(txn, Result()))
    assert follower.writer_of(txn) is None  # found once only
    assert follower.in_flight == 0


def test_touches_go_to_the_leader_dated_back_by_their_age():
    heard: list[Any] = []
    leader, follower = _router(LEADER, heard), _router(FOLLOWER)
    leader.set_role(Role(True, LEADER, True, 1), "")
    follower.set_role(Role(False, LEADER, True, 1), "")
    follower.touched(0x10, 100.0)
    ((to, frame),) = follower.touches_due(100.5)
    assert to == LEADER and frame == Touches(((0x10, 500),))
    assert follower.touches_due(101.0) == []  # sent once
    leader.receive(FOLLOWER, frame, 200.0)
    assert heard == [(0x10, 199.5)]


def test_a_server_that_does_not_lead_refuses_a_forward():
    stale = _router(3)
    stale.set_role(Role(False, 1, True, 2), "")
    assert stale.receive(FOLLOWER, ForwardWrite(9, 7, NoOp(), ()), 0.0) == [(FOLLOWER, RefuseWrite(9))]
    assert stale.take_proposals() == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("submit"), st.sampled_from([1, 2, 3])),
            st.tuples(st.just("deliver"), st.integers(0, 50)),
            st.tuples(st.just("drop"), st.integers(0, 50)),
            st.tuples(st.just("commit"), st.integers(0, 5)),
            st.tuples(st.just("elect"), st.sampled_from([1, 2, 3, None])),
        ),
        max_size=60,
    )
)
def test_every_write_gets_exactly_one_outcome(actions):
    """Writes submitted anywhere, frames delivered late or lost, leaders changing at any
    time: no writer hears twice, and once the ensemble settles every writer has heard."""
    routers = {i: _router(i) for i in (1, 2, 3)}
    calls: Counter[int] = Counter()
    outcome_of: dict[int, Outcome] = {}
    in_flight: list[tuple[int, int, Any]] = []  # (sender, to, frame)
    epoch = 1
    leader: int | None = 1
    zxid = 0

    def set_roles() -> None:
        for i, router in routers.items():
            serving = leader is not None
            router.set_role(Role(i == leader, leader, serving, epoch), "leader changed")

    set_roles()
    n = 0
    for action, arg in actions:
        if action == "submit":
            n += 1
            write = n

            def done(outcome: Outcome, write: int = write) -> None:
                calls[write] += 1
                outcome_of[write] = outcome

            in_flight += [(arg, to, f) for to, f in routers[arg].submit(0x10, NoOp(), (), done)]
        elif action in ("deliver", "drop") and in_flight:
            sender, to, frame = in_flight.pop(arg % len(in_flight))
            if action == "deliver":
                in_flight += [(to, back_to, f) for back_to, f in routers[to].receive(sender, frame, 0.0)]
        elif action == "commit" and leader is not None:
            for proposal in routers[leader].take_proposals()[: arg + 1]:
                zxid += 1
                txn = Txn(zxid, 0, proposal.session, proposal.op, (), proposal.origin, proposal.request_id)
                for router in routers.values():
                    writer = router.writer_of(txn)
                    if writer is not None:
                        writer(Committed(txn, Result()))
        elif action == "elect":
            epoch += 1
            leader = arg
            set_roles()
    assert all(c == 1 for c in calls.values()), calls
    # Settle: the last leader steps down, as any change of leadership does.
    epoch += 1
    leader = None
    set_roles()
    assert set(calls) == set(range(1, n + 1)) and all(c == 1 for c in calls.values())
    assert all(isinstance(o, (Committed, Abandoned)) for o in outcome_of.values())


def test_a_malformed_router_frame_is_a_decoding_error():
    """Bad values from a peer must fail in the codec (which drops that link), not later in
    the write router, where an exception would stop the server."""
    import cbor2
    import pytest

    from ccore.server.peer_frames import decode_peer_frame, encode_peer_frame

    for good in (Touches(((0x10, 5),)), CheckSession(3, 0x10, b"pw"), SessionChecked(3, True)):
        assert decode_peer_frame(encode_peer_frame(good)) == good
    bad = (
        b"T" + cbor2.dumps([[["s", 5]]]),
        b"R" + cbor2.dumps(["x"]),
        b"T" + cbor2.dumps([[[1, 2.5]]]),
        b"S" + cbor2.dumps([1, 2, "pw"]),
        b"E" + cbor2.dumps([1, 1]),
    )
    for frame in bad:
        with pytest.raises(ValueError):
            decode_peer_frame(frame)


def test_a_session_check_goes_to_the_leader_and_only_it_says_expired():
    sessions = Sessions([])
    sessions.expired.add(9)
    leader = WriteRouter(LEADER, 1000, sessions)
    follower = _router(FOLLOWER)
    leader.set_role(Role(True, LEADER, True, 1), "")
    follower.set_role(Role(False, LEADER, True, 1), "")
    verdicts: list[bool] = []
    for session in (9, 10):
        ((to, frame),) = follower.check_session(session, b"pw", verdicts.append)
        assert to == LEADER and frame == CheckSession(frame.request_id, session, b"pw")
        ((back_to, answer),) = leader.receive(FOLLOWER, frame, 0.0)
        assert back_to == FOLLOWER and isinstance(answer, SessionChecked)
        assert follower.receive(LEADER, answer, 0.0) == []
    assert verdicts == [True, False]
    # A server that does not lead (any more) never says expired.
    other = _router(3)
    other.set_role(Role(False, LEADER, True, 1), "")
    ((_, frame),) = follower.check_session(9, b"pw", verdicts.append)
    ((_, answer),) = other.receive(FOLLOWER, frame, 0.0)
    assert answer.expired is False


def test_a_session_check_in_flight_when_the_role_changes_is_answered_not_expired():
    follower = _router(FOLLOWER)
    follower.set_role(Role(False, LEADER, True, 1), "")
    verdicts: list[bool] = []
    ((_, frame),) = follower.check_session(9, b"pw", verdicts.append)
    follower.set_role(Role(False, 3, True, 2), "the leader changed")
    assert verdicts == [False]
    # The old leader's late answer finds nobody waiting.
    follower.receive(LEADER, SessionChecked(frame.request_id, True), 0.0)
    assert verdicts == [False]
    # Nobody to ask: answered at once.
    follower.set_role(Role(False, None, False, 2), "looking")
    assert follower.check_session(9, b"pw", verdicts.append) == []
    assert verdicts == [False, False]


def test_the_leader_answers_a_session_check_once_it_applied_what_was_committed_before_it():
    """The session may have been created by a transaction committed, and applied by another
    follower, but not yet applied here: "expired" must wait for it."""
    sessions = Sessions([])
    leader = WriteRouter(LEADER, 1000, sessions)
    follower = _router(FOLLOWER)
    leader.set_role(Role(True, LEADER, True, 1), "")
    follower.set_role(Role(False, LEADER, True, 1), "")
    sessions.committed, sessions.applied = 7, 5
    sessions.expired.add(9)  # as the tree says now
    verdicts: list[bool] = []
    ((_, frame),) = follower.check_session(9, b"pw", verdicts.append)
    assert leader.receive(FOLLOWER, frame, 0.0) == []  # waits for zxid 7
    sessions.committed = 8  # committed later: not waited for
    sessions.applied = 6
    assert leader.applied() == []
    sessions.expired.discard(9)  # zxid 7 created it
    sessions.applied = 7
    ((to, answer),) = leader.applied()
    assert to == FOLLOWER and answer == SessionChecked(frame.request_id, False)
    follower.receive(LEADER, answer, 0.0)
    assert verdicts == [False] and leader.applied() == []
