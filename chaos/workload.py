"""The compare-and-set register workload: worker threads read, write and set-with-version
znodes and record every operation in a `History`.

Each worker has its own client and session (kazoo or ours, `chaos.clients`) and is one
process of the history, named ``kazoo-0``, ``native-1``... Keys rotate: every
`ops_per_key` operations the workers move to fresh znodes, so each per-key sub-history stays
small enough to check quickly however long the run (Jepsen's "independent" keys). A znode is
created empty (the model's initial state: value None, version 0) by the first worker to
reach it; an operation on a znode not yet created fails with NoNode, which had no effect.

With ``sync_reads`` every read is `sync` then `getData`, recorded as one operation: this is
the variant that must be linearizable (a plain read is served from the local replica and may
be stale, as in ZooKeeper; see chaos.checks.check_reads for what plain reads promise).

Outcomes: a read that errs is *fail* (reads change nothing); a write or cas that times out or
loses its connection is *info* (it may still happen); BadVersion answers a cas with False.
A read's output is ``[value, version, mzxid]``; its zxid is the reply header's (kazoo only).
A write's zxid is its own (the mzxid of the Stat it returns).
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Sequence

from . import clients
from .clients import Adapter, Conflict, Exists, Missing, error_name
from .history import History

log = logging.getLogger(__name__)

ROOT = "/chaos/register"
MAX_OPS = 10_000_000


class RegisterWorkload:
    def __init__(
        self,
        connect_string: str,
        history: History,
        *,
        seed: int,
        kinds: Sequence[str] = ("kazoo",),
        workers: int = 5,
        keys: int = 2,
        ops_per_key: int = 400,
        op_timeout_s: float = 2.0,
        session_timeout_s: float = 6.0,
        think_s: tuple[float, float] = (0.0, 0.01),
        sync_reads: bool = False,
        root: str = ROOT,
        max_ops: int = MAX_OPS,
    ) -> None:
        self.connect_string = connect_string
        self.history = history
        self.seed = seed
        self.kinds = list(kinds)
        self.workers = workers
        self.keys = keys
        self.ops_per_key = ops_per_key
        self.op_timeout_s = op_timeout_s
        self.session_timeout_s = session_timeout_s
        self.think_s = think_s
        self.sync_reads = sync_reads
        self.root = root
        self.max_ops = max_ops
        self.stop_event = threading.Event()
        self._counter = itertools.count()
        self._threads: list[threading.Thread] = []
        self._clients: list[Adapter] = []
        self.keys_used: set[str] = set()
        self.errors: list[str] = []

    def process(self, p: int) -> str:
        return f"{self.kinds[p % len(self.kinds)]}-{p}"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        for p in range(self.workers):
            t = threading.Thread(target=self._worker, args=(p,), name=f"chaos-register-{p}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout_s: float = 15.0) -> None:
        """Ask workers to finish their current op and stop; bounded."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        for zk in self._clients:
            zk.close()
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            self.errors.append(f"register workers still running at stop: {alive}")

    def final_reads(self, timeout_s: float = 60.0) -> None:
        """After `stop` (and the heal): `sync` + read of every key used, recorded as the
        process ``final``, so every acknowledged write is checked against what survived."""
        deadline = time.monotonic() + timeout_s
        zk = clients.connect("kazoo", self.connect_string, session_timeout_s=10.0, op_timeout_s=self.op_timeout_s)
        try:
            for key in sorted(self.keys_used):
                for _attempt in range(3):
                    if time.monotonic() > deadline:
                        self.errors.append(f"final reads: out of time after {timeout_s:g}s")
                        return
                    op = self.history.invoke("final", "read", None, key=key)
                    try:
                        zk.sync(key)
                        r = zk.get(key)
                    except Missing as exc:  # created by no one: nothing to check
                        self.history.fail(op, error_name(exc))
                        break
                    except Exception as exc:
                        self.history.fail(op, error_name(exc))
                        continue
                    self.history.ok(op, [r.value, r.version, r.mzxid], zxid=r.zxid)
                    break
        finally:
            zk.close()

    # -- one worker -----------------------------------------------------------------------------

    def _worker(self, p: int) -> None:
        rng = random.Random(f"{self.seed}/worker/{p}")
        name = self.process(p)
        try:
            zk = clients.connect(
                name.split("-")[0], self.connect_string, session_timeout_s=self.session_timeout_s, op_timeout_s=self.op_timeout_s
            )
        except Exception as exc:  # reported; the run goes on with the other workers
            self.errors.append(f"register worker {name} could not connect: {exc!r}")
            return
        self._clients.append(zk)
        created: set[str] = set()
        n = 0
        while not self.stop_event.is_set():
            index = next(self._counter)
            if index >= self.max_ops:
                return
            key = f"{self.root}/g{index // self.ops_per_key}-k{rng.randrange(self.keys)}"
            if key not in created:
                self.keys_used.add(key)
                self._ensure(zk, key)
                created.add(key)
            n += 1
            try:
                self._one_op(zk, name, key, rng, f"{name}-{n}")
            except Exception as exc:  # a bug in the workload: say so, keep the others going
                log.exception("register worker %s", name)
                self.errors.append(f"register worker {name} stopped: {exc!r}")
                return
            low, high = self.think_s
            if high > 0:
                self.stop_event.wait(rng.uniform(low, high))

    def _ensure(self, zk: Adapter, key: str) -> None:
        try:
            zk.create(key, makepath=True)
        except Exists:
            pass
        except Exception as exc:  # the ops on it fail with NoNode until someone creates it
            log.debug("create %s: %r", key, exc)

    def _one_op(self, zk: Adapter, p: str, key: str, rng: random.Random, fresh_value: str) -> None:
        roll = rng.random()
        if roll < 0.5:
            op = self.history.invoke(p, "read", None, key=key)
            try:
                if self.sync_reads:
                    zk.sync(key)
                r = zk.get(key)
            except Exception as exc:
                self.history.fail(op, error_name(exc))
                return
            self.history.ok(op, [r.value, r.version, r.mzxid], zxid=r.zxid)
            return
        if roll < 0.75:
            op = self.history.invoke(p, "write", fresh_value, key=key)
            try:
                w = zk.set(key, fresh_value, -1)
            except Missing as exc:
                self.history.fail(op, error_name(exc))
                return
            except Exception as exc:
                self.history.info(op, error_name(exc))
                return
            self.history.ok(op, w.version, zxid=w.zxid)
            return
        # cas: usually from a version just read, sometimes from a stale guess
        expected = self._guess_version(zk, key, rng)
        op = self.history.invoke(p, "cas", [expected, fresh_value], key=key)
        try:
            w = zk.set(key, fresh_value, expected)
        except Conflict:
            self.history.ok(op, False)
            return
        except Missing as exc:
            self.history.fail(op, error_name(exc))
            return
        except Exception as exc:
            self.history.info(op, error_name(exc))
            return
        self.history.ok(op, True, zxid=w.zxid)

    def _guess_version(self, zk: Adapter, key: str, rng: random.Random) -> int:
        """A version to cas from: what an unrecorded peek says (or a near guess)."""
        try:
            version = zk.get(key).version
        except Exception:
            version = rng.randrange(0, 5)
        return version if rng.random() < 0.8 else max(0, version - 1)
