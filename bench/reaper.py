"""A watchdog process that SIGKILLs the benchmark's servers if the benchmark itself dies.

    python -m bench.reaper        # reads commands on stdin, one a line

`add PID` registers a server (its process group, made by start_new_session, is killed too);
`del PID` forgets one the benchmark stopped itself; `dir PATH` is a scratch directory to remove;
`exit` ends the reaper without killing.
At end of input without `exit` -- the benchmark was killed, even with SIGKILL, so its end of
the pipe closed -- every registered process still alive is killed. A process is identified by
pid *and* start time (/proc/PID/stat), so a reused pid is never killed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for the benchmark, not for us
    watched: dict[int, str] = {}
    scratch: list[str] = []
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "exit":
            return 0
        if command == "add" and arg.isdigit():
            started = start_time(int(arg))
            if started is not None:
                watched[int(arg)] = started
        elif command == "del" and arg.isdigit():
            watched.pop(int(arg), None)
        elif command == "dir" and arg:
            scratch.append(arg)
    for pid, started in watched.items():
        if start_time(pid) != started:
            continue
        for kill in (
            os.killpg,
            os.kill,
        ):  # its process group (start_new_session), else itself
            try:
                kill(pid, signal.SIGKILL)
                break
            except OSError:
                pass
    for path in scratch:
        shutil.rmtree(path, ignore_errors=True)
    return 0


class Reaper:
    """The benchmark's side: start the watchdog, register and forget servers, close it."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.reaper"],
            stdin=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a Ctrl-C on the terminal must not reach it before us
            cwd=Path(__file__).resolve().parent.parent,
        )

    def _send(self, line: str) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write(line + "\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass

    def add(self, pid: int | None) -> None:
        if pid is not None:
            self._send(f"add {pid}")

    def scratch(self, path: Path) -> None:
        """Remove `path` too if the benchmark dies (it removes it itself otherwise)."""
        self._send(f"dir {path}")

    def forget(self, pid: int | None) -> None:
        if pid is not None:
            self._send(f"del {pid}")

    def close(self) -> None:
        self._send("exit")
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


if __name__ == "__main__":
    sys.exit(main())
