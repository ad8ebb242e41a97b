"""The incremental (and full) paging algorithm. See README "Incremental semantics".

A *window* is the set of rows with ``lower <= rk < upper``; ``upper`` is the server clock
(HTTP ``Date`` of the run's first rowset response, minus a margin) of the run that opened
the window, so the window lies in the past and writers can only make rows *leave* it.
A window is paged by ``$page``/``$pageSize`` within a per-run page budget; its cursor is
persisted so the next run continues it. When a window completes, the bookmark becomes its
``upper`` and a run with budget left opens the next window.

Shift protection: if ``count`` drops by d between two reads, rows may have left ahead of
the cursor, so the cursor steps back ceil(d / page_size) pages (re-read rows are
de-duplicated). When the server ignores ``$filter`` the scanned set can also grow, so each
page boundary is additionally verified with a one-row probe.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tap_sfmc_de.errors import SfmcApiError, SfmcConfigError
from tap_sfmc_de.rowset import RowsetClient, RowsetPage
from tap_sfmc_de.values import format_sfmc_datetime, from_bookmark, to_bookmark

FAR_FUTURE = dt.datetime(2999, 1, 1, tzinfo=dt.UTC)
HTTP_BAD_REQUEST = 400
SERVER, CLIENT = "server", "client"


def row_identity(item: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Identity of a raw rowset item: its primary key, or every column without one.

    Args:
        item: Raw item with ``keys`` and ``values``.

    Returns:
        A hashable identity.
    """
    keys = item.get("keys") or {}
    source = keys or item.get("values") or {}
    return tuple(sorted(source.items()))


def identity_digest(identity: tuple[tuple[str, Any], ...]) -> str:
    """Short digest of an identity, stored in state instead of row values (no PII in state).

    Args:
        identity: From :func:`row_identity`.

    Returns:
        16 hex characters.
    """
    return hashlib.sha256(repr(identity).encode("utf-8")).hexdigest()[:16]


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass
class Window:
    """Cursor of the window being paged."""

    lower: dt.datetime | None
    upper: dt.datetime | None
    mode: str
    next_page: int = 1
    count_seen: int | None = None
    boundary: str | None = None  # digest of the last row of page next_page - 1
    page_size: int | None = None  # page size next_page refers to
    # Row position of ``boundary`` when a page-size change moved next_page off it (this run
    # only: state is rewritten in the new page size once a page verifies against it).
    boundary_at: int | None = field(default=None, compare=False)

    def to_state(self) -> dict[str, Any]:
        """Serialise for STATE (bookmark format for dates)."""
        return {
            "lower": to_bookmark(self.lower) if self.lower else None,
            "upper": to_bookmark(self.upper) if self.upper else None,
            "mode": self.mode,
            "next_page": self.next_page,
            "count_seen": self.count_seen,
            "boundary": self.boundary,
            "page_size": self.page_size,
        }

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> Window:
        """Parse the STATE form.

        Args:
            data: Output of :meth:`to_state`.

        Returns:
            The window.
        """
        return cls(
            lower=from_bookmark(data["lower"]) if data.get("lower") else None,
            upper=from_bookmark(data["upper"]) if data.get("upper") else None,
            mode=str(data.get("mode") or CLIENT),
            next_page=max(1, int(data.get("next_page") or 1)),
            count_seen=_optional_int(data.get("count_seen")),
            boundary=data.get("boundary"),
            page_size=_optional_int(data.get("page_size")),
        )

    def resize(self, page_size: int) -> None:
        """Re-express the cursor for another page size without skipping any row.

        Args:
            page_size: The page size of this run.
        """
        if self.page_size and self.page_size != page_size:
            self.boundary_at = (self.next_page - 1) * self.page_size
            self.next_page = self.boundary_at // page_size + 1  # rounds down: never skips
        self.page_size = page_size

    def contains(self, value: dt.datetime | None) -> bool:
        """Whether a replication-key value lies in ``[lower, upper)``.

        Args:
            value: Parsed replication key (None for NULL).

        Returns:
            True if the row belongs to this window.
        """
        if self.lower is None and self.upper is None:
            return True
        if value is None:
            return False
        return (self.lower is None or value >= self.lower) and (
            self.upper is None or value < self.upper
        )


@dataclass
class Batch:
    """Records of one page and, if not None, the state to persist once they are emitted."""

    records: list[dict[str, Any]]
    state: dict[str, Any] | None


