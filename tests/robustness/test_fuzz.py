"""A Hypothesis fuzzer of socket behaviour against one long-lived server process.

Each example opens one connection to the client port or the peer port of the same ensemble
member (the leader when the module starts) and plays a sequence of actions on it: valid
frames, random bytes, partial frames, bare length fields, pauses, reads, and an ending (TCP
reset, half-close, close, abandon). After every example the process must be alive, every
member serving and committing, the control session (opened before the first example) still
the same session and answering, and a new session able to connect.

The shrink phase is off: a failing example usually kills the server, and shrinking would
restart an ensemble member per attempt. The falsifying example is printed as found, and the
explicit examples below run first, every time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import cbor2
import pytest
from hypothesis import HealthCheck, Phase, example, given, note, settings
from hypothesis import strategies as st
from kazoo.client import KazooState

from .conftest import ROOT, Control, EnsemblePool, Target, assert_ensemble_commits, new_session_works
from .wire import (
    JUTE_MAX_BUFFER,
    PEER_MAX_FRAME,
    Conn,
    close_session,
    connect_request,
    create,
    get_data,
    length_prefix,
    peer_frame,
    peer_hello,
    ping,
)

MAX_EXAMPLES = 60
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)

CLIENT_FRAMES = {
    "connect": connect_request(),
    "connect-from-the-future": connect_request(last_zxid=2**62),
    "connect-unknown-session": connect_request(session_id=0x1234, passwd=b"p" * 16),
    "get-root": get_data(1, "/"),
    "get-bad-path": get_data(2, "no-slash"),
    "create": create(3, f"{ROOT}/fuzz-", b"x", flags=2),
    "ping": ping(),
    "close-session": close_session(4),
    "ruok": b"ruok",
    "srvr": b"srvr",
    "cons": b"cons",
}
LENGTHS = [
    0,
    1,
    4,
    JUTE_MAX_BUFFER - 1,
    JUTE_MAX_BUFFER,
    JUTE_MAX_BUFFER + 1,
    PEER_MAX_FRAME + 1,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
]
ENDINGS = ["rst", "half-close", "close", "abandon"]


def peer_frames(pool: EnsemblePool, member: Target) -> dict[str, bytes]:
    other = pool.other(member)
    return {
        "hello-member": peer_hello(other, pool.digest),
        "hello-stranger": peer_hello(99, pool.digest),
        "hello-self": peer_hello(member.sid, pool.digest),
        "hello-bad-digest": peer_hello(other, "f" * 16),
        "hello-bad-magic": peer_hello(other, pool.digest, magic="nope"),
        "cbor-junk": peer_frame(cbor2.dumps({"x": [1, 2, 3]})),
        "not-cbor": peer_frame(b"\xff\xff\xff"),
    }


def actions(frame_names: list[str]) -> st.SearchStrategy:
    one = st.one_of(
        st.tuples(st.just("send"), st.sampled_from(frame_names)),
        st.tuples(st.just("partial"), st.sampled_from(frame_names), st.floats(0.0, 1.0)),
        st.tuples(st.just("bytes"), st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("length"), st.sampled_from(LENGTHS)),
        st.tuples(st.just("pause"), st.integers(0, 40)),
        st.tuples(
            st.just("read"),
        ),
    )
    return st.tuples(st.lists(one, max_size=6), st.sampled_from(ENDINGS))


class Fuzzed:
    """The member under fuzz and its control session, for the whole module."""

    def __init__(self, pool: EnsemblePool) -> None:
        self.pool = pool
        self.examples = 0
        self._attach()

    def _attach(self) -> None:
        self.member = self.pool.target("leader")
        self.control = Control(self.member.hosts)
        self.peer_frames = peer_frames(self.pool, self.member)

    def revive(self) -> None:
        """After a failed example (already reported) the next one starts from a repaired
        ensemble, so that it fails for its own reason or not at all."""
        if self.member.exit_status() is None and self.pool.all_serving() and not self.control.interruptions():
            return
        self.control.close()
        self.pool.ready()
        self._attach()

    def play(self, port_kind: str, script: tuple[list[tuple], str]) -> None:
        steps, ending = script
        self.revive()
        if port_kind == "client":
            port, frames = self.member.client_port, CLIENT_FRAMES
        else:
            assert self.member.peer_port is not None
            port, frames = self.member.peer_port, self.peer_frames
        note(f"{port_kind} port of server {self.member.sid}: {steps} then {ending}")
        c = Conn(port, timeout_s=2.0)
        open_ = True
        for step in steps:
            kind = step[0]
            if kind == "pause":
                time.sleep(step[1] / 1000.0)
            elif kind == "read":
                _data, closed = c.read_available(0.03)
                open_ = open_ and not closed
            elif open_:
                if kind == "send":
                    data = frames[step[1]]
                elif kind == "partial":
                    whole = frames[step[1]]
                    data = whole[: int(len(whole) * step[2])]
                elif kind == "bytes":
                    data = step[1]
                else:
                    data = length_prefix(step[1])
                if data:
                    open_ = c.try_send(data)
        if ending == "rst":
            c.rst()
        elif ending == "half-close":
            c.half_close()
            c.closed_by_server(1.0)
            c.close(drain_s=0.1)
        elif ending == "close":
            c.close(drain_s=0.2)
        else:  # abandon: close() at once, whatever is unread (the kernel may send RST)
            assert c.sock is not None
            c.sock.close()
            c.sock = None
        self.examples += 1

    def check(self) -> None:
        m = self.member
        m.settle(0.1)
        m.assert_alive(f"after fuzz example {self.examples}")
        assert_ensemble_commits(self.pool, within_s=15.0)
        self.control.round_trip()
        assert self.control.zk.client_id is not None and self.control.zk.client_id[0] == self.control.session_id, (
            "the control session was replaced: it expired"
        )
        assert KazooState.LOST not in self.control.states, "the control session was lost"
        new_session_works(m.client_port, self.control)
        m.assert_alive(f"after fuzz example {self.examples} (end of checks)")


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory) -> Iterator[Fuzzed]:
    pool = EnsemblePool(tmp_path_factory.mktemp("robust-fuzz"))
    f: Fuzzed | None = None
    try:
        pool.ready()
        f = Fuzzed(pool)
        yield f
    finally:
        if f is not None:
            f.control.close()
        pool.close()


@FUZZ_SETTINGS
@given(script=actions(list(CLIENT_FRAMES)))
@example(script=([("send", "connect")], "rst"))
@example(script=([("send", "connect"), ("send", "get-root"), ("send", "create")], "rst"))
@example(script=([("partial", "connect", 0.5)], "half-close"))
@example(script=([("length", 0xFFFFFFFF)], "close"))
def test_fuzz_client_port(fuzzed, script) -> None:
    fuzzed.play("client", script)
    fuzzed.check()


PEER_FRAME_NAMES = [
    "hello-member",
    "hello-stranger",
    "hello-self",
    "hello-bad-digest",
    "hello-bad-magic",
    "cbor-junk",
    "not-cbor",
]


@FUZZ_SETTINGS
@given(script=actions(PEER_FRAME_NAMES))
@example(script=([], "rst"))
@example(script=([("send", "hello-stranger")], "rst"))
@example(script=([("length", 0xFFFFFFFF)], "close"))
@example(script=([("send", "not-cbor")], "abandon"))
def test_fuzz_peer_port(fuzzed, script) -> None:
    fuzzed.play("peer", script)
    fuzzed.check()
