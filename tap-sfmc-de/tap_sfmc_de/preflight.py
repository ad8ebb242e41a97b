"""``tap-sfmc-de --preflight``: what a first run would find, checked before it runs.

One line per check, graded OK / WARN / FAIL with the fix: the token and its scopes; per
DE key whether it is an external key (and not a DE *name*), its fields, primary key and
replication key, its row count; what the server does with ``$filter`` date literals,
``$orderBy`` and its default order (the run-time probes of
:mod:`tap_sfmc_de.server_capabilities`, run on demand); and the mode and request cost of
a full first run and of a quiet run at the configured ``max_pages_per_run``.

It reads at most ``PREFLIGHT_REQUESTS`` small rowset pages per DE (1-10 rows each), emits
no Singer message and writes no state.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from tap_sfmc_de.auth import TokenManager
from tap_sfmc_de.client import HttpClient
from tap_sfmc_de.config_schema import FilterSupport
from tap_sfmc_de.errors import SfmcApiError, SfmcConfigError, TokenExpiredError
from tap_sfmc_de.page_reader import BudgetSpentError, PageReader, RequestKind
from tap_sfmc_de.rowset import RowsetClient, RowsetPage
from tap_sfmc_de.schema import DEField, key_properties
from tap_sfmc_de.server_capabilities import (
    CapabilityProbe,
    LiteralForm,
    Order,
    judge_order,
    looks_sorted,
)
from tap_sfmc_de.soap import parse_field_retrieve, retrieve_fields
from tap_sfmc_de.status_policy import SCOPE_HINT
from tap_sfmc_de.values import ConversionProblemError, parse_sfmc_datetime
from tap_sfmc_de.windows import digests

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from tap_sfmc_de.settings import Settings

PREFLIGHT_REQUESTS = 12  # rowset requests per DE: count, literal probes, an order sample
ORDER_SAMPLE_ROWS = 10
QUIET_RUN_REQUESTS = 2  # count probe + the (empty) window's first page, server mode
LINE_WIDTH = 100
KEY_HINT = (
    "use the DE's External Key (Email Studio > Subscribers > Data Extensions > the DE > "
    "Properties, or Contact Builder > Data Extensions > the DE > External Key) in "
    "data_extension_keys"
)


class Grade(StrEnum):
    """A check's verdict."""

    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


class PreflightExit(IntEnum):
    """Exit codes of ``--preflight`` (documented in the README)."""

    OK = 0  # every check passed
    FAIL = 1  # at least one FAIL: fix it before going live
    WARN_ONLY = 10  # no FAIL, some WARN: a run would work; read the warnings


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    subject: str
    grade: Grade
    finding: str
    fix: str = ""


def exit_code(checks: Iterable[Check]) -> PreflightExit:
    """The exit code for a report.

    Args:
        checks: The report's lines.

    Returns:
        FAIL if any line failed, WARN_ONLY if any warned, else OK.
    """
    grades = {c.grade for c in checks}
    if Grade.FAIL in grades:
        return PreflightExit.FAIL
    return PreflightExit.WARN_ONLY if Grade.WARN in grades else PreflightExit.OK


def render(title: str, checks: list[Check], width: int = LINE_WIDTH) -> str:
    """The report as a table that fits one screen (long findings wrap under themselves).

    Args:
        title: First line.
        checks: The lines.
        width: Line width.

    Returns:
        The text, ending in a newline.
    """
    import textwrap  # noqa: PLC0415 - only the CLI renders

    subject_width = min(30, max([len("CHECK"), *(len(c.subject) for c in checks)]))
    indent = " " * (subject_width + 10)
    lines = [title, f"{'CHECK':<{subject_width}}  RESULT  DETAIL"]
    for check in checks:
        head = f"{check.subject[:subject_width]:<{subject_width}}  {check.grade:<6}  "
        lines += textwrap.wrap(
            check.finding, width, initial_indent=head, subsequent_indent=indent
        ) or [head]
        if check.fix:
            lines += textwrap.wrap(
                f"fix: {check.fix}", width, initial_indent=indent, subsequent_indent=indent + "  "
            )
    code = exit_code(checks)
    counts = {g: sum(c.grade == g for c in checks) for g in Grade}
    lines.append(
        f"{counts[Grade.OK]} OK, {counts[Grade.WARN]} WARN, {counts[Grade.FAIL]} FAIL "
        f"-> exit {int(code)}"
    )
    return "\n".join(lines) + "\n"


