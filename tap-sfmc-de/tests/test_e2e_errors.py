"""End-to-end: faults are retried, fatal errors say what to fix, secrets never leak."""

from __future__ import annotations

import json
import stat
import subprocess

import pytest
from tap_sfmc_de_testkit import AUTH_BIN, TAP_BIN, rowset_requests, run_tap, wait_until

pytestmark = pytest.mark.e2e

FAST = {"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.2, "max_retries": 4}
WRONG_SECRET = "definitely-wrong-secret-9f8e7d"


def test_transient_faults_are_survived(sandbox, tmp_path):
    sandbox.create_de("Faulty", size=450, seed=2)
    sandbox.add_faults(
        {"endpoint": "token", "status": 429, "retry_after": 0, "times": 1},
        {"endpoint": "soap", "status": 500, "message": "Token Expired", "times": 1},
        {"endpoint": "soap", "status": 500, "message": "Server busy", "times": 1, "after": 1},
        {"endpoint": "rowset", "status": 429, "retry_after": 1, "times": 1, "after": 2},
        {"endpoint": "rowset", "status": 429, "errorcode": 50200, "times": 1, "after": 3},
        {"endpoint": "rowset", "status": 503, "times": 1, "after": 4},
        {"endpoint": "rowset", "action": "drop", "times": 1, "after": 5},
        {"endpoint": "rowset", "status": 401, "times": 1, "after": 6},
        {"endpoint": "rowset", "action": "delay", "delay_seconds": 2, "times": 1, "after": 7},
    )
    # The faults hit consecutive attempts of one request, so allow more retries than that.
    config = sandbox.tap_config(
        data_extension_keys=["Faulty"],
        page_size=100,
        request_timeout=1,
        **{**FAST, "max_retries": 8},
    )
    result = run_tap(config, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len({r["SubscriberKey"] for r in result.records}) == 450
    assert all(rule["fired"] == rule["times"] for rule in sandbox.faults()), sandbox.faults()
    assert "HTTP 429 errorcode 50200" in result.stderr
    assert "Access token rejected; minting a new one" in result.stderr
    tokens_minted = sandbox.state()["counters"]["tokens_minted"]
    assert tokens_minted == 3  # first, after SOAP Token Expired, after REST 401
    assert config["client_secret"] not in result.stdout + result.stderr


def test_persistent_failure_gives_up_with_a_message(sandbox, tmp_path):
    sandbox.add_faults({"endpoint": "rowset", "status": 500, "times": None})
    result = run_tap(sandbox.tap_config(**FAST), tmp_path)
    assert result.returncode != 0
    assert "still failing after 5 attempts" in result.stderr


def test_wrong_credentials(sandbox, tmp_path):
    result = run_tap(sandbox.tap_config(client_secret=WRONG_SECRET), tmp_path)
    assert result.returncode != 0
    assert "check client_id/client_secret" in result.stderr
    assert "enabled for this business unit" in result.stderr
    assert WRONG_SECRET not in result.stderr + result.stdout


@pytest.mark.parametrize("args", [(), ("--discover",)])
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"client_secret": WRONG_SECRET}, "check client_id/client_secret"),
        ({"data_extension_keys": ["Customer Master"]}, "not the DE name"),
        ({"replication_key": "EmailAddress"}, "is EmailAddress, not Date"),
        ({"replication_key": "Updated"}, "add a Date field 'Updated'"),
        ({"start_date": "yesterday"}, "'start_date' must be an ISO-8601 date-time"),
        ({"subdomain": "MyTenant"}, "Setting 'subdomain' must be"),
    ],
)
def test_bad_input_gives_the_message_not_a_traceback(sandbox, tmp_path, override, message, args):
    result = run_tap(sandbox.tap_config(**override), tmp_path, args=args)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert WRONG_SECRET not in result.stderr + result.stdout


def test_unknown_de_key(sandbox, tmp_path):
    result = run_tap(sandbox.tap_config(data_extension_keys=["Customer Master"]), tmp_path)
    assert result.returncode != 0
    assert "use the external key (CustomerKey), not the DE name" in result.stderr


def test_missing_scope(sandbox, tmp_path):
    sandbox.configure(granted_scopes=["offline", "list_and_subscribers_read"])
    result = run_tap(sandbox.tap_config(), tmp_path)
    assert result.returncode != 0
    assert "data_extensions_read" in result.stderr
    assert "Installed Packages" in result.stderr


