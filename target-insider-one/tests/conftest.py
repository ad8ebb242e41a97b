"""Shared helpers for target-insider-one tests."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from target_insider_one.target import TargetInsiderOne

BASE_URL = "https://insider.test"
UPSERT_URL = f"{BASE_URL}/api/user/v1/upsert"
COLUMNS_URL = f"{BASE_URL}/api/user/v3/metadata/columns"
# What the start-up check gets: defaults plus the demo mapping's custom attributes.
COLUMNS = [
    {"key": "em", "display_name": "Email", "type": "string"},
    {"key": "na", "display_name": "Name", "type": "string"},
    *(
        {"key": f"c_{name}", "display_name": name, "type": "string"}
        for name in ("data_source", "loyalty_points", "lifetime_value")
    ),
]

CUSTOMERS_SCHEMA = {
    "type": "object",
    "properties": {
        "SubscriberKey": {"type": ["string"]},
        "EmailAddress": {"type": ["string", "null"]},
        "Phone": {"type": ["string", "null"]},
        "FirstName": {"type": ["string", "null"]},
        "LastName": {"type": ["string", "null"]},
        "City": {"type": ["string", "null"]},
        "Country": {"type": ["string", "null"]},
        "BirthDate": {"type": ["string", "null"], "format": "date-time"},
        "LoyaltyPoints": {"type": ["integer", "null"]},
        "LifetimeValue": {"type": ["number", "null"]},
        "EmailOptIn": {"type": ["boolean", "null"]},
        "ModifiedDate": {"type": ["string", "null"], "format": "date-time"},
    },
}

DEMO_MAPPING: dict[str, Any] = {
    "identifier_mappings": [
        {"type": "uuid", "field": "SubscriberKey"},
        {"type": "email", "field": "EmailAddress"},
        {"type": "phone_number", "field": "Phone"},
    ],
    "attribute_mappings": {
        "FirstName": "name",
        "LastName": "surname",
        "City": "city",
        "Country": "country",
        "BirthDate": "birthday",
        "EmailOptIn": "email_optin",
        "LoyaltyPoints": "loyalty_points",
        "LifetimeValue": "lifetime_value",
    },
    "fixed_value_mappings": {"data_source": "sfmc"},
}


def customer(i: int, **overrides: Any) -> dict[str, Any]:
    record = {
        "SubscriberKey": f"CUST-{i:06d}",
        "EmailAddress": f"user{i}@example.com",
        "Phone": f"+4479111{i % 100000:05d}",
        "FirstName": f"First{i}",
        "LastName": "Last",
        "City": "London",
        "Country": "GB",
        "BirthDate": "1990-12-10T00:00:00Z",
        "LoyaltyPoints": i,
        "LifetimeValue": 10.5,
        "EmailOptIn": True,
        "ModifiedDate": "2026-01-01T00:00:00Z",
    }
    record.update(overrides)
    return record


def schema_msg(stream: str = "Customers", schema: dict | None = None, keys: list | None = None):
    return {
        "type": "SCHEMA",
        "stream": stream,
        "schema": schema or CUSTOMERS_SCHEMA,
        "key_properties": keys if keys is not None else ["SubscriberKey"],
    }


def record_msg(record: dict, stream: str = "Customers") -> dict:
    return {"type": "RECORD", "stream": stream, "record": record}


def state_msg(value: Any) -> dict:
    return {"type": "STATE", "value": {"bookmarks": {"Customers": {"v": value}}}}


@dataclass
class RunResult:
    target: TargetInsiderOne
    stdout: str
    error: BaseException | None = None
    states: list[dict] = field(default_factory=list)

    @property
    def stats(self) -> dict[str, Any]:
        return self.target.runtime.stats.as_dict()

    def dead_letters(self) -> list[dict]:
        path = self.target.runtime.settings.dead_letter_path
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


def run_target(config: dict, messages: list[dict], *, expect_error: bool = False) -> RunResult:
    target = TargetInsiderOne(config=config)
    lines = "".join(json.dumps(m) + "\n" for m in messages)
    out = io.StringIO()
    error = None
    with contextlib.redirect_stdout(out):
        try:
            target.listen(io.StringIO(lines))
        except Exception as exc:
            if not expect_error:
                raise
            error = exc
    if error is None:
        # Every record received is accounted for: upserted (or would be, in a dry run) or
        # dead-lettered.
        counts = target.runtime.stats.as_dict()
        sent = counts["dry_run_users"] or counts["users_upserted"]
        assert sent + counts["records_dead_lettered"] == counts["records_received"]
        assert counts["records_undelivered"] == 0
    stdout = out.getvalue()
    states = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return RunResult(target=target, stdout=stdout, error=error, states=states)


def sent_bodies(mocker) -> list[dict]:
    """Upsert bodies sent (the start-up check's request is not one)."""
    return [json.loads(r.body) for r in mocker.request_history if r.url == UPSERT_URL]


def upsert_calls(mocker) -> int:
    """Upsert requests made (the start-up check's request is not one)."""
    return sum(1 for r in mocker.request_history if r.url == UPSERT_URL)


def ok_response(count: int) -> dict:
    return {"data": {"successful": {"count": count}, "fail": {}}}


def ok_callback(request, context):
    users = json.loads(request.body)["users"]
    context.status_code = 200
    return ok_response(len(users))


@pytest.fixture(autouse=True)
def _columns_endpoint(request):
    """Tests that mock Insider with requests-mock also answer the start-up check."""
    if "requests_mock" in request.fixturenames:
        request.getfixturevalue("requests_mock").post(COLUMNS_URL, json=COLUMNS)


@pytest.fixture
def make_config(tmp_path, request):
    # Without requests-mock there is no Insider to ask (tests that replace the client's
    # upsert): the start-up check is off there; it is tested on its own.
    preflight = "requests_mock" in request.fixturenames

    def factory(**overrides: Any) -> dict:
        config = {
            "preflight": preflight,
            "partner_name": "acmeshop",
            "api_key": "super-secret-key-123",
            "api_base_url": BASE_URL,
            "backoff_base_seconds": 0,
            "backoff_max_seconds": 0,
            "dead_letter_path": str(tmp_path / "dead.jsonl"),
            "dry_run_path": str(tmp_path / "dry.jsonl"),
            **DEMO_MAPPING,
        }
        config.update(overrides)
        return config

    return factory
