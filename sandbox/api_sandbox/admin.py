"""Admin and inspection routes under ``/_sandbox/`` (JSON in, JSON out, no auth).

Served by both servers; they share one Sandbox, so either port works for any route.
"""

from __future__ import annotations

import json
from typing import Any

from api_sandbox.app import Sandbox
from api_sandbox.config import ConfigError
from api_sandbox.faults import FaultError
from api_sandbox.scenarios import ScenarioError
from api_sandbox.store import StoreError

Reply = tuple[int, Any]


def _body(raw: bytes) -> Any:
    if not raw:
        return {}
    return json.loads(raw)


def handle(
    app: Sandbox, role: str, method: str, path: str, *, query: dict[str, str], raw: bytes
) -> Reply:
    """Route one admin request; returns (status, JSON body)."""
    try:
        body = _body(raw)
    except ValueError:
        return 400, {"error": "admin body must be JSON"}
    parts = [p for p in path.split("/") if p][1:]  # drop "_sandbox"
    try:
        return _route(app, role, method, parts, query=query, body=body)
    except (ConfigError, FaultError, ScenarioError, StoreError, ValueError, TypeError) as exc:
        return 400, {"error": str(exc)}


def _route(  # noqa: PLR0911, PLR0912 - a flat routing table reads best
    app: Sandbox, role: str, method: str, parts: list[str], *, query: dict[str, str], body: Any
) -> Reply:
    head = parts[0] if parts else ""
    if method == "GET" and head in {"", "state"}:
        return 200, {"role": role, **app.state()}
    if head == "config":
        if method == "POST":
            app.config.update(body)
        return 200, app.config.to_json()
    if head == "reset" and method == "POST":
        app.reset()
        return 200, {"reset": True}
    if head == "counters" and parts[1:] == ["reset"] and method == "POST":
        app.reset_counters()
        return 200, app.state()["counters"]
    if head == "faults":
        if (method == "POST" and parts[1:] == ["clear"]) or method == "DELETE":
            app.faults.clear()
        elif method == "POST":
            rules = body.get("faults", []) if isinstance(body, dict) else body
            if isinstance(body, dict) and "endpoint" in body:
                rules = [body]
            app.faults.add(rules)
        return 200, app.faults.to_json()
    if head == "tokens" and parts[1:] == ["expire"] and method == "POST":
        return 200, {"expired": app.auth.expire_all()}
    if head == "request-tokens" and parts[1:] == ["expire"] and method == "POST":
        return 200, {"expired": app.rowset.expire_all()}
    if head == "scenario" and method == "POST":
        return 200, app.scenarios.add(body).to_json()
    if head == "scenarios":
        return 200, app.scenarios.to_json()
    if head == "profiles" and method == "GET":
        return 200, app.insider.profiles_json()
    if head == "requests" and method == "GET":
        return 200, app.insider.requests_json()
    if head == "des":
        return _des(app, method, parts[1:], query, body)
    return 404, {"error": f"no admin route {method} /_sandbox/{'/'.join(parts)}"}


def _des(app: Sandbox, method: str, parts: list[str], query: dict[str, str], body: Any) -> Reply:  # noqa: PLR0911
    if not parts:
        if method == "POST":
            return 200, app.store.create_from_spec(body).describe()
        return 200, [de.describe() for de in list(app.store.des.values())]
    de = app.store.get(parts[0])
    if de is None:
        return 404, {"error": f"no DE with key {parts[0]!r}"}
    action = parts[1] if len(parts) > 1 else ""
    if action == "" and method == "DELETE":
        app.store.drop(de.key)
        return 200, {"deleted": de.key}
    if action == "" and method == "GET":
        return 200, {**de.describe(), "rows": app.store.count(de, None), "edge_rows": de.edge_rows}
    if action == "rows" and method == "GET":
        limit = int(query["limit"]) if "limit" in query else None
        offset = int(query.get("offset", 0))
        return 200, {
            "key": de.key,
            "count": app.store.count(de, None),
            "rows": app.store.typed_rows(de, limit, offset),
        }
    if action == "mutate" and method == "POST":
        counts = {k: int(body.get(k, 0)) for k in ("update", "insert", "delete")}
        unknown = set(body) - {*counts, "lag_seconds"}
        if unknown:
            return 400, {"error": f"unknown mutate keys {sorted(unknown)}"}
        lag = body.get("lag_seconds")
        lag = app.config.commit_lag_seconds if lag is None else int(lag)
        return 200, app.store.mutate(de, **counts, lag_seconds=lag)
    if action == "changes" and method == "GET":
        return 200, {"key": de.key, "changes": list(de.changes), **_changed_keys(de.changes)}
    return 404, {"error": f"no admin route {method} for DE {de.key}"}


def _changed_keys(changes: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Flattened keys over all changes, for easy assertions."""
    out: dict[str, list[Any]] = {"updated": [], "inserted": [], "deleted": []}
    for change in changes:
        for kind, keys in out.items():
            keys.extend(change[kind])
    return out