def test_missing_replication_key_field(sandbox, tmp_path):
    sandbox.create_de(
        "NoDate",
        fields=[
            {"name": "Id", "field_type": "Text", "is_primary_key": True, "max_length": 20},
            {"name": "Name", "field_type": "Text"},
        ],
        rows=[{"Id": "1", "Name": "a"}],
    )
    result = run_tap(sandbox.tap_config(data_extension_keys=["NoDate"]), tmp_path)
    assert result.returncode != 0
    assert "add a Date field 'ModifiedDate'" in result.stderr
    full = run_tap(sandbox.tap_config(data_extension_keys=["NoDate"], fetch_mode="full"), tmp_path)
    assert full.returncode == 0, full.stderr[-2000:]
    assert full.records == [{"Id": "1", "Name": "a"}]


def test_de_without_primary_key(sandbox, tmp_path):
    sandbox.create_de(
        "NoPk",
        fields=[
            {"name": "Name", "field_type": "Text"},
            {"name": "ModifiedDate", "field_type": "Date"},
        ],
        rows=[
            {"Name": "a", "ModifiedDate": "2024-01-01T00:00:00"},
            {"Name": "b", "ModifiedDate": "2024-01-02T00:00:00"},
        ],
    )
    config = sandbox.tap_config(data_extension_keys=["NoPk"])
    catalog = run_tap(config, tmp_path, args=("--discover",))
    entry = json.loads(catalog.stdout)["streams"][0]
    assert entry["key_properties"] == []
    result = run_tap(config, tmp_path)
    assert sorted(r["Name"] for r in result.records) == ["a", "b"]


