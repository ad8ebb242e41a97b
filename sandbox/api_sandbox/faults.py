"""Fault injection rules.

A rule skips the first ``after`` matching requests, then fires ``times`` times (or
forever when ``times`` is null).

Rules are matched by endpoint name: any route's ``endpoint`` or alias in ``routes.py``
(``routes.FAULT_ENDPOINTS``, handed to ``Faults``: ``token``, ``rowset``, ``fields``,
``soap``, ``soap_rows`` (SOAP DataExtensionObject retrieves only), ``upsert``,
``columns``), or ``*``. Each matching request bumps every
matching rule's counter; the first rule that is due fires.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from enum import StrEnum
from http import HTTPStatus
from typing import Any


class FaultAction(StrEnum):
    """What a firing rule does."""

    # transport faults
    STATUS = "status"  # answer with ``status`` in the API's error shape
    DROP = "drop"  # close the connection without answering
    DELAY = "delay"  # sleep ``delay_seconds``, then serve normally
    # Page-content faults: the request is answered 200, but the page lies (REST rowset;
    # empty_page and long_page also on SOAP row retrieves, endpoint "soap_rows").
    EMPTY_PAGE = "empty_page"
    COUNT_JUMP = "count_jump"
    LONG_PAGE = "long_page"


class EmptyItems(StrEnum):
    """How an ``empty_page`` fault empties the page."""

    ABSENT = "absent"  # no ``items`` key (what a real empty page looks like)
    EMPTY = "empty"  # ``items: []``


TRANSPORT_ACTIONS = (FaultAction.STATUS.value, FaultAction.DROP.value, FaultAction.DELAY.value)
CONTENT_ACTIONS = tuple(a.value for a in FaultAction if a.value not in TRANSPORT_ACTIONS)
ACTIONS = TRANSPORT_ACTIONS + CONTENT_ACTIONS
EMPTY_ITEMS = tuple(e.value for e in EmptyItems)


class FaultError(ValueError):
    """Invalid fault rule."""


@dataclass
class FaultRule:
    """One rule; see the module docstring and README for semantics."""

    endpoint: str
    action: str = FaultAction.STATUS
    status: int = HTTPStatus.INTERNAL_SERVER_ERROR
    retry_after: int | None = None
    errorcode: int | None = None  # SFMC REST body errorcode (50100 rate limit, 50200 blocked)
    message: str | None = None
    body: Any = None  # explicit body override (JSON value, or a string sent as text)
    delay_seconds: float = 0.0
    page: int | None = None  # rowset only: match only requests for this page number
    empty_items: str = EmptyItems.ABSENT  # empty_page: "absent" (no items key) or "empty" ([])
    count_delta: int = 0  # count_jump: added to count on the faulted page (+k or -k)
    extra_rows: int = 0  # long_page: rows beyond $pageSize on the faulted page
    after: int = 0
    times: int | None = 1
    matched: int = 0
    fired: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any], endpoints: tuple[str, ...]) -> FaultRule:
        """Build and validate a rule from JSON; ``endpoints`` are the names it may target.

        Raises:
            FaultError: on unknown keys or values.
        """
        data = dict(data)
        if "delay" in data:  # friendly alias
            data.setdefault("delay_seconds", data.pop("delay"))
        allowed = set(cls.__dataclass_fields__) - {"matched", "fired"}
        unknown = set(data) - allowed
        if unknown:
            raise FaultError(f"unknown fault keys {sorted(unknown)}")
        try:
            rule = cls(**data)
        except TypeError as exc:
            raise FaultError(str(exc)) from exc
        if rule.endpoint not in endpoints:
            raise FaultError(f"endpoint must be one of {endpoints}")
        if rule.action not in ACTIONS:
            raise FaultError(f"action must be one of {ACTIONS}")
        if rule.action == FaultAction.DELAY and rule.delay_seconds <= 0:
            raise FaultError("delay needs delay_seconds > 0")
        rule._check_content()
        return rule

    def _check_content(self) -> None:
        paged = {"rowset"} | ({"soap_rows"} if self.is_content else set())
        if self.page is not None and (self.endpoint not in paged or self.page < 1):
            raise FaultError(
                "page needs endpoint 'rowset' (or 'soap_rows' for content actions) and >= 1"
            )
        if self.action not in CONTENT_ACTIONS:
            return
        allowed = ("rowset",) if self.action == FaultAction.COUNT_JUMP else ("rowset", "soap_rows")
        if self.endpoint not in allowed:
            raise FaultError(f"{self.action} applies to endpoint {' or '.join(allowed)} only")
        if self.empty_items not in EMPTY_ITEMS:
            raise FaultError(f"empty_items must be one of {EMPTY_ITEMS}")
        if self.action == FaultAction.COUNT_JUMP and self.count_delta == 0:
            raise FaultError("count_jump needs a non-zero count_delta")
        if self.action == FaultAction.LONG_PAGE and self.extra_rows < 1:
            raise FaultError("long_page needs extra_rows >= 1")

    @property
    def is_content(self) -> bool:
        """Whether the rule distorts a 200 page rather than the transport."""
        return self.action in CONTENT_ACTIONS

    def to_json(self) -> dict[str, Any]:
        """JSON form including counters."""
        return asdict(self)


class Faults:
    """Thread-safe list of rules."""

    def __init__(self, endpoints: tuple[str, ...]) -> None:
        self.endpoints = endpoints  # the routes' fault targets (routes.FAULT_ENDPOINTS)
        self._lock = threading.Lock()
        self.rules: list[FaultRule] = []

    def add(self, rules: list[dict[str, Any]]) -> list[FaultRule]:
        """Validate and append rules (all or nothing)."""
        parsed = [FaultRule.from_json(r, self.endpoints) for r in rules]
        with self._lock:
            self.rules.extend(parsed)
        return parsed

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self.rules.clear()

    def check(
        self, endpoint: str, alias: str | None = None, page: int | None = None
    ) -> FaultRule | None:
        """Count this request against the transport rules; return the one that fires.

        ``alias`` is a finer name the request also answers to (``soap_rows``); ``page``
        is the rowset page asked for, which rules with ``page`` must match.
        """
        return self._check(endpoint, alias, page, content=False)

    def check_content(self, endpoint: str, page: int) -> FaultRule | None:
        """Count a page about to be served against the content rules; return the due one."""
        return self._check(endpoint, None, page, content=True)

    def _check(
        self, endpoint: str, alias: str | None, page: int | None, *, content: bool
    ) -> FaultRule | None:
        due = None
        names = {endpoint, alias or endpoint, "*"}
        with self._lock:
            for rule in self.rules:
                if rule.endpoint not in names or rule.is_content != content:
                    continue
                if rule.page is not None and rule.page != page:
                    continue
                rule.matched += 1
                if (
                    due is None
                    and rule.matched > rule.after
                    and (rule.times is None or rule.fired < rule.times)
                ):
                    rule.fired += 1
                    due = rule
        return due

    def to_json(self) -> list[dict[str, Any]]:
        """Rules with counters."""
        with self._lock:
            return [r.to_json() for r in self.rules]
