"""Nothing done to a socket on the peer (quorum) port may stop a server or the ensemble.

Each test abuses one connection to the peer port of an ensemble member (the leader or a
follower), then checks that the member is alive, that a kazoo session opened on it before the
abuse came through untouched, and that every member serves and sees writes made through each
of them (conftest.assert_ensemble_commits).

The peer framing and hello are server/peers.py's: 4-byte big-endian length, CBOR payload, the
first frame `[HELLO_MAGIC, server id, membership digest]`.
"""

from __future__ import annotations

import random
import time

import cbor2
import pytest

from .conftest import Control, EnsemblePool, Target, assert_ensemble_commits, assert_still_serving
from .wire import PEER_HELLO_MAGIC, PEER_MAX_FRAME, Conn, length_prefix, peer_frame, peer_hello

# A hello is a few dozen bytes; ZooKeeper refuses an initial peer message over a few KiB
# (QuorumCnxManager "Unreasonable buffer length") before reading its body.
HELLO_BOUND = 64 * 1024 * 1024


@pytest.fixture(params=["leader", "follower"])
def member(request, ensemble_pool) -> Target:
    return ensemble_pool.target(request.param)


@pytest.fixture
def member_control(member):
    c = Control(member.hosts)
    try:
        yield c
    finally:
        c.close()


def peer_conn(member: Target) -> Conn:
    assert member.peer_port is not None
    return Conn(member.peer_port)


def still_fine(member: Target, control: Control, what: str) -> None:
    assert_still_serving(member, control, what)
    assert member.ensemble is not None
    assert_ensemble_commits(member.ensemble)


# -- resets ---------------------------------------------------------------------------------------


def test_peer_rst_before_any_byte(member, member_control) -> None:
    peer_conn(member).rst()
    still_fine(member, member_control, "a reset on the peer port before any byte")


def test_peer_rst_mid_length_prefix(member, member_control) -> None:
    c = peer_conn(member)
    c.send(b"\x00\x00")
    c.rst()
    still_fine(member, member_control, "a reset on the peer port in the middle of a length prefix")


def test_peer_rst_mid_hello(member, member_control, ensemble_pool) -> None:
    c = peer_conn(member)
    c.send(peer_hello(ensemble_pool.other(member), ensemble_pool.digest)[:12])
    c.rst()
    still_fine(member, member_control, "a reset on the peer port in the middle of a hello")


def test_peer_rst_after_hello_of_a_stranger(member, member_control, ensemble_pool) -> None:
    c = peer_conn(member)
    c.send(peer_hello(99, ensemble_pool.digest))
    c.rst()
    still_fine(member, member_control, "a reset on the peer port after a hello from server id 99")


# -- garbage ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_peer_random_garbage(member, member_control, seed) -> None:
    c = peer_conn(member)
    c.try_send(random.Random(seed).randbytes(4096))
    c.closed_by_server(1.0)
    c.close()
    still_fine(member, member_control, f"4 KiB of random bytes on the peer port (seed {seed})")


@pytest.mark.parametrize("seed", [0, 1])
def test_peer_garbage_frame_before_hello(member, member_control, seed) -> None:
    c = peer_conn(member)
    c.send(peer_frame(random.Random(seed).randbytes(40)))
    assert c.closed_by_server(), "the peer port kept a connection whose first frame was garbage"
    c.close()
    still_fine(member, member_control, f"a garbage first frame on the peer port (seed {seed})")


# -- impossible lengths ---------------------------------------------------------------------------

PEER_OVERSIZED = {"0xffffffff": 0xFFFFFFFF, "0x80000000": 0x80000000, "maxframe+1": PEER_MAX_FRAME + 1}


@pytest.mark.parametrize("length", list(PEER_OVERSIZED.values()), ids=list(PEER_OVERSIZED))
def test_peer_oversized_frame(member, member_control, length) -> None:
    c = peer_conn(member)
    c.send(length_prefix(length) + b"\x00" * 16)
    closed = c.closed_by_server()
    c.close()
    assert closed, f"the peer port kept a connection after a frame length of {length:#x}"
    still_fine(member, member_control, f"a peer frame length of {length:#x}")


