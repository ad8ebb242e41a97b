"""Live changes to a DE while a sync is reading it.

A scenario fires once, right after page ``after_page`` of the rowset for its DE has
been served (by either URL form), and applies update/insert/delete through the store,
which stamps ModifiedDate with the sandbox's "now" (minus ``lag_seconds``, default the
``commit_lag_seconds`` switch) and records the changed keys.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any


class ScenarioError(ValueError):
    """Invalid scenario."""


@dataclass
class Scenario:
    """After page N of DE K has been served: update u, insert i, delete d rows."""

    de_key: str = "Customers"
    after_page: int = 1
    update: int = 0
    insert: int = 0
    delete: int = 0
    lag_seconds: int | None = None  # ModifiedDate this far in the past; None: the switch
    fired: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scenario:
        """Validate and build.

        Raises:
            ScenarioError: on unknown keys or bad values.
        """
        data = dict(data)
        if "key" in data:
            data.setdefault("de_key", data.pop("key"))
        unknown = set(data) - (set(cls.__dataclass_fields__) - {"fired"})
        if unknown:
            raise ScenarioError(f"unknown scenario keys {sorted(unknown)}")
        try:
            sc = cls(**data)
        except TypeError as exc:
            raise ScenarioError(str(exc)) from exc
        if sc.after_page < 1 or min(sc.update, sc.insert, sc.delete, sc.lag_seconds or 0) < 0:
            raise ScenarioError("after_page must be >= 1 and counts and lag_seconds >= 0")
        return sc

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


class Scenarios:
    """Pending and fired scenarios."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[Scenario] = []

    def add(self, data: dict[str, Any]) -> Scenario:
        """Register a scenario."""
        sc = Scenario.from_json(data)
        with self._lock:
            self.items.append(sc)
        return sc

    def clear(self) -> None:
        """Forget all scenarios."""
        with self._lock:
            self.items.clear()

    def due(self, de_key: str, page: int) -> list[Scenario]:
        """Scenarios that fire now (marked fired)."""
        out = []
        with self._lock:
            for sc in self.items:
                if not sc.fired and sc.de_key.lower() == de_key.lower() and page >= sc.after_page:
                    sc.fired = True
                    out.append(sc)
        return out

    def to_json(self) -> list[dict[str, Any]]:
        """All scenarios."""
        with self._lock:
            return [s.to_json() for s in self.items]
