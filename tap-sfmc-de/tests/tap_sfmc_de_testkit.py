"""Test helpers for tap-sfmc-de: in-memory SFMC DE and canned responses.

Uniquely named because tests run with --import-mode=importlib and this directory is
put on sys.path by conftest.py.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tap_sfmc_de.rowset import RowsetPage
from tap_sfmc_de.values import format_sfmc_datetime, parse_sfmc_datetime

CST = dt.timezone(dt.timedelta(hours=-6))
SERVER_NOW = dt.datetime(2024, 5, 8, 21, 0, 0, tzinfo=dt.UTC)
PAST = SERVER_NOW - dt.timedelta(days=1)
CLAUSE = re.compile(r"(\w+) (ge|gt|lt) '([^']+)'")


@dataclass
class FakeDE:
    """A DE with rows {pk: {"modifieddate": str, ...}} and switchable server behaviour."""

    rows: dict[str, dict[str, str]] = field(default_factory=dict)
    filter_honoured: bool = True
    order_honoured: bool = True
    now: dt.datetime = SERVER_NOW
    requests: list[dict[str, Any]] = field(default_factory=list)
    hooks: list[Callable[[FakeDE, dict[str, Any]], None]] = field(default_factory=list)
    insertion: list[str] = field(default_factory=list)
    literal_tz: dt.tzinfo = CST  # how naive $filter literals are read (UTC: a misreading server)

    def put(self, pk: str, modified: dt.datetime, **values: str) -> None:
        if pk not in self.rows:
            self.insertion.append(pk)
        self.rows[pk] = {"modifieddate": format_sfmc_datetime(modified, CST), **values}

    def delete(self, pk: str) -> None:
        self.rows.pop(pk, None)
        self.insertion.remove(pk)

    def touch(self, pk: str) -> None:
        """Update a row the way a writer would: ModifiedDate := server now."""
        self.rows[pk]["modifieddate"] = format_sfmc_datetime(self.now, CST)

    def matching(self, filter_expr: str | None) -> list[str]:
        order = sorted(self.rows) if self.order_honoured else list(self.insertion)
        if not filter_expr or not self.filter_honoured:
            return order
        clauses = CLAUSE.findall(filter_expr)

        def ok(pk: str) -> bool:
            raw = self.rows[pk]["modifieddate"]
            if not raw:
                return False
            value = parse_sfmc_datetime(raw, CST)
            for _, op, literal in clauses:
                bound = parse_sfmc_datetime(literal, self.literal_tz)
                if (op == "ge" and not value >= bound) or (op == "gt" and not value > bound):
                    return False
                if op == "lt" and not value < bound:
                    return False
            return True

        return [pk for pk in order if ok(pk)]

    def fetch(
        self,
        *,
        page: int,
        page_size: int,
        filter_expr: str | None = None,
        order_by: str | None = None,
        before_resend: Callable[[], None] | None = None,  # a fake never resends
    ) -> RowsetPage:
        request = {"page": page, "page_size": page_size, "filter": filter_expr, "order": order_by}
        self.requests.append(request)
        for hook in list(self.hooks):
            hook(self, request)
        pks = self.matching(filter_expr)
        start = (page - 1) * page_size
        chunk = pks[start : start + page_size]
        items = [{"keys": {"id": pk}, "values": dict(self.rows[pk])} for pk in chunk]
        self.now += dt.timedelta(seconds=1)
        return RowsetPage(
            count=len(pks),
            items=items,
            has_next=start + page_size < len(pks),
            server_time=self.now,
        )


def rowset_json(page: RowsetPage, page_no: int) -> dict[str, Any]:
    """Render a page the way SFMC does (items absent when empty, next only if more)."""
    body: dict[str, Any] = {
        "links": {"self": f"/v1/customobjectdata/token/x/rowset?$page={page_no}"},
        "requestToken": "x",
        "pageSize": 0,
        "page": page_no,
        "count": page.count,
        "top": 0,
    }
    if page.has_next:
        body["links"]["next"] = f"/v1/customobjectdata/token/x/rowset?$page={page_no + 1}"
    if page.items:
        body["items"] = page.items
    return body


AUTH = "https://auth.example.test/"
REST = "https://rest.example.test/"
SOAP = "https://soap.example.test/"
CLIENT_SECRET = "s3cr3t-client-secret-value"
ACCESS_TOKEN = "access-token-AAAA.BBBB.CCCC.DDDD"
SUBDOMAIN = "mcsandbox0000000000000000000"

FIELDS_XML = """<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
<soap:Body><RetrieveResponseMsg xmlns="http://exacttarget.com/wsdl/partnerAPI">
<OverallStatus>OK</OverallStatus><RequestID>r1</RequestID>
{results}
</RetrieveResponseMsg></soap:Body></soap:Envelope>"""
RESULT = (
    '<Results xsi:type="DataExtensionField" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    "<Name>{name}</Name><FieldType>{type}</FieldType><IsPrimaryKey>{pk}</IsPrimaryKey>"
    "<IsRequired>{pk}</IsRequired><MaxLength>{length}</MaxLength><Scale>{scale}</Scale>"
    "<Ordinal>{ordinal}</Ordinal></Results>"
)
DEFAULT_FIELDS = [
    ("Id", "Text", "true", "50", "0"),
    ("ModifiedDate", "Date", "false", "", "0"),
    ("Points", "Number", "false", "", "0"),
    ("Amount", "Decimal", "false", "12", "2"),
    ("OptIn", "Boolean", "false", "", "0"),
    ("Email", "EmailAddress", "false", "254", "0"),
]


def fields_xml(fields: list[tuple[str, str, str, str, str]] = DEFAULT_FIELDS) -> str:
    results = "".join(
        RESULT.format(name=n, type=t, pk=pk, length=length, scale=scale, ordinal=i)
        for i, (n, t, pk, length, scale) in reversed(list(enumerate(fields)))
    )
    return FIELDS_XML.format(results=results)


def token_json(**overrides: Any) -> dict[str, Any]:
    body = {
        "access_token": ACCESS_TOKEN,
        "token_type": "Bearer",
        "expires_in": 1079,
        "scope": "offline data_extensions_read",
        "rest_instance_url": REST,
        "soap_instance_url": SOAP,
    }
    body.update(overrides)
    return body


# --- end-to-end helpers (real subprocess against the sandbox) -----------------------
TAP_BIN = str(Path(sys.executable).parent / "tap-sfmc-de")
AUTH_BIN = str(Path(sys.executable).parent / "tap-sfmc-de-auth")


@dataclass
class TapRun:
    """What one real ``tap-sfmc-de`` process wrote."""

    returncode: int
    records: list[dict[str, Any]]
    states: list[dict[str, Any]]
    stdout: str
    stderr: str

    @property
    def state(self) -> dict[str, Any] | None:
        return self.states[-1] if self.states else None

    def stat(self, name: str) -> int:
        """A counter from the tap's end-of-stream summary line, e.g. ``data pages``."""
        match = re.search(rf"(\d+) {name}", self.stderr)
        return int(match.group(1)) if match else -1


