"""Progress of a long run at INFO: rows and rowset requests so far, against the budget.

A run of 50 pages of 2,500 rows takes minutes against the real API; without this the log
is silent between discovery and the end-of-stream summary. Counts only (no keys, no
values), so the lines are PII-free.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

PROGRESS_INTERVAL_SECONDS = 5.0


@dataclass
class ProgressLog:
    """Logs ``rows`` and ``requests`` of one stream at most once per interval."""

    logger: logging.Logger
    stream: str
    budget: int  # max_pages_per_run
    interval: float = PROGRESS_INTERVAL_SECONDS
    clock: Callable[[], float] = time.monotonic
    rows: int = 0
    _last: float = field(init=False)

    def __post_init__(self) -> None:
        """The first line comes one interval after the stream starts."""
        self._last = self.clock()

    def note(self, rows: int, requests: int) -> None:
        """Count a page's rows; log when the interval has passed.

        Args:
            rows: Records emitted for the page just read.
            requests: Rowset requests made so far this run (pages and probes).
        """
        self.rows += rows
        now = self.clock()
        if now - self._last < self.interval:
            return
        self._last = now
        self.logger.info(
            "%s: progress: %d rows emitted, %d of %d rowset requests (max_pages_per_run) used",
            self.stream, self.rows, requests, self.budget,
        )  # fmt: skip
