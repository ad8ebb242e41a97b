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

Concurrency: pages of a server-mode window are read ahead by :mod:`tap_sfmc_de.prefetch`
(``page_concurrency``) while the guards still take them one by one, in order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import re
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tap_sfmc_de.config_schema import MAX_PAGE_SIZE, FilterSupport
from tap_sfmc_de.errors import SfmcApiError, SfmcConfigError
from tap_sfmc_de.page_reader import DATA_KINDS, BudgetSpentError, Fetcher, PageReader, RequestKind
from tap_sfmc_de.prefetch import RESERVE, PageRequest, Prefetcher
from tap_sfmc_de.rowset import RowsetPage
from tap_sfmc_de.server_capabilities import (
    CapabilityProbe,
    FilterMode,
    LiteralForm,
    Order,
    Verdict,
    judge_order,
    literal,
    looks_sorted,
)
from tap_sfmc_de.values import from_bookmark, to_bookmark

SERVER, CLIENT = FilterMode.SERVER, FilterMode.CLIENT
# Digests kept for the lookback: beyond this (a burst of changes just before a window's
# upper), the oldest are dropped and may be emitted once more (at-least-once).
MAX_RECENT = 5000
# Rows compared to judge the default order: a shuffle does not repeat 20 rows in order by
# chance (one row came back in place about 2 times in N). A rotation (a scan that starts
# elsewhere on each request) still repeats whole, about 2 times in N rows per judgment.
ORDER_RUN_ROWS = 20
# Pages behind the furthest page read whose rows a pass still recognises when read again
# (SeenRows): shifts up to this many pages (25,000 rows at the default page size) between
# two reads are de-duplicated exactly; rows re-read from further back may be emitted once
# more (at-least-once, as after a walk-back that ran out of budget), never skipped.
SEEN_PAGES = 10
PAGE_AND_PROBE = 2  # a client-mode page is only worth reading with its boundary probe
PROOF_PROBES = 2 * len(LiteralForm)  # the most requests proving $filter takes
_DIGEST_RE = re.compile(r"[0-9a-f]{16}")
STATE_RESET_HINT = (
    "with Meltano: meltano state clear <state_id> --force; otherwise drop this stream's "
    "entry from the STATE file passed with --state"
)


