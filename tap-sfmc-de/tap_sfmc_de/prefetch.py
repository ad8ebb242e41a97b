"""Read the pages after the one the window engine asks for ahead, a few at once.

At 1.5 s per rowset request a run of 50 pages spends most of its time waiting. While the
engine (:mod:`tap_sfmc_de.windows`) reads page p of a window that may be prefetched, the
prefetcher also starts pages p+1 .. p+c (same page size and ``$filter``) on a pool of c
threads, never beyond the last page the latest count implies. c pages ahead, not c-1: the
page the engine takes has usually arrived already, so c-1 ahead would leave one of the c
slots idle while the engine emits it (a page read per 1.5 s / (c-1), not / c). While the
engine's page is still in flight the c-th page ahead waits in the pool's queue (unsent,
cancellable) and starts the moment any request completes. The engine still takes
pages strictly in order and judges each one with its guards; any other request (a re-read,
a step-back, another window or mode) drops what was started ahead: pages not sent yet are
cancelled and their budget given back, pages in flight (at most c) finish and are
discarded.

Bounded cost: every page is taken from the run's budget (:meth:`PageReader.claim`) on the
engine's thread before it is started, and a page ahead only while ``RESERVE`` requests (or
what the engine asks to keep) stay left for the engine itself.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tap_sfmc_de.page_reader import BudgetSpentError, PageReader, RequestKind

if TYPE_CHECKING:
    from tap_sfmc_de.concurrency_gate import ConcurrencyGate
    from tap_sfmc_de.rowset import RowsetPage

# Requests kept for the engine: the boundary probe a page read ahead needs if it is the
# one that shows rows entering the window (from then on every page is verified).
RESERVE = 1


@dataclass(frozen=True)
class PageRequest:
    """One data page of a window: what makes two reads the same read."""

    page: int
    page_size: int
    filter_expr: str | None

    def same_query(self, other: PageRequest) -> bool:
        """Whether ``other`` is a page of the same paging (page size and ``$filter``)."""
        return (self.page_size, self.filter_expr) == (other.page_size, other.filter_expr)


@dataclass(frozen=True)
class _Ahead:
    """A page started ahead: its request, its future, and the flag set when it is dropped."""

    request: PageRequest
    future: Future[RowsetPage]
    dropped: threading.Event


class Prefetcher:
    """Data pages started ahead, in page order, on ``concurrency`` worker threads."""

    def __init__(
        self, reader: PageReader, concurrency: int, gate: ConcurrencyGate | None = None
    ) -> None:
        """Set up (threads start with the first page).

        Args:
            reader: The run's budgeted reader (thread-safe).
            concurrency: ``page_concurrency``: pages in flight at most.
            gate: The HTTP client's gate; capped here, lowered by 429 errorcode 50200.
        """
        self.reader = reader
        self.concurrency = concurrency
        self.gate = gate
        if gate is not None:
            gate.cap(concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: deque[_Ahead] = deque()

    @property
    def depth(self) -> int:
        """Pages in flight at most now: ``concurrency``, or less once SFMC blocked some."""
        limit = self.gate.limit if self.gate is not None else None
        return min(self.concurrency, limit or self.concurrency)

    @property
    def started(self) -> list[int]:
        """Page numbers started ahead and not yet taken, in order."""
        return [ahead.request.page for ahead in self._ahead]

    def read(
        self, request: PageRequest, last_page: int | None, keep: int = RESERVE
    ) -> tuple[RowsetPage, bool]:
        """The page asked for; first starts the pages after it, up to ``last_page``.

        Args:
            request: The page the engine reads now.
            last_page: The last page of the window by the latest count; None: read no
                page ahead (what was started ahead is dropped, unless it is this page).
            keep: Requests to leave in the budget for the engine (at least ``RESERVE``).

        Returns:
            The page, and whether it was started ahead: then it may have been served
            before the page the engine took before it.

        Raises:
            BudgetSpentError: When the page itself cannot be paid for.
        """
        future = self._take(request)
        early = future is not None
        if last_page is None:
            self.drop()
            if future is None:  # read on the engine's thread, as without a prefetcher
                return self._read_now(request), False
            return future.result(), early
        if future is None:
            if not self.reader.claim(RequestKind.DATA):
                raise BudgetSpentError
            future = self._start(request)
        # Nothing of this window goes after the next window's page, once that is started.
        if not self._ahead or self._ahead[-1].request.same_query(request):
            following = (self._ahead[-1].request.page if self._ahead else request.page) + 1
            self._top_up(following, request, last_page, keep, self.depth)
        return future.result(), early

    def start(self, request: PageRequest, last_page: int, keep: int, free: int = 1) -> None:
        """Start ``request`` and the pages after it before the engine asks for them.

        For pages the engine will likely read once its own requests (a probe) are
        answered: if it reads something else, they are dropped like any page ahead.

        Args:
            request: The first page to start.
            last_page: The last page of the window by the latest count.
            keep: Requests to leave in the budget for the engine.
            free: Slots left for the engine's own requests meanwhile.
        """
        self.drop()
        self._top_up(request.page, request, last_page, keep, self.depth - free)

    def start_next(self, request: PageRequest, keep: int) -> bool:
        """Start ``request`` after the pages ahead (the next window's first page).

        Args:
            request: A page of another query, read after every page now ahead.
            keep: Requests to leave in the budget for the engine.

        Returns:
            Whether it was started (a slot and the budget allowed it).
        """
        before = len(self._ahead)
        self._top_up(request.page, request, request.page, keep, self.depth)
        return len(self._ahead) > before

    def drop(self) -> None:
        """Forget every page started ahead (the engine reads something else next)."""
        while self._ahead:
            ahead = self._ahead.popleft()
            ahead.dropped.set()  # in flight: no retry of it is sent or paid for
            if ahead.future.cancel():  # never sent: not a request
                self.reader.refund(RequestKind.DATA)

    def close(self) -> None:
        """Drop what is ahead and wait for the pages still in flight (they were counted)."""
        self.drop()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _take(self, request: PageRequest) -> Future[RowsetPage] | None:
        if self._ahead and self._ahead[0].request == request:
            return self._ahead.popleft().future
        self.drop()
        return None

    def _top_up(
        self, following: int, request: PageRequest, last_page: int, keep: int, limit: int
    ) -> None:
        keep = max(keep, RESERVE)
        while (
            len(self._ahead) < limit
            and following <= last_page
            and self.reader.remaining > keep
            and self.reader.claim(RequestKind.DATA)
        ):
            ahead = PageRequest(following, request.page_size, request.filter_expr)
            dropped = threading.Event()
            self._ahead.append(_Ahead(ahead, self._start(ahead, dropped), dropped))
            following += 1

    def _read_now(self, request: PageRequest) -> RowsetPage:
        return self.reader.read(
            RequestKind.DATA,
            page=request.page,
            page_size=request.page_size,
            filter_expr=request.filter_expr,
        )

    def _start(
        self, request: PageRequest, dropped: threading.Event | None = None
    ) -> Future[RowsetPage]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="sfmc-page")
        return self._pool.submit(
            self.reader.read,
            RequestKind.DATA,
            page=request.page,
            page_size=request.page_size,
            filter_expr=request.filter_expr,
            claimed=True,
            dropped=dropped,
        )
