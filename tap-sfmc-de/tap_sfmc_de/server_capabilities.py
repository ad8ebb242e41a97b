"""What this SFMC server really does with ``$filter`` dates and row order, proved on rows.

Nothing here is taken from documentation (there is none for rowset ``$filter``/``$orderBy``):

- **Date literals.** A row just read, with replication key m, must come back for
  ``rk ge m and rk lt m+1s`` (and a row of that second must be what is returned). If not,
  the server reads the literal another way (UTC instead of UTC-6, ISO 8601 only), and
  the next literal form is tried. When that one-second window holds every row of the DE,
  the window next to it must not return the row (else ``$filter`` is ignored). No form
  proved ⇒ client-side filtering.
- **Row order.** When ``$orderBy`` is ignored, offset paging is only sound over a default
  order that is the same on every request. Reading the first row of a page again must
  return the same row (a second read tells a concurrent insert/delete from a reshuffle).

The verdict is kept in STATE (``capabilities``) and re-checked every ``RECHECK_AFTER`` of
server time, so quiet runs stay cheap. Every probe is a budgeted rowset request.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tap_sfmc_de.errors import SfmcApiError
from tap_sfmc_de.rowset import RowsetPage
from tap_sfmc_de.status_policy import refuses_query
from tap_sfmc_de.values import format_sfmc_datetime, from_bookmark, to_bookmark

RECHECK_AFTER = dt.timedelta(days=1)
SECOND = dt.timedelta(seconds=1)
FAR_FUTURE = dt.datetime(2999, 1, 1, tzinfo=dt.UTC)
MIN_ROWS_TO_JUDGE_ORDER = 5  # a random order of fewer rows is sorted too often by chance


class FilterMode(StrEnum):
    """Where a window's rows are selected (the STATE value of ``mode``)."""

    SERVER = "server"  # by $filter on the replication key
    CLIENT = "client"  # by the tap, over a scan of every row


class LiteralForm(StrEnum):
    """How a date is written in ``$filter``, in the order they are tried."""

    SFMC_LOCAL = "sfmc-local"  # '5/8/2024 3:04:05 PM' in sfmc_timezone_offset
    ISO_UTC = "iso-utc"  # '2024-05-08T21:04:05Z'
    SFMC_UTC = "sfmc-utc"  # '5/8/2024 9:04:05 PM' (a server reading naive literals as UTC)


class Order(StrEnum):
    """What is known about the server's row order."""

    UNKNOWN = "unknown"
    STABLE = "stable"
    UNSTABLE = "unstable"


def literal(value: dt.datetime, form: LiteralForm, tz: dt.tzinfo) -> str:
    """A quoted ``$filter`` date literal.

    Args:
        value: Aware datetime.
        form: Literal form.
        tz: SFMC's offset (for the local form).

    Returns:
        The literal with its quotes.
    """
    if form == LiteralForm.ISO_UTC:
        return f"'{value.astimezone(dt.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}'"
    zone = dt.UTC if form == LiteralForm.SFMC_UTC else tz
    return f"'{format_sfmc_datetime(value, zone)}'"


@dataclass
class Verdict:
    """The run's view of the server, persisted as ``capabilities`` in STATE."""

    mode: FilterMode
    literal: LiteralForm = LiteralForm.SFMC_LOCAL
    order: Order = Order.UNKNOWN
    checked: dt.datetime | None = None

    def to_state(self) -> dict[str, Any]:
        """STATE form."""
        return {
            "mode": str(self.mode),
            "literal": str(self.literal),
            "order": str(self.order),
            "checked": to_bookmark(self.checked) if self.checked else None,
        }

    @classmethod
    def from_state(cls, data: Any) -> Verdict | None:
        """Parse the STATE form; anything else is a reason to probe again.

        Args:
            data: ``state["capabilities"]``.

        Returns:
            The verdict, or None when absent or not one this tap writes.
        """
        if not isinstance(data, Mapping) or data.get("mode") not in set(FilterMode):
            return None
        try:
            return cls(
                mode=FilterMode(data["mode"]),
                literal=LiteralForm(data.get("literal") or LiteralForm.SFMC_LOCAL),
                order=Order(data.get("order") or Order.UNKNOWN),
                checked=from_bookmark(data["checked"]) if data.get("checked") else None,
            )
        except (ValueError, TypeError):
            return None

    def is_fresh(self, now: dt.datetime) -> bool:
        """Whether the verdict may be reused instead of probing.

        Args:
            now: Server time.

        Returns:
            True when checked less than ``RECHECK_AFTER`` ago.
        """
        return self.checked is not None and dt.timedelta(0) <= now - self.checked < RECHECK_AFTER


