"""Admin and inspection routes under ``/_sandbox/`` (JSON in, JSON out, no auth).

Served by both servers; they share one Sandbox, so either port works for any route.
Routed by its own table (``ADMIN_ROUTES``), apart from the emulated APIs: no latency,
no faults, no counters, so tests can always steer. A pattern segment ``{key}`` is a DE
key (an unknown one is a 404); a trailing ``*`` accepts any further segments.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from api_sandbox.app import Sandbox
from api_sandbox.config import ConfigError
from api_sandbox.errors import AdminError
from api_sandbox.faults import FaultError
from api_sandbox.replies import Reply, json_reply, ok
from api_sandbox.scenarios import ScenarioError
from api_sandbox.store import DataExtension, StoreError

_BAD_INPUT = (ConfigError, FaultError, ScenarioError, StoreError, ValueError, TypeError)
_MUTATE_COUNTS = ("update", "insert", "delete")


@dataclass(frozen=True)
class AdminRequest:
    """One admin request; ``de`` is set when the route names a DE (``{key}``)."""

    app: Sandbox
    role: str
    method: str
    query: dict[str, str]
    body: Any
    de: DataExtension | None = None

    @property
    def the_de(self) -> DataExtension:
        """The DE the route named (only for ``{key}`` routes)."""
        if self.de is None:  # a table error, not a client one
            raise AdminError(HTTPStatus.INTERNAL_SERVER_ERROR, "route has no {key}")
        return self.de


@dataclass(frozen=True)
class AdminRoute:
    """``methods`` (None: any) and path ``pattern`` below ``/_sandbox/``; the handler's JSON."""

    methods: frozenset[str] | None
    pattern: tuple[str, ...]
    handler: Callable[[AdminRequest], Any]

    def captures(self, method: str, parts: list[str]) -> dict[str, str] | None:
        """The ``{name}`` segments when this route serves the request, else None."""
        if self.methods is not None and method not in self.methods:
            return None
        captured: dict[str, str] = {}
        for i, segment in enumerate(self.pattern):
            if segment == "*":
                return captured
            if i >= len(parts):
                return None
            if segment.startswith("{"):
                captured[segment[1:-1]] = parts[i]
            elif segment != parts[i]:
                return None
        return captured if len(parts) == len(self.pattern) else None


# -- handlers: each does one thing and returns the 200 body ----------------------------
def _state(req: AdminRequest) -> Any:
    return {"role": req.role, **req.app.state()}


def _show_config(req: AdminRequest) -> Any:
    return req.app.config.to_json()


def _update_config(req: AdminRequest) -> Any:
    req.app.config.update(req.body)
    return req.app.config.to_json()


def _reset(req: AdminRequest) -> Any:
    req.app.reset()
    return {"reset": True}


def _reset_counters(req: AdminRequest) -> Any:
    req.app.reset_counters()
    return req.app.state()["counters"]


def _list_faults(req: AdminRequest) -> Any:
    return req.app.faults.to_json()


def _clear_faults(req: AdminRequest) -> Any:
    req.app.faults.clear()
    return req.app.faults.to_json()


def _add_faults(req: AdminRequest) -> Any:
    """A rule, a list of rules, or ``{"faults": [...]}``."""
    body = req.body
    rules = body.get("faults", []) if isinstance(body, dict) else body
    if isinstance(body, dict) and "endpoint" in body:
        rules = [body]
    req.app.faults.add(rules)
    return req.app.faults.to_json()


def _expire_tokens(req: AdminRequest) -> Any:
    return {"expired": req.app.auth.expire_all()}


def _expire_request_tokens(req: AdminRequest) -> Any:
    return {"expired": req.app.rowset.expire_all()}


def _add_scenario(req: AdminRequest) -> Any:
    return req.app.scenarios.add(req.body).to_json()


def _list_scenarios(req: AdminRequest) -> Any:
    return req.app.scenarios.to_json()


def _profiles(req: AdminRequest) -> Any:
    return req.app.insider.profiles_json()


def _requests(req: AdminRequest) -> Any:
    return req.app.insider.requests_json()


def _list_des(req: AdminRequest) -> Any:
    return [de.describe() for de in list(req.app.store.des.values())]


def _create_de(req: AdminRequest) -> Any:
    return req.app.store.create_from_spec(req.body).describe()


def _describe_de(req: AdminRequest) -> Any:
    de = req.the_de
    return {**de.describe(), "rows": req.app.store.count(de, None), "edge_rows": de.edge_rows}


def _drop_de(req: AdminRequest) -> Any:
    req.app.store.drop(req.the_de.key)
    return {"deleted": req.the_de.key}


