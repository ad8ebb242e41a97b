"""Every rowset request of a run goes through here: the request budget and page checks.

The budget (``max_pages_per_run``) counts requests of every kind — data pages, the count
probe, ``$filter`` and literal probes, boundary probes, step-backs, walk-backs and the
retry of a refused ``$orderBy`` — because each one costs the tenant an API call.

A page that contradicts itself (no ``items`` yet a ``next`` link or a ``count`` saying
more rows follow, a ``count`` that disagrees with the rows served, more rows than
``$pageSize``) is never taken as the end of a window: it is re-requested a bounded number
of times and then fails the run with what the server did.

Pages may be read on worker threads (:mod:`tap_sfmc_de.prefetch`): the budget is taken
under a lock, and a prefetched page's first request is claimed on the engine's thread
when it is started (:meth:`PageReader.claim`), so the count is exact at every moment.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from tap_sfmc_de.errors import SfmcApiError
from tap_sfmc_de.rowset import RowsetPage
from tap_sfmc_de.status_policy import refuses_query

INCONSISTENT_PAGE_RETRIES = 2


class RequestKind(StrEnum):
    """Why a rowset request was made (reported per kind at the end of a run)."""

    DATA = "data page"
    COUNT = "count probe"
    CAPABILITY = "capability probe"
    BOUNDARY = "boundary probe"
    WALK_BACK = "walk-back page"


DATA_KINDS = frozenset({RequestKind.DATA, RequestKind.WALK_BACK})


class BudgetSpentError(Exception):
    """The run's rowset request budget is used up (not an error: the next run continues)."""


class PageDroppedError(Exception):
    """A page read ahead was dropped while in flight: its retries are not sent or paid."""


class Fetcher(Protocol):
    """What :class:`PageReader` needs from a rowset client."""

    def fetch(  # noqa: D102 - see RowsetClient.fetch
        self,
        *,
        page: int,
        page_size: int,
        filter_expr: str | None = None,
        order_by: str | None = None,
        before_resend: Callable[[], None] | None = None,
    ) -> RowsetPage: ...


def inconsistency(result: RowsetPage, page: int, page_size: int) -> str | None:
    """What is self-contradictory about a page, or None.

    Args:
        result: The page.
        page: 1-based page number requested.
        page_size: ``$pageSize`` requested.

    Returns:
        A description of what the server did, for the log and the error message.
    """
    served, before = len(result.items), (page - 1) * page_size
    if served > page_size:
        return f"served {served} rows for $pageSize={page_size}"
    if not served and result.has_next:
        return f"served no rows on page {page} but a link to a next page"
    if not served and result.count > before:
        return f"served no rows on page {page} although count={result.count} says there are more"
    if served and not result.has_next and before + served != result.count:
        return f"served rows up to {before + served} on its last page but count={result.count}"
    if result.has_next and result.count <= page * page_size:
        return f"linked a next page although count={result.count} ends on page {page}"
    return None


def _refuse_smaller_pages(result: RowsetPage, page_size: int) -> None:
    served = len(result.items)
    if result.has_next and 0 < served < page_size:
        # Offsets, completion and step-backs all assume pages of exactly `page_size` rows:
        # a server serving smaller pages would make the window skip rows silently.
        raise SfmcApiError(
            f"SFMC returned {served} rows for $pageSize={page_size} on a page that is not the "
            "last, so it serves smaller pages than requested and paging would skip rows: set "
            f"page_size to {served}."
        )