def run_preflight(settings: Settings, logger: logging.Logger) -> list[Check]:
    """Check the configured tenant and DEs.

    Args:
        settings: Validated settings.
        logger: Where the probes log (stderr).

    Returns:
        The report's lines.
    """
    http = HttpClient(settings.retry, logger=logger.getChild("http"))
    tokens = TokenManager(settings, http)
    try:
        token = tokens.get()
    except SfmcApiError as exc:
        return [Check("token", Grade.FAIL, str(exc))]
    checks = [Check("token", Grade.OK, f"issued; REST {token.rest_url}, SOAP {token.soap_url}")]
    scope = scope_check(token.scope)
    checks.append(scope)
    if scope.grade == Grade.FAIL:
        return checks  # SOAP answers a missing scope with "no fields": every DE would look wrong
    for key in settings.data_extension_keys:
        checks += DECheck(settings, http, tokens, key, logger).run()
    return checks


def scope_check(granted: str) -> Check:
    """Whether the token may read DE rows.

    Args:
        granted: The token response's ``scope``.

    Returns:
        The check.
    """
    if not granted:
        return Check(
            "scopes",
            Grade.WARN,
            "the token response lists no scopes; the rowset reads below show whether DE rows "
            "can be read",
        )
    if "data_extensions_read" not in granted.split():
        return Check(
            "scopes",
            Grade.FAIL,
            f"granted: {granted}; data_extensions_read is missing",
            SCOPE_HINT.removeprefix("the token lacks the 'data_extensions_read' scope: "),
        )
    return Check("scopes", Grade.OK, "data_extensions_read granted")