def _de_rows(req: AdminRequest) -> Any:
    de, store = req.the_de, req.app.store
    limit = int(req.query["limit"]) if "limit" in req.query else None
    offset = int(req.query.get("offset", 0))
    return {
        "key": de.key,
        "count": store.count(de, None),
        "rows": store.typed_rows(de, limit, offset),
    }


def _mutate_de(req: AdminRequest) -> Any:
    """``{"update": u, "insert": i, "delete": d, "lag_seconds": L}``, committed now."""
    body = req.body
    counts = {k: int(body.get(k, 0)) for k in _MUTATE_COUNTS}
    unknown = set(body) - {*counts, "lag_seconds"}
    if unknown:
        raise AdminError(HTTPStatus.BAD_REQUEST, f"unknown mutate keys {sorted(unknown)}")
    lag = body.get("lag_seconds")
    lag = req.app.config.commit_lag_seconds if lag is None else int(lag)
    return req.app.store.mutate(req.the_de, **counts, lag_seconds=lag)


def _de_changes(req: AdminRequest) -> Any:
    de = req.the_de
    return {"key": de.key, "changes": list(de.changes), **_changed_keys(de.changes)}


def _no_de_route(req: AdminRequest) -> Any:
    raise AdminError(HTTPStatus.NOT_FOUND, f"no admin route {req.method} for DE {req.the_de.key}")


def _changed_keys(changes: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Flattened keys over all changes, for easy assertions."""
    out: dict[str, list[Any]] = {"updated": [], "inserted": [], "deleted": []}
    for change in changes:
        for kind, keys in out.items():
            keys.extend(change[kind])
    return out


def _route(methods: str | None, path: str, handler: Callable[[AdminRequest], Any]) -> AdminRoute:
    allowed = frozenset(methods.split()) if methods else None
    return AdminRoute(allowed, tuple(p for p in path.split("/") if p), handler)


# First match wins: specific rows before the catch-alls of the same path.
ADMIN_ROUTES = (
    _route("GET", "", _state),
    _route("GET", "state/*", _state),
    _route("POST", "config/*", _update_config),
    _route(None, "config/*", _show_config),
    _route("POST", "reset/*", _reset),
    _route("POST", "counters/reset", _reset_counters),
    _route("POST", "faults/clear", _clear_faults),
    _route("DELETE", "faults/*", _clear_faults),
    _route("POST", "faults/*", _add_faults),
    _route(None, "faults/*", _list_faults),
    _route("POST", "tokens/expire", _expire_tokens),
    _route("POST", "request-tokens/expire", _expire_request_tokens),
    _route("POST", "scenario/*", _add_scenario),
    _route(None, "scenarios/*", _list_scenarios),
    _route("GET", "profiles/*", _profiles),
    _route("GET", "requests/*", _requests),
    _route("POST", "des", _create_de),
    _route(None, "des", _list_des),
    _route("DELETE", "des/{key}", _drop_de),
    _route("GET", "des/{key}", _describe_de),
    _route("GET", "des/{key}/rows/*", _de_rows),
    _route("POST", "des/{key}/mutate/*", _mutate_de),
    _route("GET", "des/{key}/changes/*", _de_changes),
    _route(None, "des/{key}/*", _no_de_route),
)


def handle(
    app: Sandbox, role: str, method: str, path: str, *, query: dict[str, str], raw: bytes
) -> Reply:
    """Serve one admin request."""
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        return AdminError(HTTPStatus.BAD_REQUEST, "admin body must be JSON").reply()
    parts = [p for p in path.split("/") if p][1:]  # drop "_sandbox"
    try:
        return ok(_dispatch(AdminRequest(app, role, method, query, body), parts))
    except AdminError as exc:
        return exc.reply()
    except _BAD_INPUT as exc:
        return json_reply(HTTPStatus.BAD_REQUEST, {"error": str(exc)})


def _dispatch(req: AdminRequest, parts: list[str]) -> Any:
    for route in ADMIN_ROUTES:
        captured = route.captures(req.method, parts)
        if captured is None:
            continue
        if "key" in captured:
            req = _with_de(req, captured["key"])
        return route.handler(req)
    raise AdminError(
        HTTPStatus.NOT_FOUND, f"no admin route {req.method} /_sandbox/{'/'.join(parts)}"
    )


def _with_de(req: AdminRequest, key: str) -> AdminRequest:
    de = req.app.store.get(key)
    if de is None:
        raise AdminError(HTTPStatus.NOT_FOUND, f"no DE with key {key!r}")
    return AdminRequest(req.app, req.role, req.method, req.query, body=req.body, de=de)
