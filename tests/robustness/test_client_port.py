"""Nothing a client does to its socket may stop a server (issue 11): the client port.

Each test abuses one connection to a real server process (standalone, or the follower or
leader of a 3-server ensemble: `target` is parametrized), then checks that the process is
alive, that a kazoo session opened before the abuse still works on the same connection and
session, and that a new session can connect (conftest.assert_still_serving).
"""

from __future__ import annotations

import random
import threading
import time
import uuid

import pytest

from .conftest import ROOT, Control, Target, assert_still_serving, new_session_works
from .wire import (
    Conn,
    close_session,
    connect_request,
    create,
    exists,
    frame,
    get_data,
    length_prefix,
    parse_connect_response,
)

BIG_NODE = f"{ROOT}/big"
BIG_DATA = bytes(range(256)) * 1024  # 256 KiB: a few dozen replies fill every socket buffer


def handshaken(target: Target) -> Conn:
    return Conn(target.client_port).handshake()


def ensure_big_node(control: Control) -> None:
    if control.call(control.zk.exists_async(BIG_NODE)) is None:
        control.call(control.zk.create_async(BIG_NODE, BIG_DATA))


# -- TCP reset (SO_LINGER on, 0 s; close) at every point of a connection's life ---------------


def test_rst_before_any_byte(target, control) -> None:
    Conn(target.client_port).rst()
    assert_still_serving(target, control, "a reset before any byte")


def test_rst_mid_length_prefix(target, control) -> None:
    c = Conn(target.client_port)
    c.send(connect_request()[:2])
    c.rst()
    assert_still_serving(target, control, "a reset in the middle of the length prefix")


def test_rst_mid_connect_request(target, control) -> None:
    c = Conn(target.client_port)
    c.send(connect_request()[:20])
    c.rst()
    assert_still_serving(target, control, "a reset in the middle of the ConnectRequest")


def test_rst_right_after_connect_request(target, control) -> None:
    c = Conn(target.client_port)
    c.send(connect_request())
    c.rst()
    assert_still_serving(target, control, "a reset right after the ConnectRequest")


def test_rst_after_connect_response(target, control) -> None:
    handshaken(target).rst()
    assert_still_serving(target, control, "a reset after the ConnectResponse")


def test_rst_mid_request(target, control) -> None:
    c = handshaken(target)
    c.send(get_data(1, control.marker)[:7])
    c.rst()
    assert_still_serving(target, control, "a reset in the middle of a request")


def test_rst_with_pipelined_reads_unread(target, control) -> None:
    """~30 MB of replies queued and unread: the server is blocked writing when the reset comes."""
    ensure_big_node(control)
    c = handshaken(target)
    c.send(b"".join(get_data(xid, BIG_NODE) for xid in range(1, 121)))
    time.sleep(0.2)
    c.rst()
    assert_still_serving(target, control, "a reset with 120 pipelined reads' replies unread")


def test_rst_with_pipelined_writes_in_flight(target, control) -> None:
    c = handshaken(target)
    prefix = f"{ROOT}/pipe-{uuid.uuid4().hex[:8]}-"
    c.send(b"".join(create(xid, prefix, b"w" * 100, flags=2) for xid in range(1, 201)))
    c.rst()
    assert_still_serving(target, control, "a reset with 200 pipelined creates in flight")


def test_rst_right_after_close_session(target, control) -> None:
    c = handshaken(target)
    c.send(close_session(1))
    c.rst()
    assert_still_serving(target, control, "a reset right after a closeSession")


def test_rst_with_a_watch_that_then_fires(target, control) -> None:
    """The server later delivers a watch event to the connection that was reset."""
    path = f"{ROOT}/watched-{uuid.uuid4().hex[:8]}"
    c = handshaken(target)
    c.send(exists(1, path, watch=True))
    err, _body = c.recv_reply(1)
    assert err == -101, f"exists on a missing node answered {err}"  # NONODE
    c.rst()
    target.settle()
    target.assert_alive("after a reset of a connection holding a watch")
    control.call(control.zk.create_async(path, b"fire"))
    assert_still_serving(target, control, "a reset of a connection holding a watch, then the watch firing")


def test_rst_mid_four_letter_word(target, control) -> None:
    c = Conn(target.client_port)
    c.send(b"sr")
    c.rst()
    assert_still_serving(target, control, "a reset in the middle of a four-letter word")


@pytest.mark.parametrize("word", ["ruok", "srvr", "mntr", "cons", "dump"])
def test_rst_after_four_letter_word_before_the_answer_is_read(target, control, word) -> None:
    c = Conn(target.client_port)
    c.send(word.encode())
    c.rst()
    assert_still_serving(target, control, f"a reset right after '{word}', its answer unread")


# -- half-close (shutdown SHUT_WR) ------------------------------------------------------------


def test_half_close_after_partial_frame(target, control) -> None:
    c = Conn(target.client_port)
    c.send(connect_request()[:10])
    c.half_close()
    assert c.closed_by_server(), "the server kept a half-closed connection (partial ConnectRequest) open"
    c.close()
    assert_still_serving(target, control, "a half-close after a partial frame")


def test_half_close_after_full_request(target, control) -> None:
    c = handshaken(target)
    c.send(get_data(1, control.marker) + create(2, f"{ROOT}/half-", b"x", flags=2))
    c.half_close()
    assert c.closed_by_server(), "the server kept a half-closed connection (after two requests) open"
    c.close()
    assert_still_serving(target, control, "a half-close after full requests")


def test_half_close_mid_four_letter_word(target, control) -> None:
    c = Conn(target.client_port)
    c.send(b"ru")
    c.half_close()
    assert c.closed_by_server(), "the server kept a half-closed connection ('ru') open"
    c.close()
    assert_still_serving(target, control, "a half-close in the middle of a four-letter word")