def test_peer_oversized_hello_is_refused_before_its_body(member, member_control) -> None:
    """A first frame announcing 64 MiB: a hello is tiny, so the server must not wait for
    (and buffer) 64 MiB from a connection that has not said who it is."""
    c = peer_conn(member)
    c.send(length_prefix(HELLO_BOUND) + b"\xa0" * 16)
    closed = c.closed_by_server()
    c.close()
    assert closed, (
        f"the peer port kept waiting for the body of a {HELLO_BOUND >> 20} MiB first frame from an unidentified "
        "connection (a hello is under 100 bytes)"
    )
    still_fine(member, member_control, "an oversized first frame on the peer port")


# -- bad hellos -----------------------------------------------------------------------------------


def _bad_hellos(pool: EnsemblePool, member: Target) -> dict[str, bytes]:
    other, digest = pool.other(member), pool.digest
    return {
        "wrong-magic": peer_hello(other, digest, magic="zab-peer-0"),
        "stranger-id": peer_hello(99, digest),
        "own-id": peer_hello(member.sid, digest),
        "wrong-digest": peer_hello(other, "0" * 16),
        "id-as-string": peer_hello(str(other), digest),
        "id-unhashable": peer_hello([other], digest),
        "id-huge": peer_hello(2**70, digest),
        "id-negative": peer_hello(-1, digest),
        "not-cbor": peer_frame(b"\xff\xfe\xfd hello"),
        "cbor-map": peer_frame(cbor2.dumps({"magic": PEER_HELLO_MAGIC, "id": other})),
        "two-fields": peer_frame(cbor2.dumps([PEER_HELLO_MAGIC, other])),
        "empty": peer_frame(b""),
    }


BAD_HELLOS = [
    "wrong-magic",
    "stranger-id",
    "own-id",
    "wrong-digest",
    "id-as-string",
    "id-unhashable",
    "id-huge",
    "id-negative",
    "not-cbor",
    "cbor-map",
    "two-fields",
    "empty",
]


@pytest.mark.parametrize("kind", BAD_HELLOS)
def test_peer_bad_hello(member, member_control, ensemble_pool, kind) -> None:
    c = peer_conn(member)
    c.send(_bad_hellos(ensemble_pool, member)[kind])
    closed = c.closed_by_server()
    c.close()
    assert closed, f"the peer port kept a connection after a bad hello ({kind})"
    still_fine(member, member_control, f"a bad hello ({kind}) on the peer port")


# -- silence --------------------------------------------------------------------------------------


def test_peer_silent_connections_while_the_ensemble_works(member, member_control, ensemble_pool) -> None:
    silent = [peer_conn(member), peer_conn(member), peer_conn(member)]
    silent[1].send(b"\x00\x00")
    silent[2].send(peer_hello(ensemble_pool.other(member), ensemble_pool.digest)[:10])
    deadline = time.monotonic() + 1.5
    latencies = []
    for _ in range(200):
        if time.monotonic() > deadline:
            break
        latencies.append(member_control.round_trip())
    assert latencies and max(latencies) < 2.0, f"writes next to silent peer connections took up to {max(latencies):.2f}s"
    assert_ensemble_commits(ensemble_pool)
    for c in silent:
        c.close()
    still_fine(member, member_control, "three silent connections on the peer port")


# -- a hello that names a real member -------------------------------------------------------------


@pytest.mark.parametrize("abused", ["leader", "follower"])
def test_peer_hello_of_a_real_member_then_close(ensemble_pool, abused) -> None:
    """Someone (a stale process, a port scanner replaying bytes) opens a connection to one
    member's peer port with a valid hello naming another member, then closes it. The real
    link between the two may flap, but must come back: within seconds every member serves
    and sees every write. A session on a third member, which keeps its quorum, is untouched."""
    member = ensemble_pool.target(abused)
    pool = ensemble_pool
    leader = pool.ens.wait_leader()
    if abused == "leader":
        named = pool.other(member)  # a follower, as seen by the leader
    else:
        named = leader  # the leader, as seen by a follower
    bystander = next(s for s in pool.ens.ids if s not in (member.sid, named))
    control = Control(f"127.0.0.1:{pool.ens.client_ports[bystander]}")
    try:
        c = peer_conn(member)
        c.send(peer_hello(named, pool.digest))
        time.sleep(0.3)
        c.close()
        member.settle()
        member.assert_alive(f"after a hello naming server {named} on server {member.sid}'s peer port")
        assert_ensemble_commits(pool, within_s=15.0)
        control.round_trip()
        assert not control.interruptions(), f"the session on server {bystander} was interrupted: {control.interruptions()}"
    finally:
        control.close()
