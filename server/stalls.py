"""The event-loop stall detector: every stall over a threshold is logged with what was running.

One Trio task beats a heartbeat every half threshold; a watchdog thread looks at it as often.
When the heartbeat is older than the threshold, the loop is stuck in one task step, and the
watchdog captures the loop thread's stack right then (the code that holds the loop, which
nothing on the loop itself could see). When the loop runs again, the task logs one line with
the stall's length and that stack's innermost frames, and counts it (`mntr`:
`loop_stalls`, `loop_stall_max_ms`). A thread costs nothing per request, where a Trio
instrument would add a call to every task step.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable

import trio

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD_S = 0.1
STACK_FRAMES = 6  # innermost frames in the log line: enough to name the culprit


class StallDetector:
    """Run `run` in the server's nursery; read `count` and `max_s`."""

    def __init__(self, threshold_s: float = DEFAULT_THRESHOLD_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold_s = threshold_s
        self.count = 0
        self.max_s = 0.0
        self._clock = clock
        self._beat = clock()
        self._stack: str | None = None  # captured by the watchdog during the current stall
        self._loop_thread = threading.get_ident()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._loop_thread = threading.get_ident()
        stop = threading.Event()
        watchdog = threading.Thread(target=self._watch, args=(stop,), name="ccore-stall-watchdog", daemon=True)
        self._beat = self._clock()
        watchdog.start()
        task_status.started()
        try:
            while True:
                await trio.sleep(self.threshold_s / 2)
                now = self._clock()
                late = now - self._beat - self.threshold_s / 2
                self._beat = now
                if late > self.threshold_s:
                    self._record(late)
        finally:
            stop.set()

    def _record(self, stalled_s: float) -> None:
        self.count += 1
        self.max_s = max(self.max_s, stalled_s)
        stack, self._stack = self._stack, None
        log.warning(
            "event loop stalled for %.0f ms (clients of this server waited that long); it was running: %s",
            stalled_s * 1000,
            stack or "(not caught: the stall ended before the watchdog looked)",
        )

    def _watch(self, stop: threading.Event) -> None:
        interval = self.threshold_s / 2
        while not stop.wait(interval):
            if self._stack is None and self._clock() - self._beat > self.threshold_s:
                frame = sys._current_frames().get(self._loop_thread)
                if frame is not None:
                    frames = traceback.extract_stack(frame)[-STACK_FRAMES:]
                    self._stack = " <- ".join(f"{f.name} ({f.filename.rsplit('/', 1)[-1]}:{f.lineno})" for f in reversed(frames))
