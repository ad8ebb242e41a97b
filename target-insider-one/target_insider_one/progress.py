"""Progress of a long run at INFO: records received and what became of them so far.

Counts only (no identifiers, no values), so the lines are PII-free.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

    from target_insider_one.summary import RunStats

PROGRESS_INTERVAL_SECONDS = 5.0


@dataclass
class ProgressLog:
    """Logs the run's delivery counters at most once per interval."""

    logger: logging.Logger
    stats: RunStats
    interval: float = PROGRESS_INTERVAL_SECONDS
    clock: Callable[[], float] = time.monotonic
    _last: float = field(init=False)

    def __post_init__(self) -> None:
        """The first line comes one interval after the run starts."""
        self._last = self.clock()

    def tick(self) -> None:
        """Log the counters if the interval has passed (called once per record)."""
        now = self.clock()
        if now - self._last < self.interval:
            return
        self._last = now
        counts = self.stats.as_dict()
        self.logger.info(
            "progress: %d records received, %d users upserted, %d dead-lettered, "
            "%d not delivered, %d requests sent",
            counts["records_received"], counts["users_upserted"],
            counts["records_dead_lettered"], counts["records_undelivered"],
            counts["requests_sent"],
        )  # fmt: skip
