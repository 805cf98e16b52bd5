"""The log rate limit: a burst per template passes, the rest is counted and reported once."""

from __future__ import annotations

import io
import json
import logging

from ccore.server.logfilter import JsonFormatter, RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def logger_with(limit: RateLimit, formatter: logging.Formatter | None = None) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(limit)
    if formatter is not None:
        handler.setFormatter(formatter)
    log = logging.getLogger(f"test.logfilter.{id(limit)}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    return log, out


def test_a_flood_of_one_template_costs_a_burst_then_a_line_per_second() -> None:
    clock = Clock()
    limit = RateLimit(burst=5, per_s=1.0, clock=clock)
    log, out = logger_with(limit)
    for i in range(10_000):  # 10,000 bad clients in one instant
        log.warning("bad frame from %s", f"10.0.0.{i % 250}")
    assert len(out.getvalue().splitlines()) == 5
    assert limit.suppressed_total == 9_995
    clock.now = 1.0
    log.warning("bad frame from %s", "10.0.0.1")
    last = out.getvalue().splitlines()[-1]
    assert last == "bad frame from 10.0.0.1 [9995 similar lines suppressed]"
    # The count starts again after it is reported.
    clock.now = 2.0
    log.warning("bad frame from %s", "10.0.0.2")
    assert out.getvalue().splitlines()[-1] == "bad frame from 10.0.0.2"


def test_templates_have_buckets_of_their_own_and_debug_is_not_limited() -> None:
    limit = RateLimit(burst=2, per_s=0.0, clock=Clock())
    log, out = logger_with(limit)
    for _ in range(5):
        log.warning("one %d", 1)
        log.warning("two %d", 2)
        log.debug("debug %d", 3)
    lines = out.getvalue().splitlines()
    assert lines.count("one 1") == 2 and lines.count("two 2") == 2 and lines.count("debug 3") == 5


def test_json_lines() -> None:
    log, out = logger_with(RateLimit(), JsonFormatter())
    log.warning("session %#x: %s", 255, 'a "quoted" reason')
    entry = json.loads(out.getvalue())
    assert entry["level"] == "WARNING" and entry["message"] == 'session 0xff: a "quoted" reason'
    assert entry["logger"].startswith("test.logfilter")
