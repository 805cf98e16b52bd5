"""The blocking facade: the same operations from plain threads, many at once, with its event
loop thread on Trio (the default) and on asyncio."""

from __future__ import annotations

import threading
import uuid

import anyio
import pytest

from ccore.client import ClientClosedError, ClientState, EventType, blocking
from ccore.znodes.errors import NodeExistsError, NoNodeError, OperationTimeoutError

THREADS = 8
PER_THREAD = 50
LOOPS = ["trio", "asyncio"]


@pytest.fixture(params=LOOPS)
def loop(request) -> str:
    """The event loop the blocking client's thread runs."""
    return request.param


@pytest.fixture
def bzk(hosts, loop):
    root = f"/blocking-{uuid.uuid4().hex[:12]}"
    with blocking.connect(hosts) as admin:
        admin.create(root)
        with blocking.connect(hosts, chroot=root, backend=loop) as client:
            yield client
        admin.delete(root, recursive=True)


def test_operations(bzk):
    assert bzk.create("/a", b"1") == "/a"
    data, stat = bzk.get("/a")
    assert data == b"1" and stat.version == 0
    assert bzk.set("/a", b"2").version == 1
    assert bzk.exists("/nope") is None
    with pytest.raises(NoNodeError):
        bzk.get("/nope")
    with pytest.raises(NodeExistsError):
        bzk.create("/a")
    results = bzk.transaction().create("/a/b").set("/a", b"3").commit()
    assert results[0] == "/a/b"
    assert bzk.children("/a") == ["b"]
    bzk.delete("/a", recursive=True)
    assert bzk.state is ClientState.CONNECTED and bzk.session_id


def test_many_threads_at_once(bzk):
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for i in range(PER_THREAD):
                path = bzk.create(f"/t{t}-", str(i).encode(), sequence=True)
                assert bzk.get(path)[0] == str(i).encode()
        except BaseException as e:  # noqa: BLE001 - reported by the main thread below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors
    assert len(bzk.children("/")) == THREADS * PER_THREAD


def test_watches_from_threads(bzk):
    bzk.create("/w")
    _, _, watch = bzk.get("/w", watch=True)
    with pytest.raises(TimeoutError):
        watch.wait(timeout=0.1)
    threading.Timer(0.1, bzk.set, args=("/w", b"x")).start()
    event = watch.wait(timeout=5)
    assert (event.type, event.path) == (EventType.NODE_DATA_CHANGED, "/w")
    with bzk.watch("/w", recursive=True) as events:
        bzk.create("/w/c")
        bzk.set("/w/c", b"y")
        got = [events.get(timeout=5) for _ in range(2)]
        assert [(e.type, e.path) for e in got] == [
            (EventType.NODE_CREATED, "/w/c"),
            (EventType.NODE_DATA_CHANGED, "/w/c"),
        ]
        with pytest.raises(TimeoutError):
            events.get(timeout=0.1)


def test_request_timeout_and_close(hosts, loop):
    zk = blocking.connect(hosts, request_timeout=5, backend=loop)
    assert zk.exists("/") is not None
    with pytest.raises(OperationTimeoutError):
        zk._run(anyio.sleep, 1, timeout=0.05)
    zk.close()
    assert zk.state is ClientState.CLOSED
    with pytest.raises(ClientClosedError):
        zk.get("/")
    zk.close()  # idempotent


def test_connect_failure_is_raised_in_the_caller(hosts, loop):
    from ccore.client import NoServerError

    with pytest.raises(NoServerError):
        blocking.connect("127.0.0.1:1", connect_timeout=0.5, backend=loop)


def test_calls_racing_close_end_with_client_closed(hosts, loop):
    """Threads calling while another closes the client: each call returns or raises
    ClientClosedError, none is left waiting on a loop that ended (the window is small: this
    catches the race only sometimes, a hang always)."""
    zk = blocking.connect(hosts, backend=loop)
    outcomes: list[object] = []
    stop = threading.Event()

    def caller() -> None:
        while not stop.is_set():
            try:
                zk.exists("/")
            except ClientClosedError:
                outcomes.append("closed")
                return
            except BaseException as e:  # noqa: BLE001 - reported below
                outcomes.append(e)
                return

    threads = [threading.Thread(target=caller, daemon=True) for _ in range(4)]
    for th in threads:
        th.start()
    stop.wait(0.2)
    zk.close()
    for th in threads:
        th.join(15)
    stop.set()
    assert not any(th.is_alive() for th in threads), "a call hung after close"
    assert outcomes == ["closed"] * len(threads)
