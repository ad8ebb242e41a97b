"""Insider upsert: auth, request limits, per-user validation keys, profile store."""

from __future__ import annotations

import json

import pytest
from api_sandbox.config import SandboxConfig
from api_sandbox.insider import Insider

HEADERS = {"X-PARTNER-NAME": "sandboxpartner", "X-REQUEST-TOKEN": "sandbox-api-key"}
EMAIL_KEY = r"users.{i}.identifiers.*.regexp(^.+@.+\..+$)"
PHONE_KEY = r"users.{i}.identifiers.*.regexp(^\+[1-9]\d{{6,14}}$)"


def upsert(sandbox, http, body, headers=None, **kwargs):
    return http.post(
        f"{sandbox.insider_url}/api/user/v1/upsert",
        json=body,
        headers={**HEADERS, **(headers or {})},
        timeout=30,
        **kwargs,
    )


def user(i, **attrs):
    return {
        "identifiers": {"uuid": f"u{i}", "email": f"u{i}@example.com"},
        "attributes": attrs or {"name": f"N{i}"},
    }


def test_all_valid(sandbox, http):
    resp = upsert(sandbox, http, {"users": [user(1), user(2)], "skip_hook": True})
    assert resp.status_code == 200
    assert resp.json() == {"data": {"successful": {"count": 2}, "fail": {}}}
    log = sandbox.requests()
    assert len(log) == 1
    assert log[0]["users"] == 2
    assert log[0]["skip_hook"] is True
    assert log[0]["partner"] == "sandboxpartner"
    assert log[0]["status"] == 200
    assert log[0]["bytes"] > 0


def test_partial_failure_keys(sandbox, http):
    users = [
        user(0),
        {"identifiers": {"phone_number": "98765432"}, "attributes": {"name": "x"}},
        {"identifiers": {"uuid": 12345, "email": "ada"}, "attributes": {"name": "x"}},
        {"attributes": {"name": "x"}},
        {"identifiers": {"loyalty_id": "L1"}, "attributes": {"name": "x"}},
        {"identifiers": {"uuid": "ok"}},
        {"identifiers": {"uuid": "ok2"}, "attributes": {}},
        {
            "identifiers": {"phone_number": "+6598765432", "custom": {"loyalty_id": "L2"}},
            "attributes": {"a": 1},
        },
    ]
    resp = upsert(sandbox, http, {"users": users})
    assert resp.status_code == 200
    data = resp.json()["data"]
    assert data["successful"] == {"count": 2}
    assert data["fail"]["count"] == 6
    errors = data["fail"]["errors"]
    assert errors[PHONE_KEY.format(i=1)] == ["user has an invalid phone number: 98765432"]
    assert errors["users.2.identifiers.*.type(string)"] == ["uuid must be string: 12345"]
    assert errors[EMAIL_KEY.format(i=2)] == ["not a valid email address: ada"]
    assert errors["users.3.identifiers.required"] == [
        "either insider_id or idenifiers must be specified"
    ]
    assert errors["users.3.insider_id.required"] == [
        "either insider_id or idenifiers must be specified"
    ]
    assert errors["users.4.identifiers.*.in(defaults_column)"] == [
        "key must be one of phone_number(pn), email(em) or uuid"
    ]
    assert "users.5.attributes.required" in errors
    assert "users.6.attributes.required" in errors
    assert len(sandbox.profiles()) == 2


def test_all_failed_successful_is_empty_object(sandbox, http):
    resp = upsert(
        sandbox, http, {"users": [{"identifiers": {"email": "bad"}, "attributes": {"a": 1}}]}
    )
    assert resp.json()["data"]["successful"] == {}
    assert resp.json()["data"]["fail"]["count"] == 1


