"""Thin Insider handlers: headers checked, the model called, the request logged.

Every Insider request lands in the request log (``/_sandbox/requests``), rejected and
faulted ones too, so the log entry is built from the raw request before anything fails.
"""

from __future__ import annotations

import contextlib
import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from api_sandbox.errors import InsiderError
from api_sandbox.replies import Reply, ok

if TYPE_CHECKING:
    from api_sandbox.routes import Request


def _check_auth(req: Request) -> None:
    req.app.insider.check_auth(req.header("X-PARTNER-NAME"), req.header("X-REQUEST-TOKEN"))


def _entry(req: Request, endpoint: str, **peeked: Any) -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "bytes": len(req.body),
        "partner": req.header("X-PARTNER-NAME"),
        "platform": req.header("X-PLATFORM-NAME"),
        **peeked,
        "fault": False,
    }


def upsert_entry(req: Request) -> dict[str, Any]:
    """Request-log entry; user count and skip_hook are peeked even for rejects."""
    users: int | None = None
    skip_hook = None
    with contextlib.suppress(ValueError, TypeError):
        decoded = req.json_body
        if isinstance(decoded, dict):
            skip_hook = decoded.get("skip_hook", False)
            if isinstance(decoded.get("users"), list):
                users = len(decoded["users"])
    return _entry(req, "upsert", users=users, skip_hook=skip_hook)


def columns_entry(req: Request) -> dict[str, Any]:
    """Request-log entry; the table asked for is peeked even for rejects."""
    table = None
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        table = json.loads(req.body).get("table")
    return _entry(req, "columns", table=table)


def upsert(req: Request) -> Reply:
    """``POST /api/user/v1/upsert``."""
    insider = req.app.insider
    entry = upsert_entry(req)
    try:
        _check_auth(req)
        reply = insider.upsert(
            insider.parse(req.header("Content-Type") or "", req.body, lambda: req.json_body)
        )
    except InsiderError as exc:
        insider.record({**entry, "status": exc.status})
        raise
    insider.record(
        {
            **entry,
            "status": HTTPStatus.OK,
            "successful": reply["data"]["successful"].get("count", 0),
            "failed": reply["data"]["fail"].get("count", 0),
        }
    )
    return ok(reply)


def columns(req: Request) -> Reply:
    """Read-only ``metadata/columns`` (Insider's own n8n credential test), same auth."""
    insider = req.app.insider
    entry = columns_entry(req)
    try:
        _check_auth(req)
        reply = insider.columns(req.body)
    except InsiderError as exc:
        insider.record({**entry, "status": exc.status})
        raise
    insider.record({**entry, "status": HTTPStatus.OK})
    return ok(reply)
