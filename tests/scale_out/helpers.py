"""What the scale-out tests share: waiting on the sandbox's clock, reading what Insider got."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from api_sandbox.testing import SandboxProcess

EMAIL_ONLY = json.dumps([{"type": "email", "field": "EmailAddress"}])


def sandbox_now(sandbox: SandboxProcess) -> datetime:
    """The sandbox's clock (its HTTP Date header, whole seconds)."""
    with urllib.request.urlopen(f"{sandbox.sfmc_url}/_sandbox/state", timeout=10) as resp:  # noqa: S310
        return parsedate_to_datetime(resp.headers["Date"])


def wait_until_change_is_readable(sandbox: SandboxProcess, change: dict[str, Any]) -> None:
    """Wait until a run starting now reads a change just made.

    A run's window ends a second before the server's clock at its start (ModifiedDate has
    whole seconds), so a change is in the next run's window once the sandbox's clock is two
    seconds past its stamp. Polls the sandbox's clock with a deadline.
    """
    due = datetime.fromisoformat(change["stamped"]) + timedelta(seconds=2)
    deadline = time.monotonic() + 30
    while sandbox_now(sandbox) < due:
        assert time.monotonic() < deadline, "the sandbox clock did not advance"
        time.sleep(0.2)


def users_sent(sandbox: SandboxProcess, since: int = 0) -> int:
    """Users in the Insider upsert requests from request number `since` on."""
    return sum(r["users"] for r in sandbox.requests()[since:])


def upserts_by_email(sandbox: SandboxProcess) -> dict[str, int]:
    """How many upserts each Insider profile (by lowercased email) received."""
    return {p["identifiers"]["email"].lower(): p["upserts"] for p in sandbox.profiles()}