@dataclass
class PageReader:
    """Sends rowset requests within a budget and refuses pages that contradict themselves."""

    rowset: Fetcher
    budget: int
    order_by: str | None
    logger: logging.Logger
    requests: Counter[str] = field(default_factory=Counter)
    last_server_time: dt.datetime | None = None
    order_by_refused: bool = False
    _total: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def remaining(self) -> int:
        """Rowset requests left in this run."""
        return self.budget - self._total

    @property
    def total(self) -> int:
        """Rowset requests made in this run."""
        return self._total

    def claim(self, kind: RequestKind) -> bool:
        """Take one request from the budget, if any is left.

        Args:
            kind: Why the request is made.

        Returns:
            False when the budget is spent (nothing was taken).
        """
        with self._lock:
            if self._total >= self.budget:
                return False
            self._total += 1
            self.requests[kind] += 1
            return True

    def refund(self, kind: RequestKind) -> None:
        """Give back a claimed request that was never sent (a cancelled prefetch).

        Args:
            kind: The kind it was claimed for.
        """
        with self._lock:
            self._total -= 1
            self.requests[kind] -= 1

    def read(
        self,
        kind: RequestKind,
        *,
        page: int,
        page_size: int,
        filter_expr: str | None = None,
        claimed: bool = False,
        dropped: threading.Event | None = None,
    ) -> RowsetPage:
        """One page, re-requested while it contradicts itself.

        Args:
            kind: Why the request is made.
            page: 1-based page number.
            page_size: Rows per page.
            filter_expr: ``$filter``, if any.
            claimed: The first request was already taken from the budget (:meth:`claim`).
            dropped: Set when nobody needs the page any more (a page read ahead that was
                dropped): no retry or re-request is sent or paid for after that.

        Returns:
            A self-consistent page.

        Raises:
            BudgetSpentError: When no request is left in this run's budget.
            PageDroppedError: When ``dropped`` was set before a retry.
            SfmcApiError: When the page stays inconsistent after the retries.
        """
        problem = ""
        for attempt in range(INCONSISTENT_PAGE_RETRIES + 1):
            if attempt and dropped is not None and dropped.is_set():
                raise PageDroppedError
            result = self._send(
                kind,
                claimed=claimed and attempt == 0,
                dropped=dropped,
                page=page,
                page_size=page_size,
                filter_expr=filter_expr,
            )
            found = inconsistency(result, page, page_size)
            if found is None:
                _refuse_smaller_pages(result, page_size)
                return result
            problem = found
            if attempt < INCONSISTENT_PAGE_RETRIES:
                self.logger.warning("SFMC %s; requesting the page again", problem)
        raise SfmcApiError(
            f"SFMC {problem} ({INCONSISTENT_PAGE_RETRIES + 1} times in a row). Taking that as "
            "the end of the data would skip rows, so the run stops here; the state keeps the "
            "last complete page and the next run retries it. If it persists, report it to "
            "Salesforce support with the DE key and time."
        )

    def _send(
        self, kind: RequestKind, *, claimed: bool, dropped: threading.Event | None, **kwargs: Any
    ) -> RowsetPage:
        order_by = None if self.order_by_refused else self.order_by
        try:
            page = self._counted(
                kind, claimed=claimed, dropped=dropped, order_by=order_by, **kwargs
            )
        except SfmcApiError as exc:
            # $orderBy is undocumented on rowset; a server may refuse it outright. Only an
            # unfiltered request can blame the 400 on the ordering. Paging then relies on
            # the default order, whose stability is checked separately.
            if order_by is None or not refuses_query(exc.status_code):
                raise
            if kwargs.get("filter_expr"):
                raise
            self.logger.info("SFMC refused $orderBy (%s); using the server's default order", exc)
            self.order_by_refused = True
            page = self._counted(kind, claimed=False, dropped=dropped, order_by=None, **kwargs)
        if page.server_time is not None:
            self.last_server_time = page.server_time
        return page

    def _counted(
        self, kind: RequestKind, *, claimed: bool, dropped: threading.Event | None, **kwargs: Any
    ) -> RowsetPage:
        if not claimed and not self.claim(kind):
            raise BudgetSpentError
        return self.rowset.fetch(before_resend=lambda: self._resend(kind, dropped), **kwargs)

    def _resend(self, kind: RequestKind, dropped: threading.Event | None) -> None:
        # A retried request (429, 5xx, timeout, re-mint) reaches SFMC again: it is one more
        # rowset request, and under concurrency a 50200 makes such resends routine. A page
        # dropped meanwhile is not worth it: its retries would spend the engine's requests.
        if dropped is not None and dropped.is_set():
            raise PageDroppedError
        if not self.claim(kind):
            raise BudgetSpentError
