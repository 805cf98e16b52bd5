"""The stall detector: a blocked event loop is counted and logged with what blocked it."""

from __future__ import annotations

import logging
import time

import trio

from ccore.server.stalls import StallDetector


def hold_the_loop_for(seconds: float) -> None:
    time.sleep(seconds)  # what a stall looks like: synchronous work on the loop


async def test_a_stall_is_counted_and_logged_with_its_culprit(nursery, caplog):
    detector = StallDetector(threshold_s=0.1)
    await nursery.start(detector.run)
    await trio.sleep(0.2)
    assert detector.count == 0  # an idle loop does not stall
    with caplog.at_level(logging.WARNING, logger="ccore.server.stalls"):
        hold_the_loop_for(0.4)
        await trio.sleep(0.2)  # the detector's task runs again and reports
    assert detector.count == 1
    assert 0.3 <= detector.max_s < 1.0
    (record,) = [r for r in caplog.records if "stalled" in r.getMessage()]
    assert "hold_the_loop_for" in record.getMessage()


async def test_short_pauses_are_not_stalls(nursery):
    detector = StallDetector(threshold_s=0.3)  # a wide margin: CI machines are busy
    await nursery.start(detector.run)
    for _ in range(5):
        hold_the_loop_for(0.05)
        await trio.sleep(0.02)
    assert detector.count == 0


async def test_the_server_counts_its_stalls_in_mntr(nursery, tmp_path):
    from ccore.server import fourletter
    from ccore.server.zkserver import ZKServer
    from tests.server.helpers import config

    server = await nursery.start(ZKServer(config(tmp_path)).run)
    fields = dict(line.split("\t") for line in fourletter.answer(server, "mntr").splitlines())
    assert fields["zk_loop_stalls"] == "0"
    hold_the_loop_for(0.3)
    await trio.sleep(0.2)
    fields = dict(line.split("\t") for line in fourletter.answer(server, "mntr").splitlines())
    assert fields["zk_loop_stalls"] == "1" and int(fields["zk_loop_stall_max_ms"]) >= 200