@dataclass
class CapabilityProbe:
    """Runs the probes; ``probe(filter_expr)`` sends one budgeted 1-row rowset request."""

    probe: Callable[[str | None], RowsetPage]
    replication_key: str
    tz: dt.tzinfo
    replication_value: Callable[[Mapping[str, Any]], dt.datetime | None]
    logger: logging.Logger

    def decide(self, sample: RowsetPage, now: dt.datetime) -> Verdict:
        """Prove how ``$filter`` dates are read, on the sample's first row.

        Args:
            sample: The run's count probe (first row of the DE, total count).
            now: Server time (for ``checked``).

        Returns:
            The verdict (mode "client" when no literal form proved itself).
        """
        value = self.replication_value(sample.items[0]) if sample.items else None
        if value is None:
            return self._grammar_only(now)
        rejected = 0
        for form in LiteralForm:
            try:
                outcome = self._prove(form, value, sample.count)
            except SfmcApiError as exc:
                if not refuses_query(exc.status_code):
                    raise
                rejected += 1
                self.logger.info("SFMC rejected a %s date literal in $filter (%s)", form, exc)
                if rejected > 1:
                    break  # two refusals: $filter itself is refused, not one literal form
                continue
            if outcome is not None:
                return self._found(outcome, form, now)
        self.logger.info("$filter dates could not be proved on a real row: filtering on the client")
        return Verdict(FilterMode.CLIENT, checked=now)

    def _found(self, mode: FilterMode, form: LiteralForm, now: dt.datetime) -> Verdict:
        if mode == FilterMode.SERVER:
            self.logger.info(
                "$filter is honoured with %s date literals (proved on a real row): using "
                "server-side window filtering",
                form,
            )
        else:
            self.logger.info("$filter is ignored: using client-side window filtering")
        return Verdict(mode, form, checked=now)

    def _between(self, form: LiteralForm, low: dt.datetime, high: dt.datetime) -> str:
        rk = self.replication_key
        return f"{rk} ge {literal(low, form, self.tz)} and {rk} lt {literal(high, form, self.tz)}"

    def _inside(self, page: RowsetPage, low: dt.datetime, high: dt.datetime) -> bool:
        if not page.items:
            return False
        value = self.replication_value(page.items[0])
        return value is not None and low <= value < high

    def _prove(self, form: LiteralForm, value: dt.datetime, total: int) -> FilterMode | None:
        """SERVER, CLIENT (filter ignored) or None (this form is misread)."""
        second = value.replace(microsecond=0)
        hit = self.probe(self._between(form, second, second + SECOND))
        if hit.count == 0 or not self._inside(hit, second, second + SECOND):
            self.logger.info("A %s date literal selected the wrong rows; trying another", form)
            return None
        if hit.count < total:
            return FilterMode.SERVER
        # Every row lies in that second - or the filter is ignored: ask for the next second.
        after = self.probe(self._between(form, second + SECOND, second + 2 * SECOND))
        if after.count == 0 or self._inside(after, second + SECOND, second + 2 * SECOND):
            return FilterMode.SERVER
        return FilterMode.CLIENT

    def _grammar_only(self, now: dt.datetime) -> Verdict:
        """No row with a replication key at hand: the window grammar on an empty range."""
        far = literal(FAR_FUTURE, LiteralForm.SFMC_LOCAL, self.tz)
        rk = self.replication_key
        try:
            page = self.probe(f"{rk} ge {far} and {rk} lt {far}")
        except SfmcApiError as exc:
            if not refuses_query(exc.status_code):
                raise
            self.logger.info("SFMC rejected $filter (%s); filtering on the client", exc)
            return Verdict(FilterMode.CLIENT, checked=now)
        mode = FilterMode.SERVER if page.count == 0 else FilterMode.CLIENT
        self.logger.info(
            "$filter is %s (date literals not proved: no row with a %s at hand): using "
            "%s-side window filtering",
            "honoured" if mode == FilterMode.SERVER else "ignored",
            rk,
            mode,
        )
        return Verdict(mode, checked=None)  # unproved: probe again next run


def looks_sorted(keys: Sequence[str]) -> bool:
    """Whether primary-key values are in ascending order (case-insensitive, like SQL Server).

    Args:
        keys: The page's single-column primary-key values, as served.

    Returns:
        True for an ascending sequence of at least ``MIN_ROWS_TO_JUDGE_ORDER`` keys.
    """
    if len(keys) < MIN_ROWS_TO_JUDGE_ORDER:
        return False
    folded = [k.casefold() for k in keys]
    return folded == sorted(folded)


def judge_order(first_rows: Sequence[str], reread: Callable[[], Sequence[str]]) -> Order:
    """Read a run of a page's rows again: the same rows in the same order mean a stable order.

    A run, not one row: a reshuffle lands the same single row at a position again with a
    chance of 1 in the window's rows, which on a small DE is likely; the same run of rows
    in the same order is not.

    Args:
        first_rows: Digests of a run of rows, as the page returned them.
        reread: Sends one request for the same positions; returns the digests of that run.

    Returns:
        STABLE or UNSTABLE. A mismatch is read once more: a concurrent insert or delete
        moves rows once (two re-reads agree), a reshuffle moves them every time.
    """
    again = list(reread())
    if again == list(first_rows):
        return Order.STABLE
    return Order.STABLE if list(reread()) == again else Order.UNSTABLE
