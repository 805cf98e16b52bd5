"""The compare-and-set register workload with kazoo: worker threads read, write and
set-with-version znodes and record every operation in a `History`.

Each worker has its own `KazooClient` (its own session) and is one process of the history.
Keys rotate: every `ops_per_key` operations the workers move to fresh znodes, so each
per-key sub-history stays small enough to check quickly however long the run (Jepsen's
"independent" keys). A znode is created empty (the model's initial state: value None,
version 0) by the first worker to reach it; an operation on a znode not yet created fails
with NoNode, which certainly had no effect.

Outcomes: a read that errs is *fail* (reads change nothing); a write or cas that times out or
loses its connection is *info* (it may still happen); BadVersion answers a cas with False.
The zxid recorded is kazoo's `last_zxid` after the reply: the zxid of the newest reply header
this client has seen.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError
from kazoo.retry import KazooRetry

from .history import History

log = logging.getLogger(__name__)

ROOT = "/chaos/register"


class RegisterWorkload:
    def __init__(
        self,
        connect_string: str,
        history: History,
        *,
        seed: int,
        workers: int = 5,
        keys: int = 2,
        ops_per_key: int = 400,
        op_timeout_s: float = 2.0,
        session_timeout_s: float = 6.0,
        think_s: tuple[float, float] = (0.0, 0.01),
        max_ops: int = 1_000_000,
    ) -> None:
        self.connect_string = connect_string
        self.history = history
        self.seed = seed
        self.workers = workers
        self.keys = keys
        self.ops_per_key = ops_per_key
        self.op_timeout_s = op_timeout_s
        self.session_timeout_s = session_timeout_s
        self.think_s = think_s
        self.max_ops = max_ops
        self.stop_event = threading.Event()
        self._counter = itertools.count()
        self._threads: list[threading.Thread] = []
        self._clients: list[KazooClient] = []
        self.errors: list[str] = []

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        for p in range(self.workers):
            t = threading.Thread(target=self._worker, args=(p,), name=f"chaos-worker-{p}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout_s: float = 15.0) -> None:
        """Ask workers to finish their current op and stop; bounded."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        for zk in self._clients:
            _close_quietly(zk)
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            self.errors.append(f"workers still running at stop: {alive}")

    # -- one worker -----------------------------------------------------------------------------

    def _client(self) -> KazooClient:
        zk = KazooClient(
            hosts=self.connect_string,
            timeout=self.session_timeout_s,
            # Reconnect quickly after a restart; give up on nothing (ops have their own timeout).
            connection_retry=KazooRetry(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5),
        )
        zk.start(timeout=30)
        self._clients.append(zk)
        return zk

    def _worker(self, p: int) -> None:
        rng = random.Random(f"{self.seed}/worker/{p}")
        try:
            zk = self._client()
        except Exception as exc:  # reported; the run goes on with the other workers
            self.errors.append(f"worker {p} could not connect: {exc!r}")
            return
        created: set[str] = set()
        n = 0
        while not self.stop_event.is_set():
            index = next(self._counter)
            if index >= self.max_ops:
                return
            key = f"{ROOT}/g{index // self.ops_per_key}-k{rng.randrange(self.keys)}"
            if key not in created:
                self._ensure(zk, key)
                created.add(key)
            n += 1
            self._one_op(zk, p, key, rng, f"p{p}-{n}")
            low, high = self.think_s
            if high > 0:
                self.stop_event.wait(rng.uniform(low, high))

    def _ensure(self, zk: KazooClient, key: str) -> None:
        try:
            zk.create_async(key, b"", makepath=True).get(timeout=self.op_timeout_s)
        except NodeExistsError:
            pass
        except Exception as exc:  # the ops on it fail with NoNode until someone creates it
            log.debug("create %s: %r", key, exc)

    def _one_op(self, zk: KazooClient, p: int, key: str, rng: random.Random, fresh_value: str) -> None:
        roll = rng.random()
        if roll < 0.5:
            op = self.history.invoke(p, "read", None, key=key)
            try:
                data, stat = zk.get_async(key).get(timeout=self.op_timeout_s)
            except Exception as exc:
                self.history.fail(op, _name(exc))
                return
            self.history.ok(op, [_decode(data), stat.version], zxid=zk.last_zxid or None)
            return
        if roll < 0.75:
            op = self.history.invoke(p, "write", fresh_value, key=key)
            try:
                stat = zk.set_async(key, fresh_value.encode(), -1).get(timeout=self.op_timeout_s)
            except NoNodeError as exc:
                self.history.fail(op, _name(exc))
                return
            except Exception as exc:
                self.history.info(op, _name(exc))
                return
            self.history.ok(op, stat.version, zxid=zk.last_zxid or None)
            return
        # cas: usually from a version just read, sometimes from a stale guess
        expected = self._guess_version(zk, key, rng)
        op = self.history.invoke(p, "cas", [expected, fresh_value], key=key)
        try:
            zk.set_async(key, fresh_value.encode(), expected).get(timeout=self.op_timeout_s)
        except BadVersionError:
            self.history.ok(op, False, zxid=zk.last_zxid or None)
            return
        except NoNodeError as exc:
            self.history.fail(op, _name(exc))
            return
        except Exception as exc:
            self.history.info(op, _name(exc))
            return
        self.history.ok(op, True, zxid=zk.last_zxid or None)

    def _guess_version(self, zk: KazooClient, key: str, rng: random.Random) -> int:
        """A version to cas from: what an unrecorded peek says (or a near guess)."""
        try:
            _data, stat = zk.get_async(key).get(timeout=self.op_timeout_s)
            version = stat.version
        except Exception:
            version = rng.randrange(0, 5)
        return version if rng.random() < 0.8 else max(0, version - 1)


def _decode(data: bytes | None) -> Any:
    return data.decode("utf-8", "replace") if data else None


def _name(exc: BaseException) -> str:
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")


def _close_quietly(zk: KazooClient, timeout_s: float = 5.0) -> None:
    """Stop a client in a helper thread: saying goodbye to a dead or paused server must not
    hold up the end of the run."""

    def close() -> None:
        try:
            zk.stop()
            zk.close()
        except Exception as exc:  # a client of a dead server may fail to say goodbye
            log.debug("closing a kazoo client: %r", exc)

    t = threading.Thread(target=close, name="chaos-close-client", daemon=True)
    t.start()
    t.join(timeout_s)
