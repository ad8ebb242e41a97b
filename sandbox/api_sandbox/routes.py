"""One routing table per emulated API; fault endpoints are derived from them.

A request is matched against its server's tables (SFMC: auth, REST, SOAP; Insider)
and served by the route's handler. Every route's ``endpoint`` name is what request
counters, latencies and fault rules use; ``FAULT_ENDPOINTS`` is built from these
tables, so a new route is a fault target with no second list to update. The admin
API (``/_sandbox/``) has its own table in ``admin.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from api_sandbox import fault_replies, insider_handlers, sfmc_handlers

if TYPE_CHECKING:
    from email.message import Message

    from api_sandbox.app import Sandbox
    from api_sandbox.errors import ApiError
    from api_sandbox.faults import FaultRule
    from api_sandbox.replies import Reply

# SFMC answers an unknown path with 596 "service not found" (not an HTTPStatus member).
SFMC_SERVICE_NOT_FOUND = 596


class Role(StrEnum):
    """Which API a server emulates (each listens on its own port)."""

    SFMC = "sfmc"
    INSIDER = "insider"


@dataclass(frozen=True)
class Request:
    """What a handler sees: the parsed request plus the shared sandbox."""

    app: Sandbox
    method: str
    path: str  # unquoted, without the query string
    rest: str  # the part of ``path`` after a prefix route's prefix ("" for exact routes)
    query: dict[str, str]
    body: bytes
    headers: Message
    base_url: str  # this server's URL (token replies point clients back at it)

    def header(self, name: str) -> str | None:
        """A request header, None when absent."""
        return self.headers.get(name)

    @cached_property
    def json_body(self) -> Any:
        """The body decoded as JSON, once: an upsert's log entry and the model both read it.

        Raises:
            ValueError: The body is not JSON (decoded again on each call; that is rare).
        """
        return json.loads(self.body)

    def bearer(self) -> str | None:
        """The token of an ``Authorization: Bearer`` header."""
        scheme, _, token = (self.header("Authorization") or "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None


@dataclass(frozen=True)
class Route:
    """One endpoint: how to match it and who serves it."""

    endpoint: str  # the name counters, latencies and fault rules use
    method: str
    path: str  # lowercase; exact (trailing "/" ignored) unless ``prefix``
    handler: Callable[[Request], Reply]
    prefix: bool = False  # match paths starting with ``path`` (case-sensitive, like before)
    # Which row or schema read a request is, for the request budget (None: not a read).
    read_kind: Callable[[Request], str | None] | None = None
    # Finer fault-target names by read kind: {"soap": "soap_rows"} lets a rule hit only
    # SOAP row retrieves, apart from field discovery.
    aliases: Mapping[str, str] = field(default_factory=dict)
    # Request-log entry for a faulted or dropped request (Insider logs every request).
    log_entry: Callable[[Request], dict[str, Any]] | None = None

    def matches(self, method: str, path: str) -> str | None:
        """The rest of ``path`` after this route's prefix ("" when exact), None if no match."""
        if method != self.method:
            return None
        if self.prefix:
            return path[len(self.path) :] if path.startswith(self.path) else None
        return "" if (path.lower().rstrip("/") or "/") == self.path else None


@dataclass(frozen=True)
class Api:
    """One emulated API: its routes and the shape its injected faults take."""

    name: str
    role: Role
    routes: tuple[Route, ...]
    fault_error: Callable[[FaultRule], ApiError]
    gateway_statuses: frozenset[int]  # injected statuses answered with a gateway HTML page

    def fault_reply(self, rule: FaultRule) -> Reply:
        """This API's answer to a firing status rule."""
        return fault_replies.fault_reply(rule, self.fault_error, self.gateway_statuses)


SFMC_AUTH = Api(
    "SFMC auth",
    Role.SFMC,
    (Route("token", "POST", "/v2/token", sfmc_handlers.token),),
    fault_replies.sfmc_rest_error,
    fault_replies.GATEWAY_STATUSES,
)
SFMC_REST = Api(
    "SFMC REST",
    Role.SFMC,
    (
        Route(
            "rowset",
            "GET",
            "/data/v1/customobjectdata/",
            sfmc_handlers.rowset,
            prefix=True,
            read_kind=sfmc_handlers.rowset_read_kind,
        ),
        Route("fields", "GET", "/data/v1/customobjects/", sfmc_handlers.fields, prefix=True),
    ),
    fault_replies.sfmc_rest_error,
    fault_replies.GATEWAY_STATUSES,
)
SFMC_SOAP = Api(
    "SFMC SOAP",
    Role.SFMC,
    (
        Route(
            "soap",
            "POST",
            "/service.asmx",
            sfmc_handlers.soap,
            read_kind=sfmc_handlers.soap_read_kind,
            aliases={"soap": "soap_rows"},
        ),
    ),
    fault_replies.soap_error,
    frozenset(),  # SOAP clients always get a Fault envelope
)
INSIDER = Api(
    "Insider",
    Role.INSIDER,
    (
        Route(
            "upsert",
            "POST",
            "/api/user/v1/upsert",
            insider_handlers.upsert,
            log_entry=insider_handlers.upsert_entry,
        ),
        Route(
            "columns",
            "POST",
            "/api/user/v3/metadata/columns",
            insider_handlers.columns,
            log_entry=insider_handlers.columns_entry,
        ),
    ),
    fault_replies.insider_error,
    fault_replies.INSIDER_GATEWAY_STATUSES,
)
APIS = (SFMC_AUTH, SFMC_REST, SFMC_SOAP, INSIDER)
NOT_FOUND_STATUS = {Role.SFMC: SFMC_SERVICE_NOT_FOUND, Role.INSIDER: HTTPStatus.NOT_FOUND}

FAULT_ENDPOINTS = (
    *(
        name
        for api in APIS
        for route in api.routes
        for name in (route.endpoint, *route.aliases.values())
    ),
    "*",
)


def match(role: str, method: str, path: str) -> tuple[Api, Route, str] | None:
    """The API and route serving this request on a ``role`` server, and the path's rest."""
    for api in APIS:
        if api.role != role:
            continue
        for route in api.routes:
            rest = route.matches(method, path)
            if rest is not None:
                return api, route, rest
    return None
