"""Request counts of one run, read from the sandbox's counters (what it saw, not the plugins' logs).

The counters survive between runs (``upsert_requests`` even survives ``reset_counters``),
so a run's counts are the difference of a snapshot after it and one before it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from api_sandbox.testing import SandboxProcess


@dataclass(frozen=True)
class Counts:
    """Requests the sandbox answered: rowset reads of any kind, upserts, users."""

    rowset_requests: int
    upsert_requests: int
    users_accepted: int
    users_rejected: int

    @classmethod
    def of(cls, sandbox: SandboxProcess) -> Counts:
        """The sandbox's counters now."""
        counters = sandbox.counters()
        return cls(
            counters["rowset_requests"]["total"],
            counters["upsert_requests"],
            counters["users_accepted"],
            counters["users_rejected"],
        )

    def __sub__(self, before: Counts) -> Counts:
        """What happened between ``before`` and this snapshot."""
        return Counts(*(getattr(self, f.name) - getattr(before, f.name) for f in fields(Counts)))
