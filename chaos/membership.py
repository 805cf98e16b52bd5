"""The membership nemesis: a scripted cycle of reconfigurations while the workloads run.

    grow           two servers outside the configuration (spares) join: 3 -> 5 voters
    remove-leader  the leader is removed; it steps down once the change commits, the new
                   voters elect a leader, and it keeps serving as a non-voting follower
    add-back       the removed leader joins again (it is synced: it kept following)
    shrink         the servers the last grow added leave: 5 -> 3
    replace        a voter is killed (SIGKILL) and replaced by a spare with another id in one
                   change (leaving the dead one, joining the spare); once that commits, the
                   dead server's data dir is wiped (a replaced machine) and it is a spare
    grow-split     a grow asked for while a majority of the old voters (the leader's
                   followers) is cut off (blackholed: the leader notices only when its
                   sync limit runs out) from the leader and the joiners, which are a
                   majority of the new configuration: two quorums of different
                   configurations. Only a joint quorum keeps the change from committing
                   (and the two sides from both taking writes) until the cut heals; then
                   the grow is finished. Without joint quorums this splits the brain.
    shrink         again, back to the first size

with a random pause before each change. A change goes through a kazoo client authenticated
as the super user, straight to the client ports (an operator's console, not a workload: no
client-link faults). Each change reads /zookeeper/config (`sync` first), stops if the
membership already is what it wants (an earlier attempt whose reply was lost may have made
it), and otherwise asks for it *from that version* (`from_config`), so a retry never applies
a change twice; NewConfigNoQuorum, ReconfigInProgress, BadVersion, connection loss and
timeouts are retried until `change_timeout_s`. Each change is logged as a start and a stop
`Applied` record (nemesis "membership", detail["change"] its kind, detail["outcome"]
done / gave up / skipped), so it is a fault window of the report like the scheduled ones.

It runs in a thread of its own beside the scheduled nemeses (kill, partition...), which act
on the servers in play: spares not started and replaced servers are *parked* (`park`), and
neither the schedule, the revival of crashed servers, nor the final heal starts them. A
joiner is started with a zoo.cfg that lists the current members plus itself, as ZooKeeper's
documentation says to start one. A server is killed for replacement only after it is parked;
if the replacement cannot be made in time, it is started again with its data (it is still a
voter): its data dir is wiped only once it is out of the committed configuration.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from kazoo.client import KazooClient
from kazoo.exceptions import BadArgumentsError, KazooException, NoAuthError, ReconfigDisabledError, UnimplementedError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

from ccore.znodes.dynconfig import DynamicConfig

from .data_loss import wipe_data_dir
from .nemesis import Applied, LinkFaults, partition_links
from .proxy import link_label

log = logging.getLogger(__name__)

NAME = "membership"
CHANGES = ("grow", "remove-leader", "add-back", "shrink", "replace", "grow-split", "shrink")
KINDS = tuple(dict.fromkeys(CHANGES))
SPARES = 2  # servers beyond the first configuration: a 3-server ensemble grows to 5
# What reconfig needs in every zoo.cfg: kazoo's test harness gives ZooKeeper this digest of
# super:test (DigestAuthenticationProvider.generateDigest("super:test")).
SUPER_AUTH = ("digest", "super:test")
RECONFIG_CONFIG = ("reconfigEnabled=true", "DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
CONFIG_PATH = "/zookeeper/config"
# Refusals a retry cannot cure: the change asked for is wrong, or reconfig is not allowed.
FATAL = (BadArgumentsError, NoAuthError, ReconfigDisabledError, UnimplementedError)
MAX_CHANGES = 10_000
RETRY_PAUSE_S = (0.2, 0.6)
SPLIT_S = (2.0, 4.0)  # how long grow-split keeps the old majority cut off


class Spares(Protocol):
    """What the cycle needs of the ensemble (chaos.runner.FaultTarget over a LocalEnsemble)."""

    @property
    def ids(self) -> Sequence[int]: ...  # every server, spares included
    @property
    def initial_members(self) -> Sequence[int]: ...
    @property
    def client_ports(self) -> dict[int, int]: ...
    @property
    def proxies(self) -> LinkFaults | None: ...

    def server_line(self, sid: int, role: str | None = None) -> str: ...
    def write_config(self, sid: int, members: Sequence[int]) -> None: ...
    def data_dir(self, sid: int) -> Path: ...
    def pid(self, sid: int) -> int | None: ...
    def is_paused(self, sid: int) -> bool: ...
    def mode(self, sid: int) -> str | None: ...  # srvr's Mode, None when down or not serving
    def leader(self) -> int | None: ...
    def kill(self, sid: int) -> None: ...
    def launch(self, sid: int) -> None: ...  # start a parked server (its process only)
    def wait_serving(self, sids: list[int], timeout_s: float) -> None: ...
    def park(self, sid: int) -> None: ...
    def unpark(self, sid: int) -> None: ...


class GaveUp(Exception):
    """A change could not be made within its time."""


class MembershipCycle:
    """Plays CHANGES over and over until `stop_event` (call `run` in a thread)."""

    def __init__(
        self,
        ens: Spares,
        rng: random.Random,
        *,
        pause_s: tuple[float, float] = (2.0, 5.0),
        change_timeout_s: float = 30.0,
        op_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        t0: float | None = None,
        on_event: Callable[[Applied], None] | None = None,
    ) -> None:
        self.ens = ens
        self.rng = rng
        self.pause_s = pause_s
        self.change_timeout_s = change_timeout_s
        self.op_timeout_s = op_timeout_s
        self._clock = clock
        self._t0 = clock() if t0 is None else t0
        self._on_event = on_event or (lambda applied: None)
        self.stop_event = threading.Event()
        self.log: list[Applied] = []
        self._grown: list[int] = []  # who the last grow added (shrink removes them)
        self._removed_leader: int | None = None  # who the last remove-leader removed
        self._zk: KazooClient | None = None

    # -- the cycle ------------------------------------------------------------------------

    def run(self) -> list[Applied]:
        try:
            for index in range(MAX_CHANGES):
                if self.stop_event.wait(self.rng.uniform(*self.pause_s)):
                    break
                kind = CHANGES[index % len(CHANGES)]
                self._act(index, kind)
        finally:
            self._close()
        return self.log

    def _act(self, index: int, kind: str) -> None:
        started = self._clock()
        self._emit(Applied(round(started - self._t0, 3), index, NAME, "start", {"change": kind}))
        detail: dict[str, Any] = {"change": kind}
        error = None
        try:
            detail.update(getattr(self, "_" + kind.replace("-", "_"))())
        except GaveUp as exc:
            detail["outcome"] = f"gave up: {exc}"
        except Exception as exc:  # recorded in the report; the cycle goes on
            log.exception("membership change %s failed", kind)
            detail["outcome"] = "error"
            error = f"{type(exc).__name__}: {exc}"
        detail["took_s"] = round(self._clock() - started, 3)
        self._emit(Applied(round(self._clock() - self._t0, 3), index, NAME, "stop", detail, error))

    def _emit(self, applied: Applied) -> None:
        self.log.append(applied)
        log.info("membership %s %s %s", applied.action, applied.detail, applied.error or "")
        self._on_event(applied)

    # -- the changes ----------------------------------------------------------------------

    def _grow(self) -> dict[str, Any]:
        current = self._config()
        joiners = self._outsiders(current, SPARES)
        if not joiners:
            return {"outcome": "skipped: no server outside the configuration", "voters_before": sorted(current.voters)}
        for sid in joiners:
            self._bring_up(sid, current)
        self._grown = joiners
        return self._change(current, joining=joiners, leaving=[])

    def _grow_split(self) -> dict[str, Any]:
        current = self._config()
        joiners = self._outsiders(current, SPARES)
        for sid in joiners:  # first: the leader at the cut must be the one asked
            self._bring_up(sid, current)
        leader = self.ens.leader()
        old, new = current.voters, current.voters | set(joiners)
        followers = sorted(old - {leader}) if leader is not None else []
        cut_off = set(self.rng.sample(followers, len(old) // 2 + 1)) if len(followers) > len(old) // 2 else set()
        proxies = self.ens.proxies
        if not joiners or not cut_off or proxies is None or len(new - cut_off) <= len(new) // 2:
            why = f"no split of old {sorted(old)} and new {sorted(new)} into two quorums (leader {leader}, proxies {proxies is not None})"
            return {**self._grow(), "split": why}
        self._grown = joiners
        links = partition_links(sorted(self.ens.ids), [cut_off, set(self.ens.ids) - cut_off])
        split_s = round(self.rng.uniform(*SPLIT_S), 3)
        # Asked of the leader itself: a cut-off follower could not even forward it.
        assert leader is not None
        try:
            to_leader = self._connect([leader])
        except (KazooException, KazooTimeoutError) as exc:
            return {**self._change(current, joining=joiners, leaving=[]), "split": f"leader {leader} unreachable: {exc!r}"}
        healed_at = self._clock() + split_s
        try:
            for link in links:  # bytes dropped, connections kept: nobody is told at once
                proxies.blackhole(link)
            try:
                self._reconfig(joiners, [], current.version or 0, to_leader)
                during = "committed"  # two quorums decided (unless the cut came too late)
            except (KazooException, KazooTimeoutError) as exc:
                during = type(exc).__name__
            self.stop_event.wait(max(0.0, healed_at - self._clock()))
        finally:
            for link in links:
                proxies.heal(link)
            self._close_client(to_leader)
        split = {"cut_off": sorted(cut_off), "leader_at_cut": leader, "split_s": split_s, "asked_during_split": during}
        log.info("grow-split: healed %s", [link_label(x) for x in links])
        return {**self._change(self._config(), joining=joiners, leaving=[]), **split, "voters_before": sorted(old)}

    def _remove_leader(self) -> dict[str, Any]:
        current = self._config()
        leader = self.ens.leader()
        if leader is None or leader not in current.voters or len(current.voters) < 3:
            return {"outcome": f"skipped: leader {leader}, voters {sorted(current.voters)}"}
        done = self._change(current, joining=[], leaving=[leader])
        self._removed_leader = leader
        after = self._wait_leader(exclude=leader)
        return {**done, "leader_before": leader, "leader_after": after}

    def _add_back(self) -> dict[str, Any]:
        current = self._config()
        back = self._removed_leader
        if back is not None and back not in current.ids:
            self._wait_running(back)  # a scheduled fault may have it down for a few seconds
        if back is None or back in current.ids or self.ens.pid(back) is None:
            found = self._outsiders(current, 1, started_only=True)
            if not found:
                return {"outcome": "skipped: no running server outside the configuration"}
            back = found[0]
        self._bring_up(back, current)
        return {**self._change(current, joining=[back], leaving=[]), "added": back}

    def _shrink(self) -> dict[str, Any]:
        current = self._config()
        extra = len(current.voters) - len(self.ens.initial_members)
        if extra <= 0:
            return {"outcome": f"skipped: voters {sorted(current.voters)}", "voters_before": sorted(current.voters)}
        leader = self.ens.leader()
        grown = [s for s in self._grown if s in current.voters]
        others = sorted(current.voters - set(grown) - {leader})
        self.rng.shuffle(others)
        leaving = (grown + others)[:extra]
        return self._change(current, joining=[], leaving=leaving)

    def _replace(self) -> dict[str, Any]:
        current = self._config()
        leader = self.ens.leader()
        # A serving follower: not one a fault has down or paused, or that is starting again.
        candidates = sorted(s for s in current.voters if s != leader and self.ens.mode(s) == "follower")
        spares = self._outsiders(current, 1)
        if not candidates or not spares:
            return {"outcome": f"skipped: voters {sorted(current.voters)} (leader {leader}), spares {spares}"}
        dead, spare = self.rng.choice(candidates), spares[0]
        self._bring_up(spare, current)
        self.ens.park(dead)  # nothing starts it again from now on
        self.ens.kill(dead)
        try:
            done = self._change(current, joining=[spare], leaving=[dead])
        except Exception:
            # Still a voter: it must come back with its data.
            self.ens.unpark(dead)
            self.ens.launch(dead)
            raise
        wiped = wipe_data_dir(self.ens.data_dir(dead))
        return {**done, "killed": dead, "joined": spare, "wiped": len(wiped["wiped"])}

    # -- helpers --------------------------------------------------------------------------

    def _outsiders(self, current: DynamicConfig, n: int, *, started_only: bool = False) -> list[int]:
        """Up to `n` servers outside `current`: running ones first (they follow, synced)."""
        outside = [s for s in self.ens.ids if s not in current.ids]
        running = [s for s in outside if self.ens.pid(s) is not None and not self.ens.is_paused(s)]
        down = [] if started_only else [s for s in outside if s not in running]
        self.rng.shuffle(running)
        self.rng.shuffle(down)
        return (running + down)[:n]

    def _bring_up(self, sid: int, current: DynamicConfig) -> None:
        """Start `sid` as a joiner of `current` if it is not running (wiped: a fresh machine),
        and wait until it serves (as a non-voting follower, synced); bounded."""
        if self.ens.pid(sid) is None:
            wipe_data_dir(self.ens.data_dir(sid))
            self.ens.write_config(sid, sorted(current.ids))
            self.ens.launch(sid)
            self.ens.unpark(sid)
        try:
            self.ens.wait_serving([sid], self.change_timeout_s)
        except RuntimeError as exc:  # the change may still go through with the others synced
            log.warning("joiner %d is not serving: %s", sid, exc)

    def _change(self, current: DynamicConfig, *, joining: list[int], leaving: list[int]) -> dict[str, Any]:
        """Make the change from `current`, retried (see the module docstring); GaveUp if the
        membership is not made within change_timeout_s."""
        deadline = self._clock() + self.change_timeout_s
        want_in, want_out = set(joining), set(leaving)

        def reached(config: DynamicConfig) -> bool:
            return want_in <= config.voters and not (want_out & config.ids)

        errors: dict[str, int] = {}
        tries = 0
        before = current
        while True:
            if reached(current):
                return {
                    "outcome": "done",
                    "voters_before": sorted(before.voters),
                    "voters_after": sorted(current.voters),
                    "version": f"{current.version or 0:x}",
                    "tries": tries,
                    "retried_on": errors,
                }
            if self._clock() > deadline or self.stop_event.is_set():
                raise GaveUp(f"after {tries} tries in {self.change_timeout_s:g}s ({errors}); config {current.version or 0:x}")
            tries += 1
            try:
                self._reconfig(joining, leaving, current.version or 0)
            except FATAL:
                raise
            except (KazooException, KazooTimeoutError) as exc:
                name = type(exc).__name__
                errors[name] = errors.get(name, 0) + 1
                self.stop_event.wait(self.rng.uniform(*RETRY_PAUSE_S))
            current = self._config_until(deadline, errors)

    def _reconfig(self, joining: list[int], leaving: list[int], version: int, zk: KazooClient | None = None) -> None:
        zk = zk or self._client()
        lines = ",".join(self.ens.server_line(s) for s in joining) or None
        gone = ",".join(str(s) for s in leaving) or None
        log.info("reconfig from %x: joining %s, leaving %s", version, joining, leaving)
        zk.reconfig_async(lines, gone, None, version).get(timeout=self.op_timeout_s)

    def _config(self) -> DynamicConfig:
        return self._config_until(self._clock() + self.change_timeout_s, {})

    def _config_until(self, deadline: float, errors: dict[str, int]) -> DynamicConfig:
        """The newest /zookeeper/config (sync, then read), retried until `deadline`."""
        while True:
            try:
                zk = self._client()
                zk.sync_async(CONFIG_PATH).get(timeout=self.op_timeout_s)
                data, _stat = zk.get_async(CONFIG_PATH).get(timeout=self.op_timeout_s)
                return DynamicConfig.parse(data.decode("utf-8"))
            except (KazooException, KazooTimeoutError) as exc:
                name = f"read: {type(exc).__name__}"
                errors[name] = errors.get(name, 0) + 1
                if self._clock() > deadline or self.stop_event.is_set():
                    raise GaveUp(f"cannot read {CONFIG_PATH}: {exc!r}") from None
                self.stop_event.wait(self.rng.uniform(*RETRY_PAUSE_S))

    def _wait_running(self, sid: int) -> None:
        """Until `sid` serves, or change_timeout_s has passed."""
        deadline = self._clock() + self.change_timeout_s
        while self._clock() < deadline and not self.stop_event.is_set():
            if self.ens.mode(sid) is not None:
                return
            self.stop_event.wait(0.2)

    def _wait_leader(self, exclude: int) -> int | None:
        """The first leader other than `exclude` within change_timeout_s, or None."""
        deadline = self._clock() + self.change_timeout_s
        while self._clock() < deadline and not self.stop_event.is_set():
            leader = self.ens.leader()
            if leader is not None and leader != exclude:
                return leader
            self.stop_event.wait(0.1)
        return None

    def _client(self) -> KazooClient:
        if self._zk is None:
            self._zk = self._connect(self.ens.ids)
        return self._zk

    def _connect(self, sids: Sequence[int]) -> KazooClient:
        """A super-user session on the client ports of `sids` (no client-link proxies)."""
        zk = KazooClient(
            hosts=",".join(f"127.0.0.1:{self.ens.client_ports[s]}" for s in sids),
            timeout=10.0,
            auth_data=[SUPER_AUTH],
            connection_retry=KazooRetry(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5),
        )
        try:
            zk.start(timeout=self.op_timeout_s * 2)
        except BaseException:
            self._close_client(zk)
            raise
        return zk

    def _close(self) -> None:
        zk, self._zk = self._zk, None
        if zk is not None:
            self._close_client(zk)

    @staticmethod
    def _close_client(zk: KazooClient) -> None:
        try:
            zk.stop()
            zk.close()
        except Exception as exc:  # saying goodbye to a dead server may fail
            log.debug("closing a membership client: %r", exc)


def changes_made(log_: Sequence[Applied]) -> dict[str, int]:
    """How many changes of each kind were done (stop records with outcome done)."""
    done: dict[str, int] = {}
    for a in log_:
        if a.nemesis == NAME and a.action == "stop" and a.detail.get("outcome") == "done":
            kind = a.detail["change"]
            done[kind] = done.get(kind, 0) + 1
    return done