@dataclass
class SyncStats:
    """Counters reported at the end of a run."""

    data_pages: int = 0
    probe_requests: int = 0
    emitted: int = 0
    outside_window: int = 0
    null_replication_key: int = 0
    duplicates: int = 0
    step_backs: int = 0
    windows_completed: int = 0
    mode: str = ""


@dataclass
class SyncPlan:
    """Everything the algorithm needs besides the HTTP client."""

    incremental: bool
    replication_key: str | None
    order_by: str | None
    page_size: int
    max_pages: int
    filter_support: str
    start_date: dt.datetime | None
    tz: dt.tzinfo
    clock_margin_seconds: int


@dataclass
class WindowSync:
    """Runs one stream's paging for one tap run."""

    rowset: RowsetClient
    plan: SyncPlan
    replication_value: Callable[[Mapping[str, Any]], dt.datetime | None]
    convert: Callable[[Mapping[str, Any]], dict[str, Any]]
    state: Mapping[str, Any]
    logger: logging.Logger
    stats: SyncStats = field(default_factory=SyncStats)
    _budget: int = 0
    _last_server_time: dt.datetime | None = None
    _bookmark: dt.datetime | None = None
    _order_by_refused: bool = False

    def run(self) -> Iterator[Batch]:
        """Page through windows until the budget is spent or the data is exhausted.

        Yields:
            Batches in order; state in a batch is valid only after its records are emitted.
        """
        self._budget = self.plan.max_pages
        window = self._load_state()
        first = self._probe(page=1)
        t0 = self._t0(first)
        if first.count == 0:
            if window is not None:
                yield self._complete(window)
            return
        mode = self._decide_mode() if self.plan.incremental else CLIENT
        self.stats.mode = mode
        if window is None:
            window = self._open(t0, mode)
        elif window.mode != mode:
            self.logger.info(
                "Filter support changed (%s -> %s); restarting window", window.mode, mode
            )
            window = Window(window.lower, window.upper, mode, page_size=self.plan.page_size)
        while window is not None:
            outcome = yield from self._page(window)
            if outcome == "filter-broken":
                mode = self.stats.mode = CLIENT
                window = Window(window.lower, window.upper, CLIENT, page_size=self.plan.page_size)
                continue
            if outcome != "complete":
                return
            yield self._complete(window)
            if not self.plan.incremental or self._budget <= 0:
                return
            window = self._open(self._t0(None), mode)

    def _load_state(self) -> Window | None:
        try:
            bookmark = self.state.get("replication_key_value")
            self._bookmark = from_bookmark(bookmark) if bookmark else None
            return self._saved_window()
        except (ValueError, TypeError, AttributeError) as exc:
            raise SfmcConfigError(
                f"The STATE passed in for this stream is not one this tap wrote ({exc}): pass "
                "the last STATE the target emitted, or drop this stream's bookmark to start "
                "it afresh."
            ) from None

    def _saved_window(self) -> Window | None:
        saved = self.state.get("window")
        if not isinstance(saved, Mapping):
            return None
        window = Window.from_state(saved)
        bounded = window.lower is not None or window.upper is not None
        if bounded != self.plan.incremental:
            # fetch_mode changed since the window was opened: its cursor means nothing now.
            self.logger.info("Discarding a window cursor left by the other fetch_mode")
            return None
        window.resize(self.plan.page_size)
        return window

    def _owned_state(self, window: Window | None) -> dict[str, Any]:
        state: dict[str, Any] = {}
        if self.plan.incremental and self._bookmark is not None:
            state["replication_key_value"] = to_bookmark(self._bookmark)
        if window is not None:
            state["window"] = window.to_state()
        return state

    def _complete(self, window: Window) -> Batch:
        self.stats.windows_completed += 1
        if self.plan.incremental and window.upper is not None:
            self._bookmark = window.upper
        return Batch([], self._owned_state(None))

    def _open(self, t0: dt.datetime, mode: str) -> Window | None:
        if not self.plan.incremental:
            return Window(None, None, CLIENT, page_size=self.plan.page_size)
        lower = self._bookmark
        if self.plan.start_date and (lower is None or self.plan.start_date > lower):
            lower = self.plan.start_date
        if lower is not None and lower >= t0:
            return None
        return Window(lower, t0, mode, page_size=self.plan.page_size)

    def _t0(self, page: RowsetPage | None) -> dt.datetime:
        server_time = page.server_time if page is not None else self._last_server_time
        if server_time is None:
            self.logger.warning("No HTTP Date header from SFMC; using the local clock for T0")
            server_time = dt.datetime.now(dt.UTC)
        margin = dt.timedelta(seconds=self.plan.clock_margin_seconds)
        return (server_time - margin).replace(microsecond=0)

    def _fetch(self, **kwargs: Any) -> RowsetPage:
        order_by = None if self._order_by_refused else self.plan.order_by
        try:
            page = self.rowset.fetch(order_by=order_by, **kwargs)
        except SfmcApiError as exc:
            # $orderBy is undocumented on rowset; a server may refuse it outright. The run's
            # first request carries no $filter, so a 400 there can only be the ordering.
            # Paging then relies on the default order, which it already assumes is stable.
            if order_by is None or exc.status_code != HTTP_BAD_REQUEST or kwargs.get("filter_expr"):
                raise
            self.logger.info("SFMC refused $orderBy (%s); using the server's default order", exc)
            self._order_by_refused = True
            page = self.rowset.fetch(order_by=None, **kwargs)
        if page.server_time is not None:
            self._last_server_time = page.server_time
        return page

    def _probe(self, page: int, filter_expr: str | None = None) -> RowsetPage:
        self.stats.probe_requests += 1
        return self._fetch(page=page, page_size=1, filter_expr=filter_expr)

    def _literal(self, value: dt.datetime) -> str:
        return f"'{format_sfmc_datetime(value, self.plan.tz)}'"

    def _decide_mode(self) -> str:
        if self.plan.filter_support != "auto":
            return self.plan.filter_support
        # The grammar of a window's filter (ge, and, lt) on a range that is empty by
        # construction: a server that rejects any part of it answers 400 here, not mid-window.
        rk, far = self.plan.replication_key, self._literal(FAR_FUTURE)
        expr = f"{rk} ge {far} and {rk} lt {far}"
        try:
            probe = self._probe(page=1, filter_expr=expr)
        except SfmcApiError as exc:
            if exc.status_code != HTTP_BAD_REQUEST:
                raise
            self.logger.info("SFMC rejected $filter (%s); filtering on the client", exc)
            return CLIENT
        mode = SERVER if probe.count == 0 else CLIENT
        self.logger.info(
            "$filter is %s: using %s-side window filtering",
            "honoured" if mode == SERVER else "ignored",
            mode,
        )
        return mode

    def _filter_expr(self, window: Window) -> str | None:
        if window.mode != SERVER:
            return None
        rk = self.plan.replication_key
        parts = []
        if window.lower is not None:
            parts.append(f"{rk} ge {self._literal(window.lower)}")
        if window.upper is not None:
            parts.append(f"{rk} lt {self._literal(window.upper)}")
        return " and ".join(parts) or None

    def _boundary_moved(self, position: int, expected: str) -> bool:
        """Probe the row at ``position``: is it no longer the row ``expected``?"""
        probe = self._probe(page=position)
        return not probe.items or identity_digest(row_identity(probe.items[0])) != expected

    def _walk_back(
        self,
        window: Window,
        page: int,
        boundary: str,
        seen: set[tuple[tuple[str, Any], ...]],
    ) -> Generator[Batch, None, bool]:
        """Re-read pages before ``page`` until the row ``boundary`` is among them.

        Returns:
            True when the row was found or every earlier page was re-read (nothing that
            shifted back can be missed), False when the budget ran out first.
        """
        self.stats.step_backs += 1
        self.logger.info(
            "Rows shifted behind the cursor of page %d; re-reading backwards until the last "
            "row read before it turns up",
            page,
        )
        for earlier in range(page - 1, 0, -1):
            if self._budget <= 0:
                return False
            result = self._fetch(page=earlier, page_size=self.plan.page_size, filter_expr=None)
            self._budget -= 1
            self.stats.data_pages += 1
            yield Batch(self._accept(result.items, window, seen), None)
            if any(identity_digest(row_identity(item)) == boundary for item in result.items):
                return True
        return True

    def _restart(self, window: Window) -> None:
        """Start the window over (at-least-once) when a shift could not be bounded."""
        self.logger.warning(
            "Rows shifted further than this run's page budget could re-read; the window "
            "starts over from page 1 next run (rows are re-emitted, none skipped)"
        )
        window.next_page = 1
        window.count_seen = None
        window.boundary = None
        window.boundary_at = None

    def _step_back(self, window: Window, page: int, dropped: int) -> None:
        back = max(1, math.ceil(max(0, dropped) / self.plan.page_size))
        self.stats.step_backs += 1
        self.logger.info(
            "Rows shifted while paging (count dropped by %d); re-reading from page %d",
            dropped,
            max(1, page - back),
        )
        window.next_page = max(1, page - back)

    def _page(self, window: Window) -> Generator[Batch, None, str]:
        """Page one window until it completes, the budget is spent or $filter misbehaves.

        Returns:
            "complete", "budget" or "filter-broken".
        """
        size = self.plan.page_size
        # page -> (position, digest) of a row read before that page, to verify after it.
        checks: dict[int, tuple[int, str]] = {}
        if window.boundary and window.next_page > 1:
            at = window.boundary_at or (window.next_page - 1) * size
            checks[window.next_page] = (at, window.boundary)
        seen: set[tuple[tuple[str, Any], ...]] = set()
        prev_count = window.count_seen
        filter_expr = self._filter_expr(window)
        while self._budget > 0:
            page = window.next_page
            result = self._fetch(page=page, page_size=size, filter_expr=filter_expr)
            self._budget -= 1
            self.stats.data_pages += 1
            if result.has_next and 0 < len(result.items) < size:
                # Offsets, completion and step-backs all assume pages of exactly `size` rows:
                # a server serving smaller pages would make the window skip rows silently.
                raise SfmcApiError(
                    f"SFMC returned {len(result.items)} rows for $pageSize={size} on a page "
                    "that is not the last, so it serves smaller pages than requested and "
                    f"paging would skip rows: set page_size to {len(result.items)}."
                )
            before = prev_count
            dropped = (before - result.count) if before is not None else 0
            prev_count = result.count
            if window.mode == SERVER and dropped < 0:
                self.logger.warning(
                    "%d rows entered a window that lies in the past: some writer sets %s to "
                    "past values (or clocks differ); rows entering behind the cursor are only "
                    "read if they change again. Consider a larger clock_margin_seconds.",
                    -dropped,
                    self.plan.replication_key,
                )
            if window.mode == SERVER and dropped > 0 and page > 1:
                # Rows can only leave a past window: d fewer rows may hide d unread ones.
                self._step_back(window, page, dropped)
                continue
            outside_before = self.stats.outside_window
            records = self._accept(result.items, window, seen)
            if window.mode == SERVER and self.stats.outside_window > outside_before:
                # The probe said $filter works, yet rows outside the window came back: do
                # not trust it for what it may have left out either. Rescan client-side.
                self.logger.warning(
                    "SFMC returned rows outside the $filter window; switching to client-side "
                    "filtering for this run (set filter_support: client to skip the probe)"
                )
                yield Batch(records, None)
                return "filter-broken"
            if window.mode == CLIENT and page in checks and self._boundary_moved(*checks[page]):
                # The scanned set can also grow, so counts prove nothing (inserts mask
                # deletes): the last row read before this page is no longer where it was
                # (checked after the read, so shifts before or during it are caught).
                # Re-read backwards until that row turns up again: every row that shifted
                # back past the cursor lies between it and this page.
                yield Batch(records, None)  # real rows; re-reads are de-duplicated
                records = []
                found = yield from self._walk_back(window, page, checks[page][1], seen)
                if not found:
                    self._restart(window)
                    yield Batch([], self._owned_state(window))
                    return "budget"
            if not result.has_next or not result.items or page * size >= result.count:
                yield Batch(records, None)
                return "complete"
            window.boundary = identity_digest(row_identity(result.items[-1]))
            window.boundary_at = None
            checks[page + 1] = (page * size, window.boundary)
            window.next_page = page + 1
            window.count_seen = result.count
            yield Batch(records, self._owned_state(window))
        return "budget"

    def _accept(
        self,
        items: list[dict[str, Any]],
        window: Window,
        seen: set[tuple[tuple[str, Any], ...]],
    ) -> list[dict[str, Any]]:
        records = []
        for item in items:
            if window.lower is not None or window.upper is not None:
                value = self.replication_value(item)
                if value is None:
                    self.stats.null_replication_key += 1
                    continue
                if not window.contains(value):
                    self.stats.outside_window += 1
                    continue
            identity = row_identity(item)
            if identity in seen:
                self.stats.duplicates += 1
                continue
            seen.add(identity)
            records.append(self.convert(item))
        self.stats.emitted += len(records)
        return records
