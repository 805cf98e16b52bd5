"""Logs a flood cannot fill the disk with: a per-template token bucket, and one JSON line per record.

`RateLimit` is a `logging.Filter` for a handler: each (logger, message template) pair may log
`burst` lines at once and then `per_s` lines a second; past that, lines are dropped and
counted, and the next line that passes says how many similar lines were suppressed. A
thousand bad clients each logging "bad frame from %s" are one template, so they cost a line a
second, not a thousand. DEBUG records pass untouched (asked for, and off by default).

`JsonFormatter` writes each record as one JSON object (time, level, logger, message, and the
exception if any), for log shippers; `ccore serve --log-format json` uses it.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

DEFAULT_BURST = 20
DEFAULT_PER_S = 1.0
MAX_KEYS = 4096  # templates tracked at once; the least recently seen go first


class RateLimit(logging.Filter):
    def __init__(
        self,
        burst: int = DEFAULT_BURST,
        per_s: float = DEFAULT_PER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.per_s = per_s
        self.clock = clock
        # key -> [tokens, last refill time, lines suppressed since the last that passed]
        self._buckets: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        self.suppressed_total = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return True
        key = (record.name, str(record.msg))
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_KEYS:
                self._buckets.popitem(last=False)
            bucket = self._buckets[key] = [float(self.burst), now, 0]
        else:
            self._buckets.move_to_end(key)
            bucket[0] = min(float(self.burst), bucket[0] + (now - bucket[1]) * self.per_s)
            bucket[1] = now
        if bucket[0] < 1.0:
            bucket[2] += 1
            self.suppressed_total += 1
            return False
        bucket[0] -= 1.0
        if bucket[2]:
            # Said once, on the line that passes: the message is formatted with its args later.
            record.msg = f"{record.msg} [{int(bucket[2])} similar lines suppressed]"
            bucket[2] = 0
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def install(handler: logging.Handler, json_lines: bool = False) -> RateLimit:
    """Put the rate limit (and the JSON format, if asked) on `handler`."""
    limit = RateLimit()
    handler.addFilter(limit)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    return limit
