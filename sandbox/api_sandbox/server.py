"""HTTP plumbing: one handler class, two servers (SFMC and Insider) on 127.0.0.1.

Every non-admin request goes: read body -> latency -> fault rules -> endpoint. Admin
routes under ``/_sandbox/`` skip latency and faults so tests can always steer.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from api_sandbox import admin
from api_sandbox.app import Sandbox
from api_sandbox.faults import FaultRule
from api_sandbox.insider import UpsertRejectedError
from api_sandbox.sfmc_auth import TokenError
from api_sandbox.sfmc_rowset import DOC_URL, FORBIDDEN, NOT_AUTHORIZED
from api_sandbox.sfmc_soap import SoapError, fault, parse_request

ROWSET_PREFIX = "/data/v1/customobjectdata/"
FIELDS_PREFIX = "/data/v1/customobjects/"
READ_SCOPE = "data_extensions_read"
_PLAIN_5XX = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


INSIDER_ENDPOINTS = frozenset({"upsert", "columns"})
_MAX_LINE = 65537  # like http.server's own header-line limit


def _insider_fault_body(rule: FaultRule) -> dict[str, Any]:
    """Insider's bodies for an injected status (insider-api.md §2.2)."""
    if rule.status == 429:  # noqa: PLR2004
        return {"error": rule.message or "rejected: too many requests"}
    if rule.status == 403:  # noqa: PLR2004
        return {"success": False, "message": rule.message or "Request Limit Exceeded"}
    message = rule.message or "The request processing has failed because of an unknown error."
    return {"success": False, "message": message}


def _sfmc_fault_body(rule: FaultRule) -> dict[str, Any]:
    """The generic SFMC REST error body; 429s carry errorcode 50100 or 50200 (sfmc-api.md §5)."""
    code = rule.errorcode
    if code is None:
        code = 50100 if rule.status == 429 else 0  # noqa: PLR2004
    if code == 50200:  # noqa: PLR2004
        message = "Your requests are temporarily blocked."
    elif rule.status == 429:  # noqa: PLR2004
        message = "Rate limit exceeded"
    else:
        message = "Error"
    body: dict[str, Any] = {
        "message": rule.message or message,
        "errorcode": code,
        "documentation": DOC_URL,
    }
    if code == 50100 and rule.retry_after is not None:  # noqa: PLR2004
        body["retryAfter"] = rule.retry_after
    return body


def _requested_page(query: dict[str, str]) -> int | None:
    """The rowset page a request asks for (1 when absent), None when unreadable."""
    lowered = {k.lower().lstrip("$"): v for k, v in query.items()}
    try:
        return int(lowered.get("page", "1"))
    except ValueError:
        return None


class SandboxServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its role and the shared sandbox."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, role: str, app: Sandbox) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.role = role
        self.app = app

    @property
    def url(self) -> str:
        """Base URL without trailing slash."""
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    """Routes requests for either role."""

    protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs
    server: SandboxServer
    server_version = "api-sandbox"
    sys_version = ""
    _ENDPOINT_BY_ROUTE: ClassVar[dict[tuple[str, str], str]] = {
        ("POST", "/v2/token"): "token",
        ("POST", "/service.asmx"): "soap",
        ("POST", "/api/user/v1/upsert"): "upsert",
        ("POST", "/api/user/v3/metadata/columns"): "columns",
    }

    # -- plumbing ---------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet default logging; ``_log`` writes one line per request instead."""

    def _log(self, status: int | str, started: float) -> None:
        # Path only: query strings hold filters, never secrets; headers are never logged.
        elapsed = (time.perf_counter() - started) * 1000
        line = f"{self.server.role} {self.command} {self.path} -> {status} ({elapsed:.1f} ms)\n"
        sys.stderr.write(line)
        sys.stderr.flush()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        """Decode a chunked body, which http.server does not do.

        Streaming clients get served, and no unread chunk is left on a keep-alive
        connection to garble the next request.
        """
        chunks = []
        while True:
            size = int(self.rfile.readline(_MAX_LINE).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(_MAX_LINE) not in {b"\r\n", b"\n", b""}:
                    pass  # trailer fields: ignored
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(_MAX_LINE)  # the CRLF after each chunk

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)  # adds the Date header the tap relies on
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), headers=headers)

    def do_GET(self) -> None:
        """GET entry point."""
        self._dispatch()

    def do_POST(self) -> None:
        """POST entry point."""
        self._dispatch()

    def do_DELETE(self) -> None:
        """DELETE entry point."""
        self._dispatch()

    def do_PUT(self) -> None:
        """PUT entry point (only to answer 404/405 properly)."""
        self._dispatch()

    def _dispatch(self) -> None:
        started = time.perf_counter()
        try:
            self._dispatch_inner(started)
        except Exception as exc:  # noqa: BLE001 - a sandbox bug must not kill the connection silently
            traceback.print_exc(file=sys.stderr)
            with contextlib.suppress(OSError):
                self._json(500, {"error": f"sandbox internal error: {exc!r}"})
            self._log(500, started)

    def _dispatch_inner(self, started: float) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        body = self._read_body()
        app = self.server.app
        if path.startswith("/_sandbox/") or path == "/_sandbox":
            status, obj = admin.handle(
                app, self.server.role, self.command, path, query=query, raw=body
            )
            self._json(status, obj)
            self._log(status, started)
            return
        endpoint = self._endpoint(path)
        if endpoint is None:
            status = 596 if self.server.role == "sfmc" else 404  # SFMC: "service not found"
            self._json(status, {"message": "Not Found", "errorcode": 0, "documentation": DOC_URL})
            self._log(status, started)
            return
        generation = app.generation
        kind = self._rowset_kind(endpoint, path, body)
        if kind is not None:
            app.rowset_request(kind)  # on arrival: faulted and dropped ones count too
        # A SOAP row retrieve can be targeted apart from field discovery as "soap_rows".
        alias = "soap_rows" if kind == "soap" else None
        latencies = app.config.latency
        latency = latencies.get(alias or endpoint, latencies.get(endpoint, latencies.get("*", 0.0)))
        if latency:
            time.sleep(latency)
        rule = app.faults.check(endpoint, alias, _requested_page(query) if kind else None)
        if rule is not None:
            app.fault_fired(endpoint)
            if rule.action == "drop":
                app.count(endpoint, 0)
                self._record_faulted(endpoint, body, "dropped")
                self._drop()
                self._log("dropped", started)
                return
            if rule.action == "delay":
                time.sleep(rule.delay_seconds)
            else:
                status = self._fault(endpoint, rule)
                app.count(endpoint, status)
                self._record_faulted(endpoint, body, status)
                self._log(f"{status} (fault)", started)
                return
        if app.generation != generation:
            # The sandbox was reset while this request slept: its client (a previous test)
            # is gone, and applying it now would leak into the next test's data.
            self._drop()
            self._log("abandoned after a reset", started)
            return
        status = getattr(self, f"_ep_{endpoint}")(path, query, body)
        app.count(endpoint, status)
        self._log(status, started)

    def _endpoint(self, path: str) -> str | None:
        route = (self.command, path.lower().rstrip("/") or "/")
        name = self._ENDPOINT_BY_ROUTE.get(route)
        role = self.server.role
        if name in {"token", "soap"}:
            return name if role == "sfmc" else None
        if name in INSIDER_ENDPOINTS:
            return name if role == "insider" else None
        if role == "sfmc" and self.command == "GET" and path.startswith(ROWSET_PREFIX):
            return "rowset"
        if role == "sfmc" and self.command == "GET" and path.startswith(FIELDS_PREFIX):
            return "fields"
        return None

    @staticmethod
    def _rowset_kind(endpoint: str, path: str, body: bytes) -> str | None:
        """Which read this is (``rest_key``, ``rest_token``, ``soap``, ``soap_fields``) or None.

        A SOAP ``ContinueRequest`` counts as a row read: only row retrieves are paged.
        """
        if endpoint == "rowset":
            rest = path[len(ROWSET_PREFIX) :].strip("/").lower()
            return "rest_token" if rest.startswith("token/") else "rest_key"
        if endpoint == "soap":
            try:
                req = parse_request(body)
            except SoapError:
                return None
            if req.continue_id or req.object_type.startswith("DataExtensionObject"):
                return "soap"
            if req.object_type == "DataExtensionField":
                return "soap_fields"
        return None

    def _drop(self) -> None:
        """Close the socket without answering."""
        self.close_connection = True
        with contextlib.suppress(OSError):  # peer already gone: nothing to drop
            self.connection.shutdown(socket.SHUT_RDWR)

    def _fault(self, endpoint: str, rule: FaultRule) -> int:
        status = rule.status
        headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else {}
        insider = endpoint in INSIDER_ENDPOINTS
        if rule.body is not None:
            if isinstance(rule.body, str):
                self._send(status, rule.body.encode(), "text/plain; charset=utf-8", headers)
            else:
                self._json(status, rule.body, headers)
        elif endpoint == "soap":
            message = rule.message or "Server was unable to process request."
            self._send(
                status, fault("soap:Server", message).encode(), "text/xml; charset=utf-8", headers
            )
        elif status in _PLAIN_5XX and not (insider and status == 500):  # noqa: PLR2004
            # Gateways answer 5xx with HTML, not JSON: clients must not assume a JSON body.
            # Insider's own 500 is the exception: it has a documented JSON body.
            text = f"<html><body><h1>{status} {_PLAIN_5XX[status]}</h1></body></html>"
            self._send(status, text.encode(), "text/html", headers)
        elif insider:
            self._json(status, _insider_fault_body(rule), headers)
        else:
            self._json(status, _sfmc_fault_body(rule), headers)
        return status

    # -- SFMC ---------------------------------------------------------------------------
    def _ep_token(self, _path: str, _query: dict[str, str], body: bytes) -> int:
        app = self.server.app
        try:
            request = app.auth.parse_body(self.headers.get("Content-Type") or "", body)
            reply = app.auth.grant(request, self.server.url)
        except TokenError as exc:
            headers = {"Retry-After": "60"} if exc.status == 429 else None  # noqa: PLR2004
            self._json(exc.status, exc.body, headers)
            return exc.status
        self._json(200, reply)
        return 200

    def _bearer(self) -> str | None:
        value = self.headers.get("Authorization") or ""
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    def _ep_rowset(self, path: str, query: dict[str, str], _body: bytes) -> int:
        app = self.server.app
        tok = app.auth.check(self._bearer())
        if tok is None:
            self._json(*NOT_AUTHORIZED)
            return 401
        if READ_SCOPE not in tok.scopes:  # scope is checked before the key is resolved
            self._json(*FORBIDDEN)
            return 403
        rest = path[len(ROWSET_PREFIX) :].strip("/").split("/")
        if len(rest) == 3 and rest[0].lower() == "key" and rest[2].lower() == "rowset":  # noqa: PLR2004
            status, obj, de_key = app.rowset.by_key(rest[1], query)
        elif len(rest) == 3 and rest[0].lower() == "token" and rest[2].lower() == "rowset":  # noqa: PLR2004
            status, obj, de_key = app.rowset.by_token(rest[1], query)
        else:
            status, obj, de_key = (
                404,
                {"message": "Not Found", "errorcode": 30003, "documentation": DOC_URL},
                None,
            )
        if de_key is not None and status == 200:  # noqa: PLR2004
            rule = app.faults.check_content("rowset", obj["page"])
            if rule is not None:
                app.fault_fired("rowset")
                obj = app.rowset.distort(obj, rule)
        payload = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        if de_key is not None and status == 200:  # noqa: PLR2004
            # The page content is already fixed; scenario changes are applied before the
            # bytes leave, so the client's next request always sees them (no race).
            app.page_served(de_key, obj["page"], len(obj.get("items", ())))
        self._send(status, payload)
        return status

    def _ep_fields(self, path: str, _query: dict[str, str], _body: bytes) -> int:
        """Optional REST schema read: ``/data/v1/customobjects/{guid}/fields`` (by id, not key)."""
        app = self.server.app
        tok = app.auth.check(self._bearer())
        if tok is None:
            self._json(*NOT_AUTHORIZED)
            return 401
        if READ_SCOPE not in tok.scopes:
            self._json(*FORBIDDEN)
            return 403
        rest = path[len(FIELDS_PREFIX) :].strip("/").split("/")
        de = None
        if len(rest) == 2 and rest[1].lower() == "fields":  # noqa: PLR2004
            de = next((d for d in list(app.store.des.values()) if d.object_id == rest[0]), None)
        if de is None:
            self._json(404, {"message": "Not Found", "errorcode": 30003, "documentation": DOC_URL})
            return 404
        fields = [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{de.key}.{f.name}")),
                "name": f.name,
                "type": f.field_type,
                "length": f.max_length if f.field_type not in {"Number", "Date", "Boolean"} else 0,
                "scale": f.scale or 0,
                "ordinal": i,
                "isPrimaryKey": f.is_primary_key,
                "isNullable": not f.is_required,
                "isHidden": False,
                "isReadOnly": False,
                "defaultValue": f.default_value,
                "description": "",
                "storagetype": "Plain",
            }
            for i, f in enumerate(de.fields)
        ]
        self._json(200, {"id": de.object_id, "fields": fields})
        return 200

    def _ep_soap(self, _path: str, _query: dict[str, str], body: bytes) -> int:
        app = self.server.app
        xml_type = "text/xml; charset=utf-8"
        try:
            req = parse_request(body)
        except SoapError as exc:
            self._send(500, fault(exc.code, str(exc)).encode(), xml_type)
            return 500
        tok = app.auth.check(req.token)
        if tok is None:
            self._send(500, fault("q0:Security", "Token Expired").encode(), xml_type)
            return 500
        xml, de_key, rows = app.soap.retrieve(req, has_scope=READ_SCOPE in tok.scopes)
        self._send(200, xml.encode("utf-8"), xml_type)
        if de_key is not None and rows:
            app.soap_rows_served(de_key, rows)
        return 200

    # -- Insider --------------------------------------------------------------------------
    def _upsert_entry(self, body: bytes) -> dict[str, Any]:
        """Request-log entry; user count and skip_hook are peeked even for rejects."""
        users: int | None = None
        skip_hook = None
        with contextlib.suppress(ValueError, TypeError):
            decoded = json.loads(body)
            if isinstance(decoded, dict):
                skip_hook = decoded.get("skip_hook", False)
                if isinstance(decoded.get("users"), list):
                    users = len(decoded["users"])
        return {
            "endpoint": "upsert",
            "bytes": len(body),
            "partner": self.headers.get("X-PARTNER-NAME"),
            "platform": self.headers.get("X-PLATFORM-NAME"),
            "users": users,
            "skip_hook": skip_hook,
            "fault": False,
        }

    def _record_faulted(self, endpoint: str, body: bytes, status: int | str) -> None:
        if endpoint in INSIDER_ENDPOINTS:
            entry = self._upsert_entry(body) if endpoint == "upsert" else self._columns_entry(body)
            entry.update(status=status, fault=True)
            self.server.app.insider.record(entry)

    def _ep_upsert(self, _path: str, _query: dict[str, str], body: bytes) -> int:
        app = self.server.app
        entry = self._upsert_entry(body)
        try:
            app.insider.check_auth(
                self.headers.get("X-PARTNER-NAME"), self.headers.get("X-REQUEST-TOKEN")
            )
            request = app.insider.parse(self.headers.get("Content-Type") or "", body)
            reply = app.insider.upsert(request)
        except UpsertRejectedError as exc:
            entry["status"] = exc.status
            app.insider.record(entry)
            self._json(exc.status, exc.body)
            return exc.status
        entry["status"] = 200
        entry["successful"] = reply["data"]["successful"].get("count", 0)
        entry["failed"] = reply["data"]["fail"].get("count", 0)
        app.insider.record(entry)
        self._json(200, reply)
        return 200

    def _columns_entry(self, body: bytes) -> dict[str, Any]:
        table = None
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            table = json.loads(body).get("table")
        return {
            "endpoint": "columns",
            "bytes": len(body),
            "partner": self.headers.get("X-PARTNER-NAME"),
            "platform": self.headers.get("X-PLATFORM-NAME"),
            "table": table,
            "fault": False,
        }

    def _ep_columns(self, _path: str, _query: dict[str, str], body: bytes) -> int:
        """Read-only ``metadata/columns`` (Insider's own n8n credential test), same auth."""
        app = self.server.app
        entry = self._columns_entry(body)
        try:
            app.insider.check_auth(
                self.headers.get("X-PARTNER-NAME"), self.headers.get("X-REQUEST-TOKEN")
            )
            columns = app.insider.columns(body)
        except UpsertRejectedError as exc:
            entry["status"] = exc.status
            app.insider.record(entry)
            self._json(exc.status, exc.body)
            return exc.status
        entry["status"] = 200
        app.insider.record(entry)
        self._json(200, columns)
        return 200