def test_events_validation(sandbox, http):
    users = [
        {
            "identifiers": {"uuid": "e1"},
            "events": [{"event_name": "HomepageView", "timestamp": "2024-01-01T00:00:00Z"}],
        },
        {
            "identifiers": {"uuid": "e2"},
            "events": [{"event_name": "purchase", "timestamp": "2024-01-01T00:00:00Z"}],
        },
        {
            "identifiers": {"uuid": "e3"},
            "events": [{"event_name": "login", "timestamp": "2024-01-01T00:00:00Z"}],
        },
    ]
    data = upsert(sandbox, http, {"users": users}).json()["data"]
    assert data["successful"] == {"count": 1}
    errors = data["fail"]["errors"]
    assert errors["users.0.events.0.event_name.*.regexp(^[a-z0-9][a-zA-Z0-9._-]*$)"] == [
        "invalid event name: HomepageView"
    ]
    assert len(errors["users.1.events.0.event_params.*.required"]) == 4


@pytest.mark.parametrize(
    "headers",
    [
        {"X-PARTNER-NAME": "SANDBOXPARTNER"},
        {"X-PARTNER-NAME": "other"},
        {"X-REQUEST-TOKEN": "wrong"},
    ],
)
def test_bad_auth_403(sandbox, http, headers):
    resp = upsert(sandbox, http, {"users": [user(1)]}, headers=headers)
    assert resp.status_code == 403
    assert resp.json() == {
        "success": False,
        "message": "Access Denied. You do not have sufficient access to perform this action.",
    }
    assert sandbox.profiles() == []


@pytest.mark.parametrize(
    ("status", "message"),
    [(401, "Partner token authentication failed."), (400, "Partner is invalid.")],
)
def test_bad_auth_variants(sandbox, http, status, message):
    sandbox.configure(insider_auth_failure_status=status)
    for headers in ({"X-REQUEST-TOKEN": "x"}, {"X-PARTNER-NAME": "SandboxPartner"}):
        resp = upsert(sandbox, http, {"users": [user(1)]}, headers=headers)
        assert (resp.status_code, resp.json()) == (status, {"success": False, "message": message})
    assert upsert(sandbox, http, {"users": [user(1)]}).status_code == 200


def test_request_level_errors(sandbox, http):
    resp = upsert(sandbox, http, {"skip_hook": False})
    assert (resp.status_code, resp.json()) == (400, {"error": "users must be defined: bad request"})
    resp = http.post(
        f"{sandbox.insider_url}/api/user/v1/upsert",
        data=b"{not json",
        headers={**HEADERS, "Content-Type": "application/json"},
        timeout=10,
    )
    assert resp.status_code == 400
    resp = http.post(
        f"{sandbox.insider_url}/api/user/v1/upsert",
        data=json.dumps({"users": [user(1)]}),
        headers={**HEADERS, "Content-Type": "text/plain"},
        timeout=10,
    )
    assert resp.status_code == 400


def test_user_limit(sandbox, http):
    users = [user(i) for i in range(1001)]
    assert upsert(sandbox, http, {"users": users}).status_code == 400
    assert sandbox.requests()[0]["users"] == 1001
    assert upsert(sandbox, http, {"users": users[:1000]}).json()["data"]["successful"] == {
        "count": 1000
    }


def test_size_limit_and_413_switch(sandbox, http):
    big = {"users": [user(1, blob="x" * 5_000_000)]}
    resp = upsert(sandbox, http, big)
    assert resp.status_code == 400
    assert resp.json() == {
        "error": "request body is bigger than maximum allowed size 5,000,000 bytes"
    }
    sandbox.configure(insider_oversize_status=413)
    assert upsert(sandbox, http, big).status_code == 413


