"""The scaffolding shared by workloads that run one Trio event loop on a thread of their own.

The chaos runner is threaded (nemesis thread, workload threads); a workload built on Trio runs
`_run()` in `trio.run` on a daemon thread, watches `stop_event`, and reports what went wrong
in `errors` rather than raising, so that one broken workload never hides the others' verdicts.
"""

from __future__ import annotations

import logging
import threading

import trio

log = logging.getLogger(__name__)

STOP_POLL_S = 0.1


class TrioThreadWorkload:
    """Subclasses set `name` and `stop_timeout_s` and define `async def _run(self)`."""

    name = "workload"
    stop_timeout_s = 20.0

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.stop_event = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"chaos-{self.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        self.stop_event.set()
        self._thread.join(self.stop_timeout_s if timeout_s is None else timeout_s)
        if self._thread.is_alive():
            self.errors.append(f"{self.name} workload still running at stop")

    def _main(self) -> None:
        try:
            trio.run(self._run)
        except Exception as exc:
            log.exception("%s workload", self.name)
            self.errors.append(f"{self.name} workload failed: {exc!r}")

    async def _run(self) -> None:
        raise NotImplementedError

    async def _until_stopped(self) -> None:
        """Return once `stop()` is called. `stop_event` is a threading.Event set by the
        runner's thread, which Trio cannot await without holding a worker thread: poll it."""
        while not self.stop_event.is_set():  # noqa: ASYNC110 - set by another thread
            await trio.sleep(STOP_POLL_S)
