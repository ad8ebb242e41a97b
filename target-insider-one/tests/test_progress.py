"""Progress lines during a long run: delivery counters only, never a record's content."""

from __future__ import annotations

import logging

from target_insider_one.progress import ProgressLog
from target_insider_one.summary import RunStats


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_logs_the_counters_at_most_once_per_interval(caplog) -> None:
    caplog.set_level(logging.INFO)
    clock, stats = FakeClock(), RunStats()
    progress = ProgressLog(logging.getLogger("t"), stats, interval=5, clock=clock)
    stats.add(records_received=1000)
    progress.tick()
    clock.now += 4.9
    progress.tick()
    assert caplog.messages == []
    clock.now += 0.2
    stats.add(records_received=1000, users_upserted=1500, requests_sent=2)
    stats.dead_lettered("no_valid_identifier", 3)
    progress.tick()
    clock.now += 1
    progress.tick()
    assert caplog.messages == [
        (
            "progress: 2000 records received, 1500 users upserted, 3 dead-lettered, "
            "0 not delivered, 2 requests sent"
        )
    ]