def test_profile_merge_and_arrays(sandbox, http):
    upsert(
        sandbox,
        http,
        {"users": [{"identifiers": {"uuid": "a"}, "attributes": {"custom": {"tags": ["x"]}}}]},
    )
    upsert(
        sandbox,
        http,
        {"users": [{"identifiers": {"email": "a@example.com"}, "attributes": {"name": "A"}}]},
    )
    # shares identifiers with both existing profiles -> they merge into one
    upsert(
        sandbox,
        http,
        {
            "users": [
                {
                    "identifiers": {"uuid": "a", "email": "a@example.com"},
                    "attributes": {"custom": {"tags": ["y"]}},
                }
            ]
        },
    )
    profiles = sandbox.profiles()
    assert len(profiles) == 1
    assert profiles[0]["attributes"]["custom"]["tags"] == ["x", "y"]
    assert profiles[0]["attributes"]["name"] == "A"
    upsert(
        sandbox,
        http,
        {
            "users": [
                {
                    "identifiers": {"uuid": "a"},
                    "attributes": {"custom": {"tags": ["z"]}},
                    "not_append": True,
                }
            ]
        },
    )
    assert sandbox.profiles()[0]["attributes"]["custom"]["tags"] == ["z"]
    upsert(
        sandbox,
        http,
        {
            "not_append": True,
            "users": [
                {
                    "identifiers": {"uuid": "a"},
                    "attributes": {"custom": {"tags": ["w"]}},
                    "append": True,
                }
            ],
        },
    )
    assert sandbox.profiles()[0]["attributes"]["custom"]["tags"] == ["z", "w"]


@pytest.mark.parametrize(
    ("placement", "per_user_honoured", "top_level_honoured"),
    [("both", True, True), ("user", True, False), ("top", False, True)],
)
def test_append_flag_placement_switch(
    sandbox, http, placement, per_user_honoured, top_level_honoured
):
    def tags_after(body_extra, user_extra):
        sandbox.reset()
        sandbox.configure(insider_append_flag_placement=placement)
        for tag in ("x", "y"):
            one = {"identifiers": {"uuid": "a"}, "attributes": {"custom": {"tags": [tag]}}}
            resp = upsert(sandbox, http, {**body_extra, "users": [{**one, **user_extra}]})
            assert resp.json()["data"]["successful"] == {"count": 1}
        return sandbox.profiles()[0]["attributes"]["custom"]["tags"]

    assert tags_after({}, {"not_append": True}) == (["y"] if per_user_honoured else ["x", "y"])
    assert tags_after({"not_append": True}, {}) == (["y"] if top_level_honoured else ["x", "y"])
    assert tags_after({}, {}) == ["x", "y"]  # appending is the default everywhere


def test_rules_use_go_regexp_semantics_not_pythons(sandbox, http):
    # Python's "$" matches before a trailing newline and "." (with DOTALL) across one; the
    # platform's rules do neither, so a value with a stray newline must fail.
    users = [
        {"identifiers": {"email": "a@example.com\n"}, "attributes": {"name": "A"}},
        {"identifiers": {"phone_number": "+447700900123\n"}, "attributes": {"name": "B"}},
        {"identifiers": {"email": "a\n@example.com"}, "attributes": {"name": "C"}},
        # a full-width digit: Go's \d, unlike Python's, is ASCII-only
        {"identifiers": {"phone_number": "+44770090\uff10123"}, "attributes": {"name": "D"}},
        {"identifiers": {"email": "ok@example.com"}, "attributes": {"name": "E"}},
    ]
    resp = upsert(sandbox, http, {"users": users})
    assert resp.status_code == 200
    data = resp.json()["data"]
    assert data["successful"] == {"count": 1}
    assert data["fail"]["count"] == 4
    assert sorted(k.split(".")[1] for k in data["fail"]["errors"]) == ["0", "1", "2", "3"]


def columns(sandbox, http, body=None, headers=None):
    return http.post(
        f"{sandbox.insider_url}/api/user/v3/metadata/columns",
        json={"table": "contacts"} if body is None else body,
        headers={**HEADERS, **(headers or {})},
        timeout=10,
    )


def test_platform_header_and_columns(sandbox, http):
    upsert(sandbox, http, {"users": [user(1)]}, headers={"X-PLATFORM-NAME": "singer"})
    assert sandbox.requests()[0]["platform"] == "singer"
    resp = columns(sandbox, http)
    assert resp.status_code == 200
    assert {"key", "display_name"} <= set(resp.json()[0])