def row_identity(item: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Identity of a raw rowset item: its primary key, or every column without one.

    Args:
        item: Raw item with ``keys`` and ``values``.

    Returns:
        A hashable identity.
    """
    keys = item.get("keys") or {}
    source = keys or item.get("values") or {}
    if len(source) == 1:  # a one-column key: nothing to sort
        return tuple(source.items())
    return tuple(sorted(source.items()))


def identity_digest(identity: tuple[tuple[str, Any], ...]) -> str:
    """Short digest of an identity, stored in state instead of row values (no PII in state).

    Args:
        identity: From :func:`row_identity`.

    Returns:
        16 hex characters.
    """
    return hashlib.sha256(repr(identity).encode("utf-8")).hexdigest()[:16]


def digests(items: Sequence[Mapping[str, Any]]) -> list[str]:
    """The identity digests of ``items``, in order."""
    return [identity_digest(row_identity(item)) for item in items]


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass
class Window:
    """Cursor of the window being paged."""

    lower: dt.datetime | None
    upper: dt.datetime | None
    mode: FilterMode
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
            "mode": str(self.mode),
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
        mode = str(data.get("mode") or CLIENT)
        boundary = data.get("boundary")
        if mode not in set(FilterMode):
            raise ValueError(f"unknown window mode {mode!r}")
        if boundary is not None and not _DIGEST_RE.fullmatch(str(boundary)):
            raise ValueError("the window boundary is not a digest this tap writes")
        return cls(
            lower=from_bookmark(data["lower"]) if data.get("lower") else None,
            upper=from_bookmark(data["upper"]) if data.get("upper") else None,
            mode=FilterMode(mode),
            next_page=max(1, int(data.get("next_page") or 1)),
            count_seen=_optional_int(data.get("count_seen")),
            boundary=boundary,
            page_size=_optional_int(data.get("page_size")) or None,
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


class RecentRows:
    """Digests of row versions emitted with a replication key inside the lookback.

    A version is (key, replication key, values), hashed: state never holds values. A row
    re-read in the lookback as it was emitted is not emitted again; a late commit has a new
    digest, and so has a row written twice within one second (same ModifiedDate, newer
    values: a writer that commits late can make the second one visible after the first
    was emitted).
    """

    def __init__(self, lookback: dt.timedelta) -> None:
        """Start empty.

        Args:
            lookback: How far behind the bookmark each run re-reads.
        """
        self.lookback = lookback
        self.digests: dict[str, int] = {}  # digest -> replication key (epoch seconds)
        self._oldest: int | None = None  # min(digests.values()), None when empty
        self._upper: dt.datetime | None = None  # the window note() last saw, and
        self._since: dt.datetime | None = None  # its upper - lookback

    def load(self, saved: Any) -> None:
        """Read the STATE form (a mapping of digest to epoch seconds).

        Args:
            saved: ``state["recent"]`` or None.
        """
        if saved is None:
            return
        if not isinstance(saved, Mapping) or not all(
            _DIGEST_RE.fullmatch(str(k)) and isinstance(v, int) for k, v in saved.items()
        ):
            raise ValueError("'recent' is not the digest map this tap writes")
        self._keep(dict(saved))

    def note(self, item: Mapping[str, Any], value: dt.datetime | None, upper: dt.datetime) -> bool:
        """Remember an emitted row version near ``upper``.

        Args:
            item: The raw rowset item.
            value: Its parsed replication key.
            upper: The window's upper bound.

        Returns:
            False when this version was already emitted.
        """
        if value is None or not self.lookback:
            return True
        if upper is not self._upper:
            self._upper, self._since = upper, upper - self.lookback
        recent = value >= self._since
        if not recent and (self._oldest is None or int(value.timestamp()) < self._oldest):
            # Older than every remembered version (its digest would carry the same
            # replication key), and too old to remember: most rows of a first load.
            return True
        values = tuple(sorted((item.get("values") or {}).items()))
        digest = identity_digest((*row_identity(item), ("@rk", value.isoformat()), ("@v", values)))
        if digest in self.digests:
            return False
        if recent:
            self.digests[digest] = epoch = int(value.timestamp())
            self._oldest = epoch if self._oldest is None else min(self._oldest, epoch)
            if len(self.digests) > 2 * MAX_RECENT:  # a burst of changes near upper
                self._keep(self.digests)
        return True

    def prune(self, bookmark: dt.datetime) -> None:
        """Forget rows the next lookback cannot reach; keep at most the newest MAX_RECENT.

        Args:
            bookmark: The new bookmark.
        """
        since = int((bookmark - self.lookback).timestamp())
        self._keep({k: v for k, v in self.digests.items() if v >= since})

    def _keep(self, digests: Mapping[str, int]) -> None:
        # The newest MAX_RECENT; trimming early in a window drops only versions that
        # prune would drop at its end (they are older than MAX_RECENT others).
        kept = sorted(((v, k) for k, v in digests.items()), reverse=True)[:MAX_RECENT]
        self.digests = {k: v for v, k in kept}
        self._oldest = kept[-1][0] if kept else None

    def to_state(self) -> dict[str, int]:
        """The STATE form."""
        return dict(self.digests)


class SeenRows:
    """Identities of the rows a pass has read, for the pages a re-read can still return.

    Rows are read twice within a pass when the cursor steps or walks back after a shift,
    or when inserts push rows already read onto the next page. A row read again is read
    near the page it was read at, within the size of the shift, so a row is remembered
    while the furthest page read is at most ``span`` pages past the furthest page it was
    read at. Rows further back are forgotten every ``span`` pages, so the rows of about
    ``2 * span`` pages are held (``SEEN_PAGES * page_size`` identities, 25,000 by
    default), however many rows the pass reads. Forgetting a row can only let it be
    emitted once more, never drop it.
    """

    def __init__(self, span: int = SEEN_PAGES) -> None:
        """Start empty.

        Args:
            span: Pages behind the furthest page read whose rows are recognised.
        """
        self.span = span
        self._page_of: dict[tuple[tuple[str, Any], ...], int] = {}  # -> furthest page read at
        self._furthest = 0
        self._swept = 0  # furthest page when rows were last forgotten

    def __len__(self) -> int:
        """Identities remembered."""
        return len(self._page_of)

    def first_read(self, identity: tuple[tuple[str, Any], ...], page: int) -> bool:
        """Note a row read at ``page``.

        Args:
            identity: From :func:`row_identity`.
            page: The page it was read at.

        Returns:
            False when the row was already read in this pass (and is remembered).
        """
        if page > self._furthest:
            self._furthest = page
            if page - self._swept >= self.span:
                self._swept = page
                horizon = page - self.span
                self._page_of = {k: v for k, v in self._page_of.items() if v >= horizon}
        previous = self._page_of.get(identity)
        if page >= self._furthest - self.span and (previous is None or page > previous):
            self._page_of[identity] = page
        return previous is None


@dataclass
class Batch:
    """Records of one page and, if not None, the state to persist once they are emitted."""

    records: list[dict[str, Any]]
    state: dict[str, Any] | None
    window_complete: bool = False  # in full mode: a full pass ended here (ACTIVATE_VERSION)


class Outcome(StrEnum):
    """How paging one window ended."""

    COMPLETE = "complete"
    STOPPED = "stopped"  # the cursor was reset; the next run continues
    FILTER_BROKEN = "filter-broken"


class PageAction(StrEnum):
    """What a shift guard says about the page just read."""

    KEEP = "keep"  # the page stands: the cursor moves past it
    REREAD = "reread"  # the cursor stepped back: read again from there
    RESCAN_ON_CLIENT = "rescan-on-client"  # $filter let rows outside the window through
    STOP = "stop"  # the budget ran out walking back: the next run continues
    # The page stands, but the run stops after it: the row order is not judged yet and this
    # run cannot pay for the judgement; paging on (pages read ahead included) could complete
    # the window over rows a reshuffling server never served. The next run judges first.
    LAST = "last"


_OUTCOME_OF = {PageAction.RESCAN_ON_CLIENT: Outcome.FILTER_BROKEN, PageAction.STOP: Outcome.STOPPED}
# A guard's verdict and the page's records still to emit.
Guarded = tuple[PageAction, list[dict[str, Any]]]


@dataclass
class SyncStats:
    """Counters reported at the end of a run."""

    data_pages: int = 0
    probe_requests: int = 0
    emitted: int = 0
    outside_window: int = 0
    null_replication_key: int = 0
    duplicates: int = 0
    already_emitted: int = 0  # re-read in the lookback, same (key, rk) as already emitted
    step_backs: int = 0
    windows_completed: int = 0
    mode: str = ""
    backlog: int | None = None  # rows left in the window when the budget ended the run


@dataclass
class SyncPlan:
    """Everything the algorithm needs besides the HTTP client."""

    incremental: bool
    replication_key: str | None
    order_by: str | None
    page_size: int
    max_pages: int
    filter_support: FilterSupport
    start_date: dt.datetime | None
    tz: dt.tzinfo
    clock_margin_seconds: int
    lookback_seconds: int = 0
    page_concurrency: int = 1


@dataclass
class _Pass:
    """What one run remembers while paging one window."""

    seen: SeenRows = field(default_factory=SeenRows)
    # page -> (position, digest) of a row read before that page, to verify after it.
    checks: dict[int, tuple[int, str]] = field(default_factory=dict)
    prev_count: int | None = None
    emitted: int = 0
    newer: int = 0  # rows seen with rk >= upper (client mode): a follow-up has rows
    entered: bool = False  # server mode saw rows enter the window: counts prove nothing now

    def verifies(self, window: Window, page: int) -> bool:
        """Whether ``page`` is checked with a boundary probe after it is read."""
        return (window.mode == CLIENT or self.entered) and page in self.checks


@dataclass
class WindowSync:
    """Runs one stream's paging for one tap run."""

    rowset: Fetcher
    plan: SyncPlan
    replication_value: Callable[[Mapping[str, Any]], dt.datetime | None]
    convert: Callable[[Mapping[str, Any]], dict[str, Any]]
    state: Mapping[str, Any]
    logger: logging.Logger
    stats: SyncStats = field(default_factory=SyncStats)
    reader: PageReader = field(init=False)
    _bookmark: dt.datetime | None = None
    _window: Window | None = None
    _rows_counted: int = 0  # the count probe's: every row of the DE, at the run's start
    _next_upper: dt.datetime | None = None  # the follow-up window's, once its page 1 is sent
    recent: RecentRows = field(init=False)
    verdict: Verdict | None = None
    prefetch: Prefetcher | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        """Every rowset request of the run goes through one budgeted reader."""
        self.reader = PageReader(self.rowset, self.plan.max_pages, self.plan.order_by, self.logger)
        self.recent = RecentRows(dt.timedelta(seconds=self.plan.lookback_seconds))
        if self.plan.page_concurrency > 1:
            # RowsetClient.gate: the HTTP client's; in-memory fakes have none.
            gate = getattr(self.rowset, "gate", None)
            self.prefetch = Prefetcher(self.reader, self.plan.page_concurrency, gate)

    def run(self) -> Iterator[Batch]:
        """Page through windows until the budget is spent or the data is exhausted.

        Yields:
            Batches in order; state in a batch is valid only after its records are emitted.
        """
        try:
            yield from self._windows()
        except BudgetSpentError:
            self._report_backlog()
        finally:
            if self.prefetch is not None:
                self.prefetch.close()
            requests = self.reader.requests
            self.stats.data_pages = sum(requests[k] for k in DATA_KINDS)
            self.stats.probe_requests = self.reader.total - self.stats.data_pages

    def _windows(self) -> Iterator[Batch]:
        window = self._load_state()
        first = self.reader.read(RequestKind.COUNT, page=1, page_size=1)
        self._rows_counted = first.count
        t0 = self._t0(first)
        self._refuse_future(window, t0)
        if first.count == 0:
            if window is not None or not self.plan.incremental:  # an empty DE: a full pass too
                yield self._complete(
                    window or Window(None, None, CLIENT, page_size=self.plan.page_size)
                )
            return
        if self.plan.incremental:
            self._start_during_probes(window, t0)
            mode = self._decide_mode(first, t0)
        else:
            mode = CLIENT
        self.stats.mode = mode
        if window is None:
            window = self._open(t0, mode, lookback=True)
        elif window.mode != mode:
            self.logger.info(
                "Filter support changed (%s -> %s); restarting window", window.mode, mode
            )
            window = Window(window.lower, window.upper, mode, page_size=self.plan.page_size)
        while window is not None:
            self._window = window
            progress = _Pass(prev_count=window.count_seen)
            outcome = yield from self._page(window, progress)
            if outcome == Outcome.FILTER_BROKEN:
                mode = self.stats.mode = CLIENT
                self.verdict = Verdict(CLIENT, checked=t0)
                window = Window(window.lower, window.upper, CLIENT, page_size=self.plan.page_size)
                continue
            if outcome != Outcome.COMPLETE:
                return
            yield self._complete(window)
            if not self.plan.incremental or not self._follow_up_has_rows(window, progress):
                return
            window = self._open(self._next_upper or self._t0(None), mode)
            self._next_upper = None

    def _follow_up_has_rows(self, window: Window, progress: _Pass) -> bool:
        # Only a window that had rows suggests writers were active while it was paged;
        # client mode even saw the newer rows. An empty window never opens another one.
        if window.mode == CLIENT:
            return progress.newer > 0
        return progress.emitted > 0

    def _report_backlog(self) -> None:
        window, size = self._window, self.plan.page_size
        if window is None or window.count_seen is None:
            self.logger.info("Request budget (max_pages_per_run) spent; the next run continues")
            return
        left = max(0, window.count_seen - (window.next_page - 1) * size)
        self.stats.backlog = left
        self.logger.info(
            "Request budget (max_pages_per_run=%d) spent: backlog remains: about %d rows; "
            "the next run continues",
            self.plan.max_pages,
            left,
        )

    def _load_state(self) -> Window | None:
        try:
            bookmark = self.state.get("replication_key_value")
            self._bookmark = from_bookmark(bookmark) if bookmark else None
            self.recent.load(self.state.get("recent"))
            self.verdict = Verdict.from_state(self.state.get("capabilities"))
            return self._saved_window()
        except (ValueError, TypeError, AttributeError) as exc:
            raise SfmcConfigError(
                f"The STATE passed in for this stream is not one this tap wrote ({exc}): pass "
                f"the last STATE the target emitted, or reset the stream ({STATE_RESET_HINT})."
            ) from None

    def _saved_window(self) -> Window | None:
        saved = self.state.get("window")
        if saved is None:
            return None
        if not isinstance(saved, Mapping):
            raise TypeError("'window' is not an object")
        window = Window.from_state(saved)
        bounded = window.lower is not None or window.upper is not None
        if bounded != self.plan.incremental:
            # fetch_mode changed since the window was opened: its cursor means nothing now.
            self.logger.info("Discarding a window cursor left by the other fetch_mode")
            return None
        window.resize(self.plan.page_size)
        return window

    def _refuse_future(self, window: Window | None, t0: dt.datetime) -> None:
        """A bookmark or window the server clock has not reached yet would stall forever."""
        problem = None
        if self._bookmark is not None and self._bookmark > t0:
            problem = f"its bookmark {to_bookmark(self._bookmark)} lies after SFMC's clock"
        elif window is not None and window.upper is not None and window.upper > t0:
            problem = f"its window ends at {to_bookmark(window.upper)}, after SFMC's clock"
        elif window and window.lower and self._bookmark and window.lower > self._bookmark:
            problem = "its window starts after its bookmark (rows between would be skipped)"
        if problem:
            raise SfmcConfigError(
                f"The STATE for this stream cannot be used: {problem} ({to_bookmark(t0)}). It "
                "was written for another tenant or DE, or edited by hand. Reset the stream "
                f"({STATE_RESET_HINT}); the next run then reads it afresh."
            )

    def _owned_state(self, window: Window | None) -> dict[str, Any]:
        state: dict[str, Any] = {}
        if self.plan.incremental and self._bookmark is not None:
            state["replication_key_value"] = to_bookmark(self._bookmark)
        if window is not None:
            state["window"] = window.to_state()
        if self.recent.digests:
            state["recent"] = self.recent.to_state()
        if self.verdict is not None and self.plan.incremental:
            state["capabilities"] = self.verdict.to_state()
        return state

    def _complete(self, window: Window) -> Batch:
        self.stats.windows_completed += 1
        self._window = None
        if self.plan.incremental and window.upper is not None:
            self._bookmark = window.upper
            self.recent.prune(window.upper)
        return Batch([], self._owned_state(None), window_complete=True)

    def _open(self, t0: dt.datetime, mode: FilterMode, *, lookback: bool = False) -> Window | None:
        if not self.plan.incremental:
            return Window(None, None, CLIENT, page_size=self.plan.page_size)
        # start_date bounds only the first window: once a bookmark exists it always wins,
        # so a moving start_date (Meltano's relative dates) can never skip changes.
        lower = self._bookmark if self._bookmark is not None else self.plan.start_date
        if lookback and self._bookmark is not None:
            # The run's first window re-reads the lookback for rows committed late with a
            # ModifiedDate behind the bookmark; those already emitted are recognised.
            lower = self._bookmark - self.recent.lookback
        if lower is not None and lower >= t0:
            return None
        return Window(lower, t0, mode, page_size=self.plan.page_size)

    def _t0(self, page: RowsetPage | None) -> dt.datetime:
        server_time = page.server_time if page is not None else self.reader.last_server_time
        if server_time is None:
            self.logger.warning("No HTTP Date header from SFMC; using the local clock for T0")
            server_time = dt.datetime.now(dt.UTC)
        margin = dt.timedelta(seconds=self.plan.clock_margin_seconds)
        return (server_time - margin).replace(microsecond=0)

    def _probe(self, kind: RequestKind, page: int, filter_expr: str | None = None) -> RowsetPage:
        return self.reader.read(kind, page=page, page_size=1, filter_expr=filter_expr)

    def _literal(self, value: dt.datetime) -> str:
        form = self.verdict.literal if self.verdict else LiteralForm.SFMC_LOCAL
        return literal(value, form, self.plan.tz)

    def _decide_mode(self, sample: RowsetPage, now: dt.datetime) -> FilterMode:
        cached = self.verdict
        if self.plan.filter_support != FilterSupport.AUTO:
            forced = FilterMode(self.plan.filter_support)
            self.verdict = cached or Verdict(forced)
            self.verdict.mode = forced
            return self.verdict.mode
        if cached is not None and cached.is_fresh(now):
            self.logger.info(
                "Reusing the checked server capabilities ($filter %s, %s literals, %s order)",
                "honoured" if cached.mode == SERVER else "not used", cached.literal, cached.order,
            )  # fmt: skip
            return cached.mode
        probe = CapabilityProbe(
            probe=lambda expr: self._probe(RequestKind.CAPABILITY, page=1, filter_expr=expr),
            replication_key=str(self.plan.replication_key),
            tz=self.plan.tz,
            replication_value=self.replication_value,
            logger=self.logger,
        )
        self.verdict = probe.decide(sample, now)
        return self.verdict.mode

    def _start_during_probes(self, window: Window | None, t0: dt.datetime) -> None:
        """Start the first pages of a new window while ``$filter`` is being proved.

        The proof takes a request or two in a row, and the window's pages would wait for
        it. They are started on what the proof usually finds (``$filter`` honoured, the
        first literal form), leaving one slot for the probes; any other verdict gives
        another ``$filter`` (or none), so they do not match and are dropped: at most
        c - 1 requests, once per verdict (rechecked daily).
        """
        fresh = self.verdict is not None and self.verdict.is_fresh(t0)
        ordered = self.plan.order_by and not self.reader.order_by_refused
        if (
            self.prefetch is None
            or window is not None
            or fresh
            or not ordered
            or self.plan.filter_support != FilterSupport.AUTO
        ):
            return
        guess = self._open(t0, SERVER, lookback=True)
        if guess is None:
            return
        # As _read_ahead: a window open below holds every row the count probe counted;
        # the count of one with a lower bound is not known before its first page.
        size = self.plan.page_size
        last_page = math.ceil(self._rows_counted / size) if guess.lower is None else 1
        first = PageRequest(1, size, self._filter_expr(guess))
        self.prefetch.start(first, last_page, keep=PROOF_PROBES + PAGE_AND_PROBE)

    def _start_follow_up(self, window: Window, progress: _Pass, keep: int) -> None:
        """Send the follow-up window's page 1 while this window's last pages are in flight.

        Once every page of the window is sent, a slot is free for the window the run opens
        next (when this one had rows). Its upper is the server time known now instead of
        at the end of this window: an earlier upper, which the next run's window covers. If
        no follow-up opens after all (rows shifted, the window ended empty), the page is
        dropped: one request.
        """
        if self._next_upper is not None or not progress.emitted or window.upper is None:
            return
        upper = self._t0(None)
        if not self.plan.incremental or upper <= window.upper:
            return
        follow_up = Window(window.upper, upper, window.mode)  # what _open makes of it then
        request = PageRequest(1, self.plan.page_size, self._filter_expr(follow_up))
        if self.prefetch is not None and self.prefetch.start_next(request, keep):
            self._next_upper = upper

    def _check_order(self, window: Window, page: int, result: RowsetPage) -> bool:
        """Judge the row order once per verdict; refuse offset paging over an unstable one.

        Returns:
            False when the order still has to be judged and this run cannot pay for it
            (retries of pages read ahead can spend the requests kept for it): the run stops
            after this page, and the next one judges first.
        """
        verdict = self.verdict
        if verdict is None or len(result.items) < PAGE_AND_PROBE:
            return True
        multi_page = result.has_next or page > 1  # one page is read whole, in any order
        if verdict.order == Order.UNKNOWN and multi_page:
            if self.reader.remaining < PAGE_AND_PROBE:
                self.logger.info(
                    "The row order is not judged yet and this run's budget cannot pay for it: "
                    "stopping after this page; the next run judges it first"
                )
                return False
            verdict.order = self._judge_order(window, page, result)
        if verdict.order == Order.UNSTABLE and multi_page:
            raise SfmcApiError(
                "SFMC ignores $orderBy for this DE and serves its rows in a different order on "
                "every request (the same rows came back in a different order on three reads), so "
                "paging by offset would skip and repeat rows. Windows that fit one page are "
                f"still read safely: raise page_size (now {self.plan.page_size}, at most "
                f"{MAX_PAGE_SIZE}) "
                "or run more often so each window holds fewer changed rows; a full first load "
                "of a larger DE needs a server that keeps its row order."
            )
        return True

    def _judge_order(self, window: Window, page: int, result: RowsetPage) -> Order:
        keys = [next(iter((item.get("keys") or {"": ""}).values()), "") for item in result.items]
        ordered = self.plan.order_by and not self.reader.order_by_refused
        if ordered and looks_sorted([str(k) for k in keys]):
            return Order.STABLE  # $orderBy visibly honoured on a unique key
        run = min(ORDER_RUN_ROWS, len(result.items))
        offset = (page - 1) * self.plan.page_size
        # The same rows again in one request: a page of `run` rows when it lines up with
        # this page's first row (always on page 1), else this page itself.
        size = run if offset % run == 0 else self.plan.page_size
        filter_expr = self._filter_expr(window)

        def reread() -> list[str]:
            again = self.reader.read(
                RequestKind.CAPABILITY,
                page=offset // size + 1,
                page_size=size,
                filter_expr=filter_expr,
            )
            return digests(again.items[:run])

        order = judge_order(digests(result.items[:run]), reread)
        self.logger.info("SFMC's row order (no usable $orderBy) is %s between requests", order)
        return order

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

    def _boundary_moved(self, window: Window, position: int, expected: str) -> bool:
        """Probe the row at ``position``: is it no longer the row ``expected``?"""
        probe = self._probe(
            RequestKind.BOUNDARY, page=position, filter_expr=self._filter_expr(window)
        )
        return not probe.items or identity_digest(row_identity(probe.items[0])) != expected

    def _walk_back(
        self, window: Window, page: int, boundary: str, progress: _Pass
    ) -> Generator[Batch, None, Outcome | None]:
        """Re-read pages before ``page`` until the row ``boundary`` is among them.

        Returns:
            None when the row was found or every earlier page was re-read (nothing that
            shifted back can be missed); STOPPED when the budget ran out first.
        """
        self.stats.step_backs += 1
        self.logger.info(
            "Rows shifted behind the cursor of page %d; re-reading backwards until the last "
            "row read before it turns up",
            page,
        )
        for earlier in range(page - 1, 0, -1):
            try:
                result = self.reader.read(
                    RequestKind.WALK_BACK,
                    page=earlier,
                    page_size=self.plan.page_size,
                    filter_expr=self._filter_expr(window),
                )
            except BudgetSpentError:
                self._restart(window)
                yield Batch([], self._owned_state(window))
                return Outcome.STOPPED
            yield Batch(self._accept(result.items, window, progress, earlier), None)
            if any(identity_digest(row_identity(item)) == boundary for item in result.items):
                return None
        return None

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

    def _server_shift(self, window: Window, page: int, count: int, progress: _Pass) -> bool:
        """Server mode: step back when rows left the window ahead of the cursor.

        Returns:
            True when the cursor was moved back and the page must not be used.
        """
        before, progress.prev_count = progress.prev_count, count
        dropped = (before - count) if before is not None else 0
        if dropped < 0:
            # Writers that commit after stamping (or backdate) add rows to a past window, so
            # a count no longer bounds the rows that left: verify boundaries from now on.
            progress.entered = True
            self.logger.warning(
                "%d rows entered a window that lies in the past: some writer commits late or "
                "sets %s to past values; page boundaries are verified from now on, and rows "
                "entering behind the cursor are read by the next run's lookback "
                "(lookback_seconds) if they lie within it.",
                -dropped,
                self.plan.replication_key,
            )
        if dropped <= 0 or page == 1 or progress.entered:
            return False
        # Rows can only leave a past window: d fewer rows may hide d unread ones.
        back = max(1, math.ceil(dropped / self.plan.page_size))
        self.stats.step_backs += 1
        window.next_page = max(1, page - back)
        self.logger.info(
            "Rows shifted while paging (count dropped by %d); re-reading from page %d",
            dropped,
            window.next_page,
        )
        return True

    def _page(self, window: Window, progress: _Pass) -> Generator[Batch, None, Outcome]:
        """Page one window until it completes or $filter misbehaves (budget: raises).

        Each page is read, then judged by the shift guard of the window's filtering mode.

        Returns:
            The outcome.
        """
        if window.boundary and window.next_page > 1:  # verify the saved cursor's boundary
            at = window.boundary_at or (window.next_page - 1) * self.plan.page_size
            progress.checks[window.next_page] = (at, window.boundary)
        guard = self._server_guard if window.mode == SERVER else self._client_guard
        filter_expr = self._filter_expr(window)
        while True:
            page = window.next_page
            result = self._read_page(window, page, progress, filter_expr)
            action, records = yield from guard(window, page, result, progress)
            if action == PageAction.REREAD:
                continue
            if action == PageAction.LAST:
                # Not past the window's last page: completing needs a judged order.
                if result.has_next:
                    state = self._advance(window, page, result, progress)
                else:
                    state = self._owned_state(window)
                yield Batch(records, state)
                return Outcome.STOPPED
            if action != PageAction.KEEP:
                return _OUTCOME_OF[action]
            if not result.has_next:  # the reader vouches that count agrees
                yield Batch(records, None)
                return Outcome.COMPLETE
            yield Batch(records, self._advance(window, page, result, progress))

    def _read_page(
        self, window: Window, page: int, progress: _Pass, filter_expr: str | None
    ) -> RowsetPage:
        if progress.verifies(window, page) and self.reader.remaining < PAGE_AND_PROBE:
            raise BudgetSpentError  # a page whose boundary probe cannot be paid is wasted
        if self.prefetch is None:
            return self._read_now(page, filter_expr)
        # None: no page ahead; a page started while the probes ran is still taken.
        last_page, keep = self._read_ahead(window, page, progress) or (None, RESERVE)
        request = PageRequest(page, self.plan.page_size, filter_expr)
        result, early = self.prefetch.read(request, last_page, keep)
        if last_page is not None and self.prefetch.started[-1:] == [last_page]:
            self._start_follow_up(window, progress, keep)
        if early and progress.prev_count is not None and result.count > progress.prev_count:
            # Rows only leave a past window, so a higher count than the page before says
            # this page was served before it, with rows leaving in between: the shift
            # guard would take that for rows entering. Read it again, after that page.
            self.prefetch.drop()
            return self._read_now(page, filter_expr)
        return result

    def _read_now(self, page: int, filter_expr: str | None) -> RowsetPage:
        return self.reader.read(
            RequestKind.DATA, page=page, page_size=self.plan.page_size, filter_expr=filter_expr
        )

    def _read_ahead(self, window: Window, page: int, progress: _Pass) -> tuple[int, int] | None:
        """How far to read ahead: the last page and the requests to keep; None: not at all.

        Only a server-mode window with no rows entering is read ahead: its guard needs
        nothing but each page's count, in order. Client mode and verified pages stay one at
        a time, because each page needs its boundary probe after it (a page read ahead
        would precede the probe of the one before). The count is the latest page's, or for
        the first page of a window open below (a first run) the count probe's, which
        counted every row. A row order not judged yet is judged on the first multi-page
        page, by up to two re-reads: the budget keeps room for them.
        """
        count = progress.prev_count
        if count is None and page == 1 and window.lower is None:
            count = self._rows_counted
        order = self.verdict.order if self.verdict is not None else Order.UNKNOWN
        orderable = order == Order.STABLE or (
            order == Order.UNKNOWN and self.plan.order_by and not self.reader.order_by_refused
        )
        if (
            window.mode != SERVER
            or progress.entered
            or progress.verifies(window, page)
            or not count
            or not orderable
        ):
            return None
        keep = PAGE_AND_PROBE if order == Order.UNKNOWN else RESERVE
        return max(page, math.ceil(count / self.plan.page_size)), keep

    def _server_guard(
        self, window: Window, page: int, result: RowsetPage, progress: _Pass
    ) -> Generator[Batch, None, Guarded]:
        """Server mode: rows leave the window (count drops), or $filter lets others in."""
        if self._server_shift(window, page, result.count, progress):
            return PageAction.REREAD, []
        judged = self._check_order(window, page, result)
        outside_before = self.stats.outside_window
        records = self._accept(result.items, window, progress, page)
        if self.stats.outside_window > outside_before:
            # The probe said $filter works, yet rows outside the window came back: do not
            # trust it for what it may have left out either. Rescan client-side.
            self.logger.warning(
                "SFMC returned rows outside the $filter window; switching to client-side "
                "filtering for this run (set filter_support: client to skip the probe)"
            )
            yield Batch(records, None)
            return PageAction.RESCAN_ON_CLIENT, []
        return (yield from self._settle(window, page, records, progress, judged=judged))

    def _client_guard(
        self, window: Window, page: int, result: RowsetPage, progress: _Pass
    ) -> Generator[Batch, None, Guarded]:
        """Client mode: the scanned set grows and shrinks, so each boundary is probed."""
        judged = self._check_order(window, page, result)
        records = self._accept(result.items, window, progress, page)
        return (yield from self._settle(window, page, records, progress, judged=judged))

    def _settle(
        self,
        window: Window,
        page: int,
        records: list[dict[str, Any]],
        progress: _Pass,
        *,
        judged: bool = True,
    ) -> Generator[Batch, None, Guarded]:
        """Verify the page's boundary when counts prove nothing (both guards end here)."""
        stands = PageAction.KEEP if judged else PageAction.LAST
        if not progress.verifies(window, page):
            return stands, records
        yield Batch(records, None)  # real rows; re-reads are de-duplicated
        stopped = yield from self._verify_boundary(window, page, progress)
        return (PageAction.STOP if stopped else stands), []

    def _advance(
        self, window: Window, page: int, result: RowsetPage, progress: _Pass
    ) -> dict[str, Any]:
        """Move the cursor past a page that stands; return the state that records it."""
        window.boundary = identity_digest(row_identity(result.items[-1]))
        window.boundary_at = None
        progress.checks[page + 1] = (page * self.plan.page_size, window.boundary)
        window.next_page = page + 1
        window.count_seen = result.count
        return self._owned_state(window)

    def _verify_boundary(
        self, window: Window, page: int, progress: _Pass
    ) -> Generator[Batch, None, Outcome | None]:
        """Is the last row read before ``page`` still where it was?

        In client mode (and in server mode once rows entered the window) the set can also
        grow, so counts prove nothing (inserts mask deletes).
        Checked after the read, so shifts before or during it are caught. If the row moved,
        re-read backwards until it turns up again: every row that shifted back past the
        cursor lies between it and this page.
        """
        position, expected = progress.checks[page]
        if not self._boundary_moved(window, position, expected):
            return None
        return (yield from self._walk_back(window, page, expected, progress))

    def _accept(
        self, items: list[dict[str, Any]], window: Window, progress: _Pass, page: int
    ) -> list[dict[str, Any]]:
        # Every row of every page passes here: the window's bounds and the callables are
        # looked up once per page, and Window.contains is spelled out inline.
        records = []
        lower, upper = window.lower, window.upper
        bounded = lower is not None or upper is not None
        replication_value, convert, stats = self.replication_value, self.convert, self.stats
        first_read = progress.seen.first_read
        for item in items:
            if bounded:
                value = replication_value(item)
                if value is None:
                    stats.null_replication_key += 1
                    continue
                if (lower is not None and value < lower) or (upper is not None and value >= upper):
                    stats.outside_window += 1
                    progress.newer += upper is not None and value >= upper
                    continue
            if not first_read(row_identity(item), page):
                stats.duplicates += 1
                continue
            if upper is not None and not self.recent.note(item, value, upper):
                stats.already_emitted += 1
                continue
            records.append(convert(item))
        stats.emitted += len(records)
        progress.emitted += len(records)
        return records
