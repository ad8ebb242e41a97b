"""Fault injection rules.

A rule skips the first ``after`` matching requests, then fires ``times`` times (or
forever when ``times`` is null).

Rules are matched by endpoint name (``token``, ``rowset``, ``fields``, ``soap``,
``soap_rows`` (SOAP DataExtensionObject retrieves only), ``upsert``, ``columns`` or
``*``). Each matching request bumps every matching rule's counter; the first rule
that is due fires.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

ENDPOINTS = ("token", "rowset", "fields", "soap", "soap_rows", "upsert", "columns", "*")
ACTIONS = ("status", "drop", "delay")


class FaultError(ValueError):
    """Invalid fault rule."""


@dataclass
class FaultRule:
    """One rule; see the module docstring and README for semantics."""

    endpoint: str
    action: str = "status"
    status: int = 500
    retry_after: int | None = None
    errorcode: int | None = None  # SFMC REST body errorcode (50100 rate limit, 50200 blocked)
    message: str | None = None
    body: Any = None  # explicit body override (JSON value, or a string sent as text)
    delay_seconds: float = 0.0
    after: int = 0
    times: int | None = 1
    matched: int = 0
    fired: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        """Build and validate a rule from JSON.

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
        if rule.endpoint not in ENDPOINTS:
            raise FaultError(f"endpoint must be one of {ENDPOINTS}")
        if rule.action not in ACTIONS:
            raise FaultError(f"action must be one of {ACTIONS}")
        if rule.action == "delay" and rule.delay_seconds <= 0:
            raise FaultError("delay needs delay_seconds > 0")
        return rule

    def to_json(self) -> dict[str, Any]:
        """JSON form including counters."""
        return asdict(self)


class Faults:
    """Thread-safe list of rules."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rules: list[FaultRule] = []

    def add(self, rules: list[dict[str, Any]]) -> list[FaultRule]:
        """Validate and append rules (all or nothing)."""
        parsed = [FaultRule.from_json(r) for r in rules]
        with self._lock:
            self.rules.extend(parsed)
        return parsed

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self.rules.clear()

    def check(self, endpoint: str, alias: str | None = None) -> FaultRule | None:
        """Count this request against the rules and return the rule that fires, if any.

        ``alias`` is a finer name the request also answers to (``soap_rows``).
        """
        due = None
        names = {endpoint, alias or endpoint, "*"}
        with self._lock:
            for rule in self.rules:
                if rule.endpoint not in names:
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
