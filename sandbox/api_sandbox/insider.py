"""Insider One ``POST /api/user/v1/upsert`` emulation.

Request checks and an in-memory profile store; per-user validation is
``insider_validation.py``. Rules the sources do not spell out (>1,000 users, invalid
JSON) are marked as guesses.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from api_sandbox.config import AppendFlagPlacement, SandboxConfig
from api_sandbox.errors import InsiderError
from api_sandbox.insider_validation import validate_user

ACCESS_DENIED = {
    "success": False,
    "message": "Access Denied. You do not have sufficient access to perform this action.",
}
AUTH_FAILED = {"success": False, "message": "Partner token authentication failed."}
PARTNER_INVALID = {"success": False, "message": "Partner is invalid."}
# The cross-API error page lists all three; which one upsert uses is uncertain (§2.2, §9 q7).
AUTH_FAILURE_BODIES = {
    HTTPStatus.BAD_REQUEST: PARTNER_INVALID,
    HTTPStatus.UNAUTHORIZED: AUTH_FAILED,
    HTTPStatus.FORBIDDEN: ACCESS_DENIED,
}
# The contacts table of ``POST /api/user/v3/metadata/columns`` (insider-api.md §4): default
# attributes under their short keys (AC-DEFATTR, PM), custom attributes as ``c_<name>``.
DEFAULT_COLUMNS = [
    {"key": "em", "display_name": "Email", "type": "string"},
    {"key": "pn", "display_name": "Phone Number", "type": "string"},
    {"key": "uuid", "display_name": "UUID", "type": "string"},
    {"key": "na", "display_name": "Name", "type": "string"},
    {"key": "su", "display_name": "Surname", "type": "string"},
    {"key": "co", "display_name": "Country", "type": "string"},
    {"key": "ci", "display_name": "City", "type": "string"},
    {"key": "la", "display_name": "Language", "type": "string"},
    {"key": "ge", "display_name": "Gender", "type": "string"},
    {"key": "ag", "display_name": "Age", "type": "number"},
    {"key": "bi", "display_name": "Birthday", "type": "date"},
    {"key": "eo", "display_name": "Email Optin", "type": "boolean"},
    {"key": "so", "display_name": "SMS Optin", "type": "boolean"},
    {"key": "wo", "display_name": "WhatsApp Optin", "type": "boolean"},
    {"key": "gdpr", "display_name": "GDPR Optin", "type": "boolean"},
]
COLUMN_TABLES = ("contacts", "events")


def _column_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    return "string"


@dataclass
class Profile:
    """A stored user profile."""

    pid: int
    identifiers: dict[str, Any] = field(default_factory=dict)
    insider_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    upserts: int = 0
    index_keys: set[str] = field(default_factory=set)  # its entries in Insider.index

    def to_json(self) -> dict[str, Any]:
        """Admin JSON."""
        return {
            "id": self.pid,
            "identifiers": self.identifiers,
            "insider_id": self.insider_id,
            "attributes": self.attributes,
            "events": self.events,
            "upserts": self.upserts,
        }


def _merge_attrs(target: dict[str, Any], incoming: dict[str, Any], append: bool) -> None:
    for key, value in incoming.items():
        if key == "custom" and isinstance(value, dict):
            _merge_attrs(target.setdefault("custom", {}), value, append)
        elif append and isinstance(value, list) and isinstance(target.get(key), list):
            target[key] = target[key] + value
        else:
            target[key] = value


class Insider:
    """Upsert endpoint state: profiles, request log, counters."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self.profiles: dict[int, Profile] = {}
        self.index: dict[str, int] = {}  # "email:x" -> profile id
        self.requests: list[dict[str, Any]] = []
        self.users_accepted = 0
        self.users_rejected = 0
        self._ids = itertools.count(1)

    def reset(self) -> None:
        """Forget profiles, requests and counters."""
        with self._lock:
            self.profiles.clear()
            self.index.clear()
            self.requests.clear()
            self.users_accepted = self.users_rejected = 0
            self._ids = itertools.count(1)

    def check_auth(self, partner: str | None, token: str | None) -> None:
        """Header check; partner must match exactly (uppercase fails).

        Raises:
            InsiderError: on bad credentials.
        """
        if partner != self.config.insider_partner or token != self.config.insider_api_key:
            status = self.config.insider_auth_failure_status
            raise InsiderError(status, AUTH_FAILURE_BODIES[status])

    def parse(
        self, content_type: str, raw: bytes, decode: Callable[[], Any] | None = None
    ) -> dict[str, Any]:
        """Whole-request checks: content type, size, JSON, users.

        Args:
            content_type: The request's Content-Type.
            raw: The body.
            decode: Decodes ``raw`` as JSON (the request's cached decode); default json.loads.

        Raises:
            InsiderError: for any request-level 4xx.
        """
        cfg = self.config
        if "application/json" not in content_type.lower():
            raise InsiderError(
                HTTPStatus.BAD_REQUEST, {"error": "content type must be application/json"}
            )
        limit = cfg.insider_max_body_bytes
        if len(raw) > limit:
            raise InsiderError(
                cfg.insider_oversize_status,
                {"error": f"request body is bigger than maximum allowed size {limit:,} bytes"},
            )
        try:
            body = decode() if decode is not None else json.loads(raw)
        except ValueError:
            # Body shape for invalid JSON is uncertain (§9 q6).
            raise InsiderError(
                HTTPStatus.BAD_REQUEST, {"error": "Request data is not in valid JSON format."}
            ) from None
        if not isinstance(body, dict) or "users" not in body or body["users"] is None:
            raise InsiderError(
                HTTPStatus.BAD_REQUEST, {"error": "users must be defined: bad request"}
            )
        if not isinstance(body["users"], list):
            raise InsiderError(
                HTTPStatus.BAD_REQUEST, {"error": "users must be an array: bad request"}
            )
        if len(body["users"]) > cfg.insider_max_users:
            # Undocumented: status and message are the sandbox's guess.
            raise InsiderError(
                cfg.insider_max_users_status,
                {"error": f"users cannot be more than {cfg.insider_max_users}: bad request"},
            )
        return body

    def upsert(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate users, store the valid ones and build the 200 body."""
        users = body["users"]
        errors: dict[str, list[str]] = {}
        ok = 0
        failed = 0
        placement = self.config.insider_append_flag_placement
        top_append = (
            _append_flag(body, default=True) if placement != AppendFlagPlacement.USER else True
        )
        with self._lock:
            for i, user in enumerate(users):
                user_errors = validate_user(i, user)
                if user_errors:
                    failed += 1
                    for key, msgs in user_errors.items():
                        errors.setdefault(key, []).extend(msgs)
                    continue
                ok += 1
                append = (
                    _append_flag(user, top_append)
                    if placement != AppendFlagPlacement.TOP
                    else top_append
                )
                self._store(user, append)
            self.users_accepted += ok
            self.users_rejected += failed
        fail: dict[str, Any] = {"count": failed, "errors": errors} if failed else {}
        return {"data": {"successful": {"count": ok} if ok else {}, "fail": fail}}

    def _store(self, user: dict[str, Any], append: bool) -> None:
        identifiers = dict(user.get("identifiers") or {})
        keys = [f"{k}:{v}" for k, v in identifiers.items() if k != "custom"]
        keys += [f"custom.{k}:{v}" for k, v in (identifiers.get("custom") or {}).items()]
        if user.get("insider_id"):
            keys.append(f"insider_id:{user['insider_id']}")
        matches = sorted({self.index[k] for k in keys if k in self.index})
        if matches:
            profile = self.profiles[matches[0]]
            for other_id in matches[1:]:  # identifiers shared across profiles: merge them
                other = self.profiles.pop(other_id)
                _merge_attrs(profile.attributes, other.attributes, append=True)
                _merge_identifiers(profile.identifiers, other.identifiers)
                profile.events.extend(other.events)
                profile.upserts += other.upserts
                # Re-point only the absorbed profile's keys: scanning the whole index
                # made every merge O(profiles).
                for k in other.index_keys:
                    self.index[k] = profile.pid
                profile.index_keys |= other.index_keys
        else:
            profile = Profile(next(self._ids))
            self.profiles[profile.pid] = profile
        _merge_identifiers(profile.identifiers, identifiers)
        if user.get("insider_id"):
            profile.insider_id = user["insider_id"]
        _merge_attrs(profile.attributes, user.get("attributes") or {}, append)
        profile.events.extend(user.get("events") or [])
        profile.upserts += 1
        for k in keys:
            self.index[k] = profile.pid
        profile.index_keys.update(keys)

    def columns(self, raw: bytes) -> list[dict[str, Any]]:
        """``metadata/columns``: the attributes (or events) this account knows.

        Custom attributes are the ones the config defines (``insider_custom_attributes``,
        created in the panel on a real account) plus any a stored profile holds.

        Raises:
            InsiderError: for a body without a known ``table`` (status and message
                are the sandbox's guess: the endpoint is undocumented).
        """
        try:
            table = json.loads(raw or b"{}").get("table")
        except (ValueError, AttributeError):
            table = None
        if table not in COLUMN_TABLES:
            raise InsiderError(
                HTTPStatus.BAD_REQUEST,
                {"error": f"table must be one of {', '.join(COLUMN_TABLES)}: bad request"},
            )
        with self._lock:
            profiles = list(self.profiles.values())
        if table == "events":
            names = sorted({e.get("event_name") for p in profiles for e in p.events} - {None})
            return [{"key": n, "display_name": n, "params": []} for n in names]
        custom: dict[str, str] = dict.fromkeys(self.config.insider_custom_attributes, "string")
        for profile in profiles:
            for name, value in (profile.attributes.get("custom") or {}).items():
                custom.setdefault(name, _column_type(value))
        return [
            *DEFAULT_COLUMNS,
            *({"key": f"c_{n}", "display_name": n, "type": t} for n, t in sorted(custom.items())),
        ]

    def record(self, entry: dict[str, Any]) -> None:
        """Append to the request log."""
        entry.setdefault("time", time.time())
        with self._lock:
            self.requests.append(entry)

    def requests_json(self) -> list[dict[str, Any]]:
        """The request log, oldest first."""
        with self._lock:
            return [dict(entry) for entry in self.requests]

    def profiles_json(self) -> list[dict[str, Any]]:
        """All profiles in creation order."""
        with self._lock:
            return [p.to_json() for p in sorted(self.profiles.values(), key=lambda p: p.pid)]


def _merge_identifiers(target: dict[str, Any], incoming: dict[str, Any]) -> None:
    for key, value in incoming.items():
        if key == "custom" and isinstance(value, dict):
            target.setdefault("custom", {}).update(value)
        else:
            target.setdefault(key, value)  # upsert does not change an existing identifier


def _append_flag(obj: dict[str, Any], default: bool) -> bool:
    """``append`` wins over ``not_append`` when both are present (PM, AC-UPSERT)."""
    if isinstance(obj.get("append"), bool):
        return obj["append"]
    if isinstance(obj.get("not_append"), bool):
        return not obj["not_append"]
    return default
