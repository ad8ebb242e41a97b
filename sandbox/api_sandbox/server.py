"""HTTP plumbing: one handler class, two servers (SFMC and Insider) on 127.0.0.1.

Every API request goes: read body -> match a route (``routes.py``) -> count the read
-> latency -> fault rules -> the route's handler -> its reply, or the typed error it
raised (``errors.py``) rendered here. Admin routes under ``/_sandbox/`` (``admin.py``)
skip latency and faults so tests can always steer.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from api_sandbox import admin, routes
from api_sandbox._compat import override
from api_sandbox.app import Sandbox
from api_sandbox.errors import ApiError, SfmcRestError
from api_sandbox.fault_replies import BLOCKED, sfmc_rest_error
from api_sandbox.faults import FaultAction, FaultRule
from api_sandbox.replies import Reply, json_reply
from api_sandbox.routes import Api, Request, Route

_MAX_LINE = 65537  # like http.server's own header-line limit


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
        self.role = routes.Role(role)
        self.app = app

    @property
    def url(self) -> str:
        """Base URL without trailing slash."""
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    """Serves requests for either role through the routes tables."""

    protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs
    server: SandboxServer
    server_version = "api-sandbox"
    sys_version = ""
    _in_flight = False  # this request holds a rowset concurrency slot (Sandbox.rowset_admit)

    # -- plumbing ---------------------------------------------------------------------
    @override
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

    def send_reply(self, reply: Reply) -> None:
        """Write one reply (status, headers, body; no body for HEAD)."""
        self._leave()  # before the reply leaves, so a client's next request finds it free
        self.send_response(reply.status)  # adds the Date header the tap relies on
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _drop(self) -> None:
        """Close the socket without answering."""
        self._leave()
        self.close_connection = True
        with contextlib.suppress(OSError):  # peer already gone: nothing to drop
            self.connection.shutdown(socket.SHUT_RDWR)

    # BaseHTTPRequestHandler finds these by name (``do_<METHOD>``); they are not overrides.
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
            self._route(started)
        except Exception as exc:  # noqa: BLE001 - a sandbox bug must not kill the connection silently
            traceback.print_exc(file=sys.stderr)
            with contextlib.suppress(OSError):
                error = {"error": f"sandbox internal error: {exc!r}"}
                self.send_reply(json_reply(HTTPStatus.INTERNAL_SERVER_ERROR, error))
            self._log(HTTPStatus.INTERNAL_SERVER_ERROR, started)
        finally:
            self._leave()

    # -- routing ------------------------------------------------------------------------
    def _route(self, started: float) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        body = self._read_body()
        app = self.server.app
        if path.startswith("/_sandbox/") or path == "/_sandbox":
            self._answer(
                admin.handle(app, self.server.role, self.command, path, query=query, raw=body),
                started,
            )
            return
        found = routes.match(self.server.role, self.command, path)
        if found is None:
            status = routes.NOT_FOUND_STATUS[self.server.role]
            self._answer(SfmcRestError(status, "Not Found", 0).reply(), started)
            return
        api, route, rest = found
        request = Request(app, self.command, path, rest, query, body, self.headers, self.server.url)
        self._serve(api, route, request, started)

    def _answer(self, reply: Reply, started: float) -> None:
        self.send_reply(reply)
        self._log(reply.status, started)

    def _serve(self, api: Api, route: Route, request: Request, started: float) -> None:
        """Count, delay and fault the request as configured, then run its handler."""
        app = request.app
        generation = app.generation
        kind = route.read_kind(request) if route.read_kind else None
        if kind is not None:
            app.rowset_request(kind)  # on arrival: faulted and dropped ones count too
        if route.endpoint == "rowset" and not self._admit(app):
            blocked = sfmc_rest_error(FaultRule("rowset", status=429, errorcode=BLOCKED)).reply()
            app.count(route.endpoint, blocked.status)
            self.send_reply(blocked)
            self._log(f"{blocked.status} (concurrency limit)", started)
            return
        alias = route.aliases.get(kind) if kind else None
        self._sleep_latency(route.endpoint, alias)
        page = _requested_page(request.query) if kind else None
        rule = app.faults.check(route.endpoint, alias, page)
        if rule is not None:
            app.fault_fired(route.endpoint)
            if rule.action != FaultAction.DELAY:
                self._inject(api, route, request, rule, started)
                return
            time.sleep(rule.delay_seconds)
        if app.generation != generation:
            # The sandbox was reset while this request slept: its client (a previous test)
            # is gone, and applying it now would leak into the next test's data.
            self._drop()
            self._log("abandoned after a reset", started)
            return
        reply = self._handle(route, request)
        # Counted before the reply leaves: a client that reads the counters right after
        # its response must see its own request.
        app.count(route.endpoint, reply.status)
        self.send_reply(reply)
        self._log(reply.status, started)

    def _admit(self, app: Sandbox) -> bool:
        """Hold a rowset slot for this request; False above ``rowset_concurrency_limit``."""
        self._in_flight = app.rowset_admit()
        return self._in_flight

    def _leave(self) -> None:
        """Give the rowset slot back, once per request (every reply and drop path ends here)."""
        if self._in_flight:
            self._in_flight = False
            self.server.app.rowset_leave()

    def _sleep_latency(self, endpoint: str, alias: str | None) -> None:
        latencies = self.server.app.config.latency
        latency = latencies.get(alias or endpoint, latencies.get(endpoint, latencies.get("*", 0.0)))
        if latency:
            time.sleep(latency)

    @staticmethod
    def _handle(route: Route, request: Request) -> Reply:
        """The handler's reply, or the reply of the typed error it raised."""
        try:
            return route.handler(request)
        except ApiError as exc:
            return exc.reply()

    def _inject(
        self, api: Api, route: Route, request: Request, rule: FaultRule, started: float
    ) -> None:
        """Answer with the fault instead of the handler: drop the connection or a status."""
        app = request.app
        if rule.action == FaultAction.DROP:
            app.count(route.endpoint, 0)
            self._log_faulted(route, request, "dropped")
            self._drop()
            self._log("dropped", started)
            return
        reply = api.fault_reply(rule)
        app.count(route.endpoint, reply.status)  # before the reply, as in _serve
        self._log_faulted(route, request, reply.status)
        self.send_reply(reply)
        self._log(f"{reply.status} (fault)", started)

    @staticmethod
    def _log_faulted(route: Route, request: Request, status: int | str) -> None:
        """Insider logs every request, faulted ones too (``/_sandbox/requests``)."""
        if route.log_entry is not None:
            entry = route.log_entry(request)
            entry.update(status=status, fault=True)
            request.app.insider.record(entry)