def test_refresh_token_flow_rotates_and_persists(sandbox, tmp_path):
    store = tmp_path / ".secrets" / "rt.json"
    config = sandbox.tap_config(
        auth_flow="refresh_token",
        token_store_path=str(store),
        redirect_uri="http://127.0.0.1/callback",
    )
    config_path = tmp_path / "auth-config.json"
    config_path.write_text(json.dumps(config))
    exchange = subprocess.run(
        [AUTH_BIN, "exchange", "--config", str(config_path), "--code", "sandbox-auth-code"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert exchange.returncode == 0, exchange.stderr
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    first = json.loads(store.read_text())["refresh_token"]
    assert first not in exchange.stdout + exchange.stderr
    run1 = run_tap(config, tmp_path / "r1")
    assert run1.returncode == 0, run1.stderr[-2000:]
    second = json.loads(store.read_text())["refresh_token"]
    assert second != first
    run2 = run_tap(config, tmp_path / "r2")
    assert run2.returncode == 0, run2.stderr[-2000:]
    assert json.loads(store.read_text())["refresh_token"] != second
    for text in (run1.stdout, run1.stderr, run2.stdout, run2.stderr):
        assert first not in text
        assert second not in text
    # A replayed (already used) refresh token is refused with instructions.
    store.write_text(json.dumps({"refresh_token": first}))
    replay = run_tap(config, tmp_path / "r3")
    assert replay.returncode != 0
    assert "tap_sfmc_de.auth exchange" in replay.stderr


def test_token_expiry_mid_run_remints_once(sandbox, tmp_path):
    sandbox.create_de("Slow", size=600, seed=6)
    sandbox.configure(latency={"rowset": 0.1})
    config = sandbox.tap_config(data_extension_keys=["Slow"], page_size=25)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    proc = subprocess.Popen(
        [TAP_BIN, "--config", str(config_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    # Observable event, not a guess: the tap has read a few of its 24 pages (0.1 s each).
    wait_until(
        lambda: sandbox.state()["counters"]["pages_served"].get("Slow", 0) >= 3,
        what="the tap to read its first pages",
    )
    assert sandbox.expire_tokens() >= 1
    assert proc.poll() is None, "the tap finished before its token could expire mid-run"
    assert sandbox.state()["counters"]["pages_served"]["Slow"] < 24
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    records = [line for line in out.decode().splitlines() if '"RECORD"' in line]
    assert len(records) == 600
    assert sandbox.state()["counters"]["tokens_minted"] == 2
    assert b"Access token rejected; minting a new one" in err


def test_concurrent_processes_share_the_rotating_refresh_token(sandbox, tmp_path):
    """Three taps refresh at the same time: the lock serialises them, none replays a token."""
    store = tmp_path / "rt.json"
    config = sandbox.tap_config(
        auth_flow="refresh_token",
        token_store_path=str(store),
        redirect_uri="http://127.0.0.1/callback",
        page_size=100,
        max_pages_per_run=5,
    )
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    subprocess.run(
        [AUTH_BIN, "exchange", "--config", str(config_path), "--code", "sandbox-auth-code"],
        check=True,
        capture_output=True,
    )
    procs = [
        subprocess.Popen(
            [TAP_BIN, "--config", str(config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
        )
        for _ in range(3)
    ]
    errors = [proc.communicate(timeout=60)[1].decode() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], errors
    assert sandbox.state()["counters"]["refresh_tokens_used"] == 3


def test_server_requested_waits_are_capped_and_malformed_ones_ignored(sandbox, tmp_path):
    sandbox.create_de("Throttled", size=30, seed=3)
    sandbox.add_faults(
        {"endpoint": "rowset", "status": 429, "retry_after": 100_000, "times": 1},
        {"endpoint": "rowset", "status": 429, "retry_after": -30, "times": 1, "after": 1},
        {
            "endpoint": "rowset",
            "status": 429,
            "body": {"errorcode": 50100, "message": "Rate limit", "retryAfter": "soon"},
            "times": 1,
            "after": 2,
        },
    )
    config = sandbox.tap_config(
        data_extension_keys=["Throttled"], max_retry_after_seconds=0.2, **FAST
    )
    result = run_tap(config, tmp_path, timeout=60)  # an uncapped wait would take 27 hours
    assert result.returncode == 0, result.stderr[-3000:]
    assert len({r["SubscriberKey"] for r in result.records}) == 30
    assert [rule["fired"] for rule in sandbox.faults()] == [1, 1, 1]
    assert "server asked 100000s, capped by max_retry_after_seconds" in result.stderr


def test_a_persistent_throttle_stops_at_the_retry_budget(sandbox, tmp_path):
    sandbox.add_faults({"endpoint": "rowset", "status": 429, "retry_after": 1, "times": None})
    config = sandbox.tap_config(
        max_retry_after_seconds=0.3, retry_budget_seconds=1, **{**FAST, "max_retries": 50}
    )
    result = run_tap(config, tmp_path, timeout=60)
    assert result.returncode == 1
    assert "would exceed retry_budget_seconds 1" in result.stderr
    assert "Traceback" not in result.stderr
    # three waits of 0.3 s fit into 1 s: four attempts, then the run stops
    assert sandbox.faults()[0]["fired"] == 4


# Each page lies once in a way that would end the window early or skip rows if believed.
CONTENT_FAULTS = {
    "empty-but-more": {"action": "empty_page", "page": 3},
    "empty-items-list": {"action": "empty_page", "empty_items": "empty", "page": 3},
    "count-jump-on-last-page": {"action": "count_jump", "count_delta": 300, "page": 5},
    "longer-than-asked": {"action": "long_page", "extra_rows": 50, "page": 3},
}


@pytest.mark.parametrize("fault", CONTENT_FAULTS.values(), ids=CONTENT_FAULTS.keys())
def test_a_page_that_contradicts_itself_is_read_again_not_taken_as_the_end(
    sandbox, tmp_path, fault
):
    sandbox.create_de("Lying", size=1000, seed=4)
    sandbox.add_faults({"endpoint": "rowset", "times": 1, **fault})
    config = sandbox.tap_config(data_extension_keys=["Lying"], page_size=200, max_pages_per_run=12)
    result = run_tap(config, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [rule["fired"] for rule in sandbox.faults()] == [1]
    assert "requesting the page again" in result.stderr
    assert {r["SubscriberKey"] for r in result.records} == {
        r["SubscriberKey"] for r in sandbox.rows("Lying")
    }
    assert "window" not in result.state["bookmarks"]["de_lying"]
    assert rowset_requests(sandbox) <= 12


def test_a_page_that_keeps_contradicting_itself_fails_the_run_and_keeps_the_cursor(
    sandbox, tmp_path
):
    sandbox.create_de("Lying", size=1000, seed=4)
    sandbox.add_faults({"endpoint": "rowset", "action": "empty_page", "page": 3, "times": None})
    config = sandbox.tap_config(data_extension_keys=["Lying"], page_size=200, max_pages_per_run=12)
    result = run_tap(config, tmp_path)
    assert result.returncode != 0
    assert "served no rows on page 3 but a link to a next page (3 times in a row)" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    stream = result.state["bookmarks"]["de_lying"]
    assert stream["window"]["next_page"] == 3
    assert "replication_key_value" not in stream
    assert len(result.records) == 400
    assert rowset_requests(sandbox) <= 12