def test_half_close_after_four_letter_word(target, control) -> None:
    c = Conn(target.client_port)
    c.send(b"ruok")
    c.half_close()
    answer, closed = c.read_available(5.0)
    assert answer == b"imok" and closed, f"ruok then half-close: got {answer!r}, closed={closed}"
    c.close()
    assert_still_serving(target, control, "a half-close after 'ruok'")


# -- silence and slowness -----------------------------------------------------------------------


def test_silent_connections_while_other_sessions_work(target, control) -> None:
    silent = [Conn(target.client_port), Conn(target.client_port), handshaken(target)]
    silent[1].send(connect_request()[:2])
    deadline = time.monotonic() + 1.5
    latencies = []
    for _ in range(200):
        if time.monotonic() > deadline:
            break
        latencies.append(control.round_trip())
    assert latencies and max(latencies) < 2.0, f"round trips next to silent connections took up to {max(latencies):.2f}s"
    new_session_works(target.client_port, control)
    for c in silent:
        c.close()
    assert_still_serving(target, control, "three silent connections held open")


def test_slowloris_handshake(target, control) -> None:
    """A valid ConnectRequest one byte per 50 ms (2.5 s): other sessions are served meanwhile,
    and the slow client gets its session in the end."""
    c = Conn(target.client_port)
    errors: list[BaseException] = []

    def trickle() -> None:
        try:
            c.send_slowly(connect_request(), interval_s=0.05, max_s=20.0)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    latencies = []
    deadline = time.monotonic() + 20.0
    while thread.is_alive() and time.monotonic() < deadline and len(latencies) < 500:
        latencies.append(control.round_trip())
        time.sleep(0.05)
    thread.join(timeout=20.0)
    assert not thread.is_alive(), "the slow sender did not finish"
    assert not errors, f"the server cut the slow but valid handshake: {errors[0]!r}"
    assert latencies and max(latencies) < 1.0, f"round trips during the slowloris took up to {max(latencies):.2f}s"
    timeout_ms, session_id = parse_connect_response(c.recv_frame())
    assert timeout_ms > 0 and session_id != 0, "the slow handshake got no session"
    c.send(close_session(1))
    c.recv_reply(1)
    c.close()
    assert_still_serving(target, control, "a slowloris handshake")


# -- garbage ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_garbage(target, control, seed) -> None:
    data = random.Random(seed).randbytes(4096)
    c = Conn(target.client_port)
    c.try_send(data)
    c.closed_by_server(1.0)  # most garbage starts with an impossible length: closed at once
    c.close()
    assert_still_serving(target, control, f"4 KiB of random bytes (seed {seed})")


@pytest.mark.parametrize("seed", [0, 1])
def test_garbage_connect_request_with_valid_length(target, control, seed) -> None:
    c = Conn(target.client_port)
    c.send(frame(random.Random(seed).randbytes(45)))
    assert c.closed_by_server(), "the server kept a connection whose ConnectRequest was garbage"
    c.close()
    assert_still_serving(target, control, f"a garbage ConnectRequest body (seed {seed})")


@pytest.mark.parametrize("seed", [0, 1])
def test_garbage_request_after_handshake(target, control, seed) -> None:
    c = handshaken(target)
    c.send(frame(random.Random(seed).randbytes(64)))
    c.closed_by_server(1.0)  # an error reply or a close are both fine; a dead server is not
    c.close()
    assert_still_serving(target, control, f"a garbage request body after the handshake (seed {seed})")


# -- impossible lengths -------------------------------------------------------------------------

OVERSIZED = {
    "0x7fffffff": lambda limit: 0x7FFFFFFF,
    "0xffffffff": lambda limit: 0xFFFFFFFF,
    "maxbuffer+1": lambda limit: limit + 1,
}
NEGATIVE = {"-1": -1, "-5": -5, "-2**31": -(2**31)}


def _oversized_then_closed(target: Target, length: int, after_handshake: bool) -> None:
    c = handshaken(target) if after_handshake else Conn(target.client_port)
    c.send(length_prefix(length) + b"\x00" * 16)
    closed = c.closed_by_server()
    c.close()
    assert closed, (
        f"the server kept a connection open after a frame length of {length & 0xFFFFFFFF:#x} (jute.maxbuffer {target.max_buffer:#x})"
    )


@pytest.mark.parametrize("after_handshake", [False, True], ids=["before-handshake", "after-handshake"])
@pytest.mark.parametrize("size", list(OVERSIZED), ids=list(OVERSIZED))
def test_frame_over_jute_maxbuffer(target, control, size, after_handshake) -> None:
    length = OVERSIZED[size](target.max_buffer)
    _oversized_then_closed(target, length, after_handshake)
    assert_still_serving(target, control, f"a frame length of {length:#x}")


@pytest.mark.parametrize("after_handshake", [False, True], ids=["before-handshake", "after-handshake"])
@pytest.mark.parametrize("value", list(NEGATIVE.values()), ids=list(NEGATIVE))
def test_negative_frame_length(target, control, value, after_handshake) -> None:
    _oversized_then_closed(target, value, after_handshake)
    assert_still_serving(target, control, f"a negative frame length {value}")


@pytest.mark.parametrize("after_handshake", [False, True], ids=["before-handshake", "after-handshake"])
def test_zero_length_frame(target, control, after_handshake) -> None:
    c = handshaken(target) if after_handshake else Conn(target.client_port)
    c.send(length_prefix(0))
    if not after_handshake:
        assert c.closed_by_server(), "the server kept a connection whose ConnectRequest was empty"
    else:
        c.closed_by_server(1.0)
    c.close()
    assert_still_serving(target, control, "a zero-length frame")
