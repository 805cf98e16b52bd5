"""An in-memory `Ensemble` for nemesis tests: servers are flags, links are a dict of faults."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from chaos.proxy import LinkName


class FakeLinks:
    """Records the fault on every link, like a FleetThread would put it in place."""

    def __init__(self, names: list[LinkName]) -> None:
        self.state: dict[LinkName, str] = {name: "pass" for name in names}
        self.calls: list[tuple[str, LinkName]] = []

    def names(self) -> list[LinkName]:
        return list(self.state)

    def _set(self, name: LinkName, mode: str) -> None:
        if name not in self.state:
            raise KeyError(name)
        self.state[name] = mode
        self.calls.append((mode, name))

    def cut(self, name: LinkName) -> None:
        self._set(name, "cut")

    def blackhole(self, name: LinkName, hold: bool = False) -> None:
        self._set(name, "blackhole-hold" if hold else "blackhole")

    def delay(self, name: LinkName, seconds: float, jitter: float = 0.0) -> None:
        self._set(name, f"delay:{seconds:.3f}")

    def heal(self, name: LinkName) -> None:
        self._set(name, "pass")

    def heal_all(self) -> None:
        for name in self.state:
            self.heal(name)

    def faulty(self) -> dict[LinkName, str]:
        return {n: m for n, m in self.state.items() if m != "pass"}


class FakeEnsemble:
    """n servers with ids 1..n; the leader is the lowest running, unpaused server unless
    set; `events` records every action in order."""

    def __init__(self, n: int, root: Path, *, proxies: bool = True) -> None:
        self._servers = list(range(1, n + 1))
        self.up = set(self._servers)
        self.paused: set[int] = set()
        self.fixed_leader: int | None = None
        self.events: list[tuple[str, int]] = []
        self.root = root
        self.links = (
            FakeLinks(
                [("peer", i, j) for i in self._servers for j in self._servers if i != j] + [("client", i) for i in self._servers]
            )
            if proxies
            else None
        )
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def servers(self) -> Sequence[int]:
        return self._servers

    @property
    def proxies(self) -> FakeLinks | None:
        return self.links

    def leader(self) -> int | None:
        if self.fixed_leader is not None:
            return self.fixed_leader
        live = sorted(self.up - self.paused)
        return live[0] if live else None

    def kill(self, sid: int) -> None:
        assert sid in self.up, f"kill of server {sid}, which is down"
        self.up.discard(sid)
        self.paused.discard(sid)
        self.events.append(("kill", sid))

    def start(self, sid: int, wait: bool = True) -> None:
        assert sid not in self.up, f"start of server {sid}, which is up"
        self.up.add(sid)
        self.events.append(("start", sid))

    def wait_serving(self, sids: list[int]) -> None:
        assert all(sid in self.up for sid in sids), f"waiting for {sids}, not all up"
        self.events.extend(("serving", sid) for sid in sids)

    def pause(self, sid: int) -> None:
        self.paused.add(sid)
        self.events.append(("pause", sid))

    def resume(self, sid: int) -> None:
        self.paused.discard(sid)
        self.events.append(("resume", sid))

    def data_dir(self, sid: int) -> Path:
        path = self.root / f"s{sid}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def pid(self, sid: int) -> int | None:
        """A real (sleeping) process per running server, so RLIMIT_FSIZE can be set on it."""
        if sid not in self.up:
            return None
        if sid not in self._procs:
            self._procs[sid] = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        return self._procs[sid].pid

    def close(self) -> None:
        for proc in self._procs.values():
            proc.kill()
            proc.wait(timeout=10)