def test_columns_lists_defaults_and_the_custom_attributes_the_account_knows(sandbox, http):
    sandbox.configure(insider_custom_attributes=["loyalty_tier"])
    keys = {c["key"] for c in columns(sandbox, http).json()}
    assert {"em", "pn", "na", "c_loyalty_tier"} <= keys
    assert "c_vip" not in keys
    upsert(sandbox, http, {"users": [user(1, custom={"vip": True, "tags": ["a"]})]})
    listed = {c["key"]: c["type"] for c in columns(sandbox, http).json()}
    assert listed["c_vip"] == "boolean"
    assert listed["c_tags"] == "array"
    assert columns(sandbox, http, {"table": "events"}).json() == []
    assert columns(sandbox, http, {"table": "nope"}).status_code == 400


@pytest.mark.parametrize("status", [403, 401, 400])
def test_columns_refuses_bad_credentials_like_upsert(sandbox, http, status):
    sandbox.configure(insider_auth_failure_status=status)
    resp = columns(sandbox, http, headers={"X-REQUEST-TOKEN": "wrong"})
    assert resp.status_code == status
    assert (
        resp.json()
        == upsert(sandbox, http, {"users": [user(1)]}, headers={"X-REQUEST-TOKEN": "wrong"}).json()
    )
    assert (
        columns(sandbox, http, headers={"X-PARTNER-NAME": "SandboxPartner"}).status_code == status
    )


def test_columns_requests_are_in_the_log_and_take_faults(sandbox, http):
    sandbox.add_faults({"endpoint": "columns", "status": 503})
    assert columns(sandbox, http).status_code == 503
    assert columns(sandbox, http).status_code == 200
    upsert(sandbox, http, {"users": [user(1)]})
    log = sandbox.requests(endpoint="columns")
    assert [(r["status"], r["fault"], r["table"]) for r in log] == [
        (503, True, "contacts"),
        (200, False, "contacts"),
    ]
    assert [r["endpoint"] for r in sandbox.requests(endpoint=None)] == [
        "columns",
        "columns",
        "upsert",
    ]
    assert len(sandbox.requests()) == 1  # upserts only by default
    counters = sandbox.state()["counters"]
    assert counters["requests"]["columns"] == 2
    assert counters["upsert_requests"] == 1


def test_merged_profiles_keep_every_identifier_routed_to_the_survivor():
    insider = Insider(SandboxConfig())

    def send(**identifiers):
        body = {"users": [{"identifiers": identifiers, "attributes": {"name": "x"}}]}
        assert insider.upsert(body)["data"]["successful"] == {"count": 1}

    send(uuid="a")
    send(email="a@example.com")
    send(phone_number="+447700900123")
    send(uuid="a", email="a@example.com")  # merges profiles 1 and 2
    send(email="a@example.com", phone_number="+447700900123")  # then 3 into them
    assert len(insider.profiles) == 1
    survivor = next(iter(insider.profiles))
    assert set(insider.index.values()) == {survivor}
    send(phone_number="+447700900123")  # an absorbed profile's identifier
    assert len(insider.profiles) == 1
    assert insider.profiles[survivor].upserts == 6


def test_chunked_request_body_on_a_kept_alive_connection(sandbox, http):
    body = json.dumps({"users": [user(1), user(2)]}).encode()
    pieces = iter([body[:10], body[10:]])  # a generator makes requests send it chunked
    resp = upsert(sandbox, http, None, data=pieces, headers={"Content-Type": "application/json"})
    assert resp.json()["data"]["successful"] == {"count": 2}
    assert resp.request.headers.get("Transfer-Encoding") == "chunked"
    # the same pooled connection still parses the next request cleanly
    assert upsert(sandbox, http, {"users": [user(3)]}).status_code == 200
    assert len(sandbox.profiles()) == 3