@dataclass
class DECheck:
    """The checks of one DE key."""

    settings: Settings
    http: HttpClient
    tokens: TokenManager
    key: str
    logger: logging.Logger

    def run(self) -> list[Check]:
        """Run the checks; a FAIL that makes the later ones meaningless ends them.

        Returns:
            This DE's lines.
        """
        try:
            fields = retrieve_fields(self.http, self.tokens, self.key)
        except SfmcApiError as exc:
            return [self._line("key", Grade.FAIL, str(exc))]
        if not fields:
            return [self._missing()]
        rk = self._replication_key(fields)
        checks = [
            self._line("key", Grade.OK, "an external key (CustomerKey) of this business unit"),
            self._fields(fields),
            rk,
        ]
        return checks + self._rowset_checks(fields, with_filter=rk.grade != Grade.FAIL)

    def _rowset_checks(self, fields: list[DEField], *, with_filter: bool) -> list[Check]:
        """Row count, ``$filter``, order and cost: every rowset request of the preflight."""
        reader = PageReader(
            RowsetClient(self.http, self.tokens, self.key),
            PREFLIGHT_REQUESTS,
            _order_by(fields),
            self.logger,
        )
        try:
            first = reader.read(RequestKind.COUNT, page=1, page_size=1)
        except SfmcApiError as exc:
            return [self._line("rows", Grade.FAIL, str(exc))]
        checks = [self._line("rows", Grade.OK, f"{first.count:,} rows")]
        if not with_filter:
            return checks  # the run would stop at discovery: no mode, no cost
        try:
            mode, probes, filter_check = self._filter(first, fields, reader)
            checks += [filter_check, self._order(first, reader)]
        except (SfmcApiError, SfmcConfigError) as exc:
            return [*checks, self._line("$filter/$orderBy", Grade.FAIL, str(exc))]
        except BudgetSpentError:  # pragma: no cover - the budget covers every probe
            return [*checks, self._line("probes", Grade.WARN, "preflight request budget spent")]
        return [*checks, self._cost(first.count, mode, probes)]

    def _line(self, what: str, grade: Grade, finding: str, fix: str = "") -> Check:
        return Check(f"{self.key}: {what}", grade, finding, fix)

    def _missing(self) -> Check:
        """No fields for this key: is it a DE *name*, or nothing at all?"""
        if self._exists_by_name():
            return self._line(
                "key",
                Grade.FAIL,
                f"'{self.key}' is the Name of a DE, not its external key (CustomerKey): the "
                "rowset and field APIs only take the key",
                KEY_HINT,
            )
        return self._line(
            "key",
            Grade.FAIL,
            f"no DE has the external key (or name) '{self.key}' in this business unit",
            f"{KEY_HINT}; check account_id (the MID of the BU that owns the DE)",
        )

    def _exists_by_name(self) -> bool:
        """SOAP ``DataExtensionObject[...]`` takes a name as well as a key (sfmc-api.md §2.6).

        A wildcard property returns OK with no rows for a DE that exists; an unknown one is
        an error status. One SOAP retrieve, no row data.
        """

        def prepare() -> dict[str, Any]:
            token = self.tokens.get()
            return {
                "url": f"{token.soap_url}Service.asmx",
                "headers": {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": "Retrieve"},
                "data": _object_probe_envelope(token.value, self.key).encode("utf-8"),
            }

        url = f"{self.tokens.get().soap_url}Service.asmx"
        try:
            response = self.http.send(
                "POST", url, kind="soap", prepare=prepare, on_remint=self.tokens.invalidate
            )
            status, _, _ = parse_field_retrieve(response.text)
        except (SfmcApiError, TokenExpiredError):
            return False
        return status == "OK"

    def _fields(self, fields: list[DEField]) -> Check:
        names = ", ".join(f"{f.name} ({f.field_type})" for f in fields[:8])
        more = f", … {len(fields) - 8} more" if len(fields) > 8 else ""  # noqa: PLR2004
        pk = key_properties(fields)
        if not pk:
            return self._line(
                "fields",
                Grade.WARN,
                f"{len(fields)} fields: {names}{more}; no primary key: rows are told apart by "
                "all their columns, so an updated row looks like a new one",
                "give the DE a primary key (e.g. the subscriber key) if it can have one",
            )
        return self._line(
            "fields", Grade.OK, f"{len(fields)} fields: {names}{more}; primary key {', '.join(pk)}"
        )

    def _replication_key(self, fields: list[DEField]) -> Check:
        if self.settings.fetch_mode != "incremental":
            return self._line(
                "replication key", Grade.OK, "not used (fetch_mode full reads every row)"
            )
        from tap_sfmc_de.tap import check_replication_key  # noqa: PLC0415 - tap imports us

        rk = self.settings.replication_key_for(self.key)
        try:
            check_replication_key(self.key, rk, fields)
        except SfmcConfigError as exc:
            finding, _, fix = str(exc).partition(": ")
            return self._line("replication key", Grade.FAIL, finding, fix)
        return self._line("replication key", Grade.OK, f"{rk} is a Date field")

    def _filter(
        self, first: RowsetPage, fields: list[DEField], reader: PageReader
    ) -> tuple[str, int, Check]:
        """Mode, probe requests spent, and the ``$filter`` line."""
        subject = "$filter dates"
        if self.settings.fetch_mode != "incremental":
            return "client", 0, self._line(subject, Grade.OK, "not used (fetch_mode full)")
        if first.count == 0:
            finding = "not checked: the DE is empty (the tap probes again when rows arrive)"
            return "server", 0, self._line(subject, Grade.WARN, finding)
        before = reader.total
        name = next(f.name for f in fields if f.name.lower() == rk_name(self.settings, self.key))
        outcomes: list[bool] = []  # per probe: was it refused (400)?

        def probe(expr: str | None) -> RowsetPage:
            try:
                page = reader.read(RequestKind.CAPABILITY, page=1, page_size=1, filter_expr=expr)
            except SfmcApiError as exc:
                outcomes.append(exc.status_code == HTTPStatus.BAD_REQUEST)
                raise
            outcomes.append(False)
            return page

        verdict = CapabilityProbe(
            probe=probe,
            replication_key=name,
            tz=self.settings.timezone,
            replication_value=lambda item: _value(item, name, self.settings.timezone),
            logger=self.logger,
        ).decide(first, dt.datetime.now(dt.UTC))
        line = self._filter_line(
            subject,
            verdict.mode,
            verdict.literal,
            proved=verdict.checked is not None,
            local_refused=bool(outcomes and outcomes[0]),
        )
        return verdict.mode, reader.total - before, line

    def _filter_line(
        self, subject: str, mode: str, form: LiteralForm, *, proved: bool, local_refused: bool
    ) -> Check:
        forced = self.settings.filter_support
        offset = _offset_text(self.settings.timezone)
        if mode == "client":
            if forced == "server":
                return self._line(
                    subject,
                    Grade.FAIL,
                    "the server ignores or refuses $filter, but filter_support is server: "
                    "windows would hold every row",
                    "set filter_support to auto (the tap then filters on its side)",
                )
            return self._line(
                subject,
                Grade.WARN,
                "$filter is ignored or refused: the tap filters on its side, so every run "
                "reads the whole DE (see cost)",
                "nothing to set; for a large DE raise max_pages_per_run or use fetch_mode full",
            )
        if not proved:
            return self._line(
                subject,
                Grade.WARN,
                "$filter is honoured, but its date literals could not be proved: the first row "
                "has no replication-key value",
                "have every writer set the replication key",
            )
        if forced == "client":
            return self._line(
                subject,
                Grade.WARN,
                f"$filter is honoured with {form} literals, but filter_support is client: "
                "every run reads the whole DE",
                "set filter_support to auto",
            )
        if form == LiteralForm.SFMC_LOCAL:
            return self._line(
                subject,
                Grade.OK,
                f"honoured; date literals are read in sfmc_timezone_offset ({offset}), "
                "proved on a real row",
            )
        reading = (
            "this server refuses 'M/d/yyyy h:mm:ss AM' date literals (ISO 8601 only)"
            if local_refused
            else "this server reads a naive date literal as UTC, not as SFMC time "
            f"({offset}): it selected the wrong rows"
        )
        return self._line(
            subject,
            Grade.WARN,
            f"honoured, but {reading}; proved on a real row, so the tap writes {form} "
            "literals and selects the right rows",
            "nothing to set in the tap; filters you write yourself on this tenant "
            "(API calls, scripts) must use the same form",
        )

    def _order(self, first: RowsetPage, reader: PageReader) -> Check:
        subject = "row order"
        size = min(ORDER_SAMPLE_ROWS, self.settings.page_size)
        if first.count <= size:
            return self._line(subject, Grade.OK, "not needed: the DE fits one page")
        sample = reader.read(RequestKind.DATA, page=1, page_size=size)
        if not sample.items:  # pragma: no cover - count said there are rows
            return self._line(subject, Grade.WARN, "not checked: the sample page was empty")
        keys = [str(next(iter((i.get("keys") or {"": ""}).values()), "")) for i in sample.items]
        if reader.order_by and not reader.order_by_refused and looks_sorted(keys):
            return self._line(subject, Grade.OK, f"$orderBy {reader.order_by} is honoured")
        why = (
            "no single-column primary key to order by"
            if not reader.order_by
            else "$orderBy is refused"
            if reader.order_by_refused
            else "$orderBy is ignored"
        )

        def reread() -> list[str]:
            return digests(reader.read(RequestKind.CAPABILITY, page=1, page_size=size).items)

        order = judge_order(digests(sample.items), reread)
        if order == Order.STABLE:
            return self._line(
                subject,
                Grade.OK,
                f"{why}; the default order is the same on every request, so offset paging is safe",
            )
        fits = math.ceil(first.count / self.settings.page_size) <= 1
        return self._line(
            subject,
            Grade.WARN if fits else Grade.FAIL,
            f"{why} and the default order changes between requests (the same positions "
            "returned other rows): paging by offset would skip and repeat rows"
            + ("; this DE fits one page, so it is still read whole" if fits else ""),
            "windows that fit one page are still read safely: raise page_size (at most 2500) "
            "or run more often",
        )

    def _cost(self, rows: int, mode: str, probes: int) -> Check:
        s = self.settings
        pages = max(1, math.ceil(rows / s.page_size))
        if mode == "server":
            # + the next window's (empty) first page, opened when the clock moved on meanwhile
            first_run = 1 + probes + pages + 1
            quiet = QUIET_RUN_REQUESTS
            what = "incremental, server-side windows ($filter)"
        else:
            # Client mode reads every row each run, each page with its boundary probe; a
            # run that proves $filter ignored first sent pages on the guess it is honoured.
            first_run = 1 + probes + 2 * pages - 1 + self._guessed_pages(pages)
            quiet = 1 + 2 * pages - 1
            what = (
                "incremental, client-side filtering"
                if s.fetch_mode == "incremental"
                else "full, every row on every run"
            )
        runs = math.ceil(first_run / s.max_pages_per_run)
        finding = (
            f"{what}; full first run ≈ {first_run:,} rowset requests "
            f"({runs:,} run{'s' if runs != 1 else ''} at max_pages_per_run={s.max_pages_per_run}, "
            f"page_size={s.page_size}); a quiet run ≈ {min(quiet, s.max_pages_per_run):,}"
        )
        if quiet > s.max_pages_per_run:
            return self._line(
                "mode and cost",
                Grade.WARN,
                finding + ": even a run with nothing new cannot read the whole DE",
                "raise max_pages_per_run or page_size",
            )
        return self._line("mode and cost", Grade.OK, finding)

    def _guessed_pages(self, pages: int) -> int:
        # WindowSync._start_during_probes: c - 1 pages of the window the proof would open.
        s = self.settings
        if s.fetch_mode != "incremental" or s.filter_support != FilterSupport.AUTO:
            return 0
        return min(s.page_concurrency - 1, 1 if s.start_date else pages)


def rk_name(settings: Settings, de_key: str) -> str:
    """The configured replication key of a DE, lowercased (as rowset items name it).

    Args:
        settings: Settings.
        de_key: DE key.

    Returns:
        The lowercased field name.
    """
    return settings.replication_key_for(de_key).lower()


def _order_by(fields: list[DEField]) -> str | None:
    pk = key_properties(fields)
    return f"{pk[0]} asc" if len(pk) == 1 else None


def _value(item: Mapping[str, Any], name: str, tz: dt.tzinfo) -> dt.datetime | None:
    lowered = name.lower()
    raw = (item.get("values") or {}).get(lowered) or (item.get("keys") or {}).get(lowered)
    if not raw:
        return None
    try:
        return parse_sfmc_datetime(str(raw), tz)
    except ConversionProblemError:
        return None


def _offset_text(tz: dt.tzinfo) -> str:
    offset = tz.utcoffset(None) or dt.timedelta(0)
    sign = "-" if offset < dt.timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _object_probe_envelope(token: str, name: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        f'<s:Header><fueloauth xmlns="http://exacttarget.com">{escape(token)}</fueloauth></s:Header>'
        '<s:Body><RetrieveRequestMsg xmlns="http://exacttarget.com/wsdl/partnerAPI">'
        f"<RetrieveRequest><ObjectType>DataExtensionObject[{escape(name)}]</ObjectType>"
        "<Properties>*</Properties></RetrieveRequest></RetrieveRequestMsg></s:Body></s:Envelope>"
    )


def report(settings: Settings, logger: logging.Logger) -> tuple[str, PreflightExit]:
    """Run the checks and render them.

    Args:
        settings: Validated settings.
        logger: Where the probes log.

    Returns:
        The table and the exit code.
    """
    checks = run_preflight(settings, logger)
    title = (
        f"tap-sfmc-de preflight: {len(settings.data_extension_keys)} DE key(s) at "
        f"{settings.auth_base_url} (nothing written, no state)"
    )
    return render(title, checks), exit_code(checks)


def config_failure(errors: list[str]) -> str:
    """The report when the config itself is invalid.

    Args:
        errors: Validation messages (no secret values).

    Returns:
        The table.
    """
    checks = [Check("config", Grade.FAIL, error) for error in errors]
    return render("tap-sfmc-de preflight: the config is invalid", checks)
