"""How many REST requests may be in flight at once, and how SFMC's 50200 lowers it.

SFMC answers too many concurrent requests with 429 errorcode 50200 ("requests temporarily
blocked") without saying how many it allows. The retry rule already waits 4x longer for
it; the gate also halves the concurrency for the rest of the run (down to 1), and every
attempt, retries included, waits for a slot, so the lowered limit holds at once.

One gate per :class:`~tap_sfmc_de.client.HttpClient` (one per run, shared by all
streams). It has no limit until a prefetcher caps it at ``page_concurrency``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

LOGGER = logging.getLogger("tap-sfmc-de.http")


class ConcurrencyGate:
    """Counts requests in flight and holds each attempt back while the limit is reached."""

    def __init__(self, logger: logging.Logger = LOGGER) -> None:
        """Start without a limit.

        Args:
            logger: Where the one warning about a lowered concurrency goes.
        """
        self.logger = logger
        self.limit: int | None = None
        self.in_flight = 0
        self._warned = False
        self._free = threading.Condition()

    def cap(self, limit: int) -> None:
        """Never allow more than ``limit`` at once (a lowered limit stays lowered).

        Args:
            limit: ``page_concurrency``.
        """
        with self._free:
            self.limit = limit if self.limit is None else min(self.limit, limit)

    @contextlib.contextmanager
    def slot(self) -> Iterator[int | None]:
        """Hold one slot for one attempt (from sending it until its answer is read).

        Yields:
            The limit the attempt was admitted under, for :meth:`blocked`.
        """
        with self._free:
            while self.limit is not None and self.in_flight >= self.limit:
                self._free.wait()
            self.in_flight += 1
            admitted_under = self.limit
        try:
            yield admitted_under
        finally:
            with self._free:
                self.in_flight -= 1
                self._free.notify()

    def blocked(self, admitted_under: int | None) -> None:
        """SFMC answered 50200: halve the limit, once per limit (a burst lowers it once).

        Args:
            admitted_under: What :meth:`slot` yielded for the blocked attempt; an attempt
                sent before the limit was lowered says nothing about the new one.
        """
        with self._free:
            limit = self.limit
            if limit is None or limit <= 1 or admitted_under != limit:
                return
            self.limit = lowered = max(1, limit // 2)
            first, self._warned = not self._warned, True
        self.logger.log(
            logging.WARNING if first else logging.INFO,
            "SFMC blocked requests for being too many at once (429 errorcode 50200): reading "
            "at most %d pages at once (was %d) for the rest of this run; set page_concurrency "
            "to %d or lower if this recurs",
            lowered,
            limit,
            lowered,
        )
