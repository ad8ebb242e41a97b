"""End to end: the real CLI, over real HTTP, against the sandbox's Insider emulator."""

from __future__ import annotations

import json

import pytest
from target_insider_one.settlement import ExitCode

from .conftest import DEMO_MAPPING, customer, record_msg, schema_msg, state_msg
from .e2e_helpers import run_cli

pytestmark = pytest.mark.e2e


def demo_config(sandbox, **overrides):
    options = {**DEMO_MAPPING, "backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05}
    return sandbox.target_config(**{**options, **overrides})


def stream(n: int, start: int = 0, state: int | None = 1, **overrides) -> list[dict]:
    msgs = [schema_msg()]
    msgs += [record_msg(customer(i, **overrides)) for i in range(start, start + n)]
    if state is not None:
        msgs.append(state_msg(state))
    return msgs


def test_demo_mapping_lands_in_insider(sandbox, tmp_path):
    config = demo_config(sandbox, partner_name="SandboxPartner", skip_hook=True)
    records = stream(2, state=None)
    records.insert(
        1,
        record_msg(
            customer(
                7,
                EmailAddress=" Ada@Example.COM ",
                Phone="020 7946 0958",
                BirthDate="1990-12-10T00:00:00-06:00",
                LifetimeValue=1520.75,
            )
        ),
    )
    records.append(state_msg(42))
    result = run_cli({**config, "phone_default_region": "GB"}, records, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.states == [{"bookmarks": {"Customers": {"v": 42}}}]
    profiles = sandbox.profiles()
    assert len(profiles) == 3
    ada = next(p for p in profiles if p["identifiers"].get("uuid") == "CUST-000007")
    assert ada["identifiers"] == {
        "uuid": "CUST-000007",
        "email": "ada@example.com",
        "phone_number": "+442079460958",
    }
    assert ada["attributes"]["birthday"] == "1990-12-10T00:00:00Z"
    assert ada["attributes"]["email_optin"] is True
    assert ada["attributes"]["custom"] == {
        "data_source": "sfmc",
        "loyalty_points": 7,
        "lifetime_value": 1520.75,
    }
    log = sandbox.requests()
    assert [(r["status"], r["users"], r["skip_hook"], r["partner"]) for r in log] == [
        (200, 3, True, "sandboxpartner")
    ]
    # Summary is logged, secrets and PII are not.
    assert "Insider run summary (succeeded)" in result.stderr
    assert "sandbox-api-key" not in result.stderr
    assert "ada@example.com" not in result.stderr.lower()


def test_replay_is_idempotent(sandbox, tmp_path):
    config = demo_config(sandbox)
    for _ in range(2):
        assert run_cli(config, stream(5), tmp_path).returncode == 0
    profiles = sandbox.profiles()
    assert len(profiles) == 5
    assert all(p["upserts"] == 2 for p in profiles)


def test_transient_faults_are_retried(sandbox, tmp_path):
    sandbox.add_faults(
        {"endpoint": "upsert", "status": 429, "retry_after": 1},
        {"endpoint": "upsert", "status": 429},
        {"endpoint": "upsert", "status": 403, "message": "Request Limit Exceeded"},
        {"endpoint": "upsert", "status": 502},
        {"endpoint": "upsert", "action": "drop"},
    )
    result = run_cli(demo_config(sandbox), stream(3), tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(sandbox.profiles()) == 3
    assert all(rule["fired"] == 1 for rule in sandbox.faults())
    assert "requests / retries:      6 / 5" in result.stderr
    assert result.states


def test_bad_credentials_fail_fast_with_clear_message(sandbox, tmp_path):
    config = demo_config(sandbox, api_key="wrong-key-value")
    result = run_cli(config, stream(3), tmp_path)
    assert result.returncode == 1
    assert result.states == []
    assert "partner_name" in result.stderr
    assert "Unified Customer Database (UCD)" in result.stderr
    assert "wrong-key-value" not in result.stderr
    # Caught by the start-up check, before any input was read: no upsert, not retried.
    assert sandbox.requests() == []
    assert len(sandbox.requests(endpoint="columns")) == 1


def test_fast_fail_on_exits_nonzero_without_state(sandbox, tmp_path):
    sandbox.add_faults({"endpoint": "upsert", "status": 503, "times": None})
    result = run_cli(demo_config(sandbox, fast_fail=True, max_retries=2), stream(3), tmp_path)
    assert result.returncode == ExitCode.UNDELIVERED
    assert result.states == []
    assert "fast_fail" in result.stderr
    assert "Insider run summary (failed): 0 dead-lettered, 3 not delivered (server_error=3)" in (
        result.stderr
    )
    assert "requests / retries:      3 / 2" in result.stderr  # first attempt + max_retries
    assert sandbox.faults()[0]["fired"] == 3
    assert sandbox.profiles() == []
    # Not delivered is not rejected: nothing is dead-lettered, the next run re-sends them.
    assert result.dead_letters() == []


def test_fast_fail_off_delivers_the_rest_then_exits_nonzero(sandbox, tmp_path):
    sandbox.add_faults({"endpoint": "upsert", "status": 500, "times": 2})
    config = demo_config(sandbox, max_retries=1, batch_size_rows=2, max_concurrent_requests=1)
    result = run_cli(config, stream(4), tmp_path)
    assert result.returncode == ExitCode.UNDELIVERED, result.stderr
    assert result.states == []
    assert result.dead_letters() == []
    assert len(sandbox.profiles()) == 2  # the other batch was delivered
    assert "2 not delivered (server_error=2)" in result.stderr


def test_partial_failure_body_maps_to_records(sandbox, tmp_path):
    body = {
        "data": {
            "successful": {"count": 2},
            "fail": {
                "count": 1,
                "errors": {
                    "users.1.identifiers.*.regexp(^.+@.+\\..+$)": ["not a valid email address: x"]
                },
            },
        }
    }
    sandbox.add_faults({"endpoint": "upsert", "status": 200, "body": body})
    result = run_cli(demo_config(sandbox), stream(3), tmp_path)
    assert result.returncode == 0, result.stderr
    letters = result.dead_letters()
    assert [(d["reason"], d["record"]["SubscriberKey"]) for d in letters] == [
        ("rejected_by_insider", "CUST-000001")
    ]
    assert "rejected by Insider:     1" in result.stderr


def test_users_insider_would_reject_are_caught_before_sending(sandbox, tmp_path):
    # The target checks before sending, so users Insider would reject never leave it.
    config = demo_config(
        sandbox,
        identifier_mappings=[{"type": "uuid", "field": "SubscriberKey"}],
        attribute_mappings={"FirstName": "name"},
        fixed_value_mappings={},
    )
    result = run_cli(config, stream(2, FirstName=None), tmp_path)
    assert result.returncode == 0
    assert {d["reason"] for d in result.dead_letters()} == {"no_attributes"}
    assert sandbox.requests() == []


def test_user_count_limit_split_by_server_answer(sandbox, tmp_path):
    sandbox.configure(insider_max_users=10)
    result = run_cli(demo_config(sandbox), stream(25), tmp_path)
    assert result.returncode == 0, result.stderr
    log = sandbox.requests()
    assert sum(r["users"] for r in log if r["status"] == 200) == 25
    assert any(r["status"] == 400 for r in log)
    assert len(sandbox.profiles()) == 25
    assert result.dead_letters() == []


def test_byte_limit_split_by_server_answer(sandbox, tmp_path):
    sandbox.configure(insider_max_body_bytes=20_000, insider_oversize_status=413)
    result = run_cli(demo_config(sandbox), stream(60, FirstName="x" * 500), tmp_path)
    assert result.returncode == 0, result.stderr
    log = sandbox.requests()
    assert all(r["bytes"] <= 20_000 for r in log if r["status"] == 200)
    assert len(sandbox.profiles()) == 60


def test_byte_limit_respected_up_front(sandbox, tmp_path):
    sandbox.configure(insider_max_body_bytes=20_000)
    config = demo_config(sandbox, max_request_bytes=20_000)
    result = run_cli(config, stream(60, FirstName="x" * 500), tmp_path)
    assert result.returncode == 0, result.stderr
    log = sandbox.requests()
    assert all(r["status"] == 200 and r["bytes"] <= 20_000 for r in log)
    assert len(log) > 1


def test_1000_user_requests(sandbox, tmp_path):
    result = run_cli(demo_config(sandbox), stream(2100), tmp_path)
    assert result.returncode == 0, result.stderr
    sizes = sorted(r["users"] for r in sandbox.requests())
    assert sizes == [100, 1000, 1000]
    assert len(sandbox.profiles()) == 2100


def test_dry_run_sends_nothing(sandbox, tmp_path):
    config = demo_config(sandbox, dry_run=True, dry_run_path=str(tmp_path / "dry.jsonl"))
    result = run_cli(config, stream(3), tmp_path)
    assert result.returncode == 0
    assert sandbox.requests() == []
    bodies = [json.loads(line) for line in (tmp_path / "dry.jsonl").read_text().splitlines()]
    assert len(bodies[0]["users"]) == 3
    assert result.states == []  # nothing was delivered: the bookmark must not move


def test_config_error_is_clear(sandbox, tmp_path):
    config = demo_config(sandbox, identifier_mappings=[])
    result = run_cli(config, stream(1), tmp_path)
    assert result.returncode == 1
    assert "identifier_mappings" in result.stderr


def test_http_refused_for_non_loopback(tmp_path):
    config = {"partner_name": "p", "api_key": "k", **DEMO_MAPPING}
    config["api_base_url"] = "http://insider.example.com"
    result = run_cli(config, stream(1), tmp_path)
    assert result.returncode == 1
    assert "loopback" in result.stderr


def test_real_5mb_limit_is_never_exceeded(sandbox, tmp_path):
    # 12 users of ~900 kB: about 10.8 MB in total, under the sandbox's real 5,000,000 limit.
    big = "x" * 900_000
    result = run_cli(demo_config(sandbox), stream(12, FirstName=big), tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    log = sandbox.requests()
    assert all(r["status"] == 200 for r in log)
    assert all(r["bytes"] <= 5_000_000 for r in log)
    assert sorted(r["users"] for r in log) == [2, 5, 5]
    assert len(sandbox.profiles()) == 12


def test_fatal_error_message_is_redacted_too(sandbox, tmp_path):
    # The last line ("stopped: ...") is logged after the summary; the API key must still be
    # redacted there, wherever it comes from (here: a base URL that contains it).
    config = demo_config(sandbox)
    config["api_base_url"] += "/" + config["api_key"]
    result = run_cli(config, stream(1), tmp_path)
    assert result.returncode == 1
    assert "check api_base_url" in result.stderr
    assert config["api_key"] not in result.stderr


@pytest.mark.parametrize("status", [401, 400])
def test_401_and_partner_invalid_400_are_credentials_failures(sandbox, tmp_path, status):
    # 400 "Partner is invalid." must not be mistaken for a bad body (dead letters + STATE).
    sandbox.configure(insider_auth_failure_status=status)
    result = run_cli(demo_config(sandbox, api_key="nope-nope-nope"), stream(2), tmp_path)
    assert result.returncode == 1
    assert "Insider rejected the credentials" in result.stderr
    assert result.states == []
    assert result.dead_letters() == []


def test_sigterm_during_delivery_exits_without_state(sandbox, tmp_path):
    import signal
    import subprocess
    import time

    from .e2e_helpers import TARGET_CLI

    # The request hangs far longer than the exit may take.
    sandbox.add_faults({"endpoint": "upsert", "action": "delay", "delay_seconds": 30})
    config_path = tmp_path / "config.json"
    config_path.write_text(
        json.dumps(demo_config(sandbox, dead_letter_path=str(tmp_path / "dead.jsonl")))
    )
    proc = subprocess.Popen(
        [str(TARGET_CLI), "--config", str(config_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.stdin is not None
    proc.stdin.write("".join(json.dumps(m) + "\n" for m in stream(3)))
    proc.stdin.close()
    deadline = time.monotonic() + 20
    while sandbox.faults()[0]["matched"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    proc.wait(timeout=40)
    assert time.monotonic() - signalled < 10  # did not wait for the hanging request
    assert proc.stdout is not None
    assert proc.stderr is not None
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == 143, stderr
    assert stdout == ""
    assert "without draining and without further STATE" in stderr


@pytest.mark.parametrize("placement", ["user", "top", "both"])
def test_replayed_array_attributes_are_replaced_wherever_insider_reads_not_append(
    sandbox, tmp_path, placement
):
    # Where Insider reads not_append is disputed; the target sends it per user and on top.
    sandbox.configure(insider_append_flag_placement=placement)
    schema = {
        "type": "SCHEMA",
        "stream": "members",
        "key_properties": ["id"],
        "schema": {
            "properties": {
                "id": {"type": "string"},
                "tags": {"type": ["array", "null"], "items": {"type": "string"}},
            }
        },
    }
    record = {"type": "RECORD", "stream": "members", "record": {"id": "m-1", "tags": ["a", "b"]}}
    config = sandbox.target_config(
        identifier_mappings=[{"type": "uuid", "field": "id"}], attribute_mappings={"tags": "tags"}
    )
    for _ in range(2):
        assert run_cli(config, [schema, record], tmp_path).returncode == 0
    (profile,) = sandbox.profiles()
    assert profile["attributes"]["custom"]["tags"] == ["a", "b"]