def run_tap(
    config: dict[str, Any],
    workdir: Path,
    state: dict[str, Any] | None = None,
    args: tuple[str, ...] = (),
    timeout: float = 120,
) -> TapRun:
    """Run the tap as a subprocess with a config (and state) file."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    argv = [TAP_BIN, "--config", str(config_path), *args]
    if state is not None:
        state_path = workdir / "state.json"
        state_path.write_text(json.dumps(state), encoding="utf-8")
        argv += ["--state", str(state_path)]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, cwd=workdir
    )
    records, states = [], []
    for line in [] if "--discover" in args else proc.stdout.splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            records.append(message["record"])
        elif message["type"] == "STATE":
            states.append(message["value"])
    return TapRun(proc.returncode, records, states, proc.stdout, proc.stderr)


def rowset_requests(sandbox: Any) -> int:
    """Rowset requests the sandbox has answered so far (any kind: pages, probes, token URLs)."""
    return int(sandbox.rowset_requests()["total"])


def wait_until(
    probe: Callable[[], Any], *, what: str, timeout: float = 30, interval: float = 0.01
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(interval)  # polling interval, not a synchronisation guess
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def sandbox_latest_versions(sandbox: Any, key: str) -> set[tuple[str, str]]:
    """(SubscriberKey, ModifiedDate as bookmark-format UTC) of every current row."""
    out = set()
    for row in sandbox.rows(key):
        modified = row.get("ModifiedDate")
        if modified:
            value = dt.datetime.fromisoformat(modified).astimezone(dt.UTC).isoformat()
            out.add((row["SubscriberKey"], value))
    return out
