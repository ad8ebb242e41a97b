"""End-to-end: edge values planted in the sandbox never block a stream nor leak into logs."""

from __future__ import annotations

import json

import pytest
from tap_sfmc_de_testkit import run_tap

pytestmark = pytest.mark.e2e

FIELDS = [
    {"name": "SubscriberKey", "field_type": "EmailAddress", "is_primary_key": True},
    {"name": "ModifiedDate", "field_type": "Date"},
    {"name": "ValidUntil", "field_type": "Date"},
    {"name": "Note", "field_type": "Text", "max_length": 4000},
    {"name": "Points", "field_type": "Number"},
    {"name": "Amount", "field_type": "Decimal", "scale": 2},
    {"name": "OptIn", "field_type": "Boolean"},
    {"name": "Phone", "field_type": "Phone"},
    {"name": "Locale", "field_type": "Locale"},
]
END_OF_TIME = "9999-12-31T23:59:59"  # SFMC wall clock: 12/31/9999 11:59:59 PM in UTC-6
CONTROL = "tab\tnul\x00esc\x1bdel\x7f line\nbreak"
HUGE = "x" * 200_000
ROWS = [
    {"SubscriberKey": "plain@example.com", "ModifiedDate": "2024-01-01T00:00:00",
     "ValidUntil": "2030-01-02T03:04:05", "Points": "7", "Amount": "12.50", "OptIn": "True"},
    {"SubscriberKey": "sentinel@example.com", "ModifiedDate": "2024-01-01T00:00:01",
     "ValidUntil": END_OF_TIME, "Note": CONTROL, "Points": str(2**62), "Amount": "-0.01",
     "Phone": "+1 (555) 010-0000\u200b", "Locale": "en-US"},
    {"SubscriberKey": "huge@example.com", "ModifiedDate": "2024-01-01T00:00:02",
     "Note": HUGE, "OptIn": "False"},
    {"SubscriberKey": "forever@example.com", "ModifiedDate": END_OF_TIME},
]  # fmt: skip


def test_edge_values_are_delivered_and_logged_without_pii(sandbox, tmp_path):
    sandbox.create_de("Edge", fields=FIELDS, rows=ROWS)
    # Client mode: the tap scans every row, so it also meets the end-of-time bookmark row.
    config = sandbox.tap_config(data_extension_keys=["Edge"], filter_support="client")
    run1 = run_tap(config, tmp_path / "run1")
    assert run1.returncode == 0, run1.stderr[-3000:]
    assert "Traceback" not in run1.stderr
    by_key = {r["SubscriberKey"]: r for r in run1.records}
    assert set(by_key) == {"plain@example.com", "sentinel@example.com", "huge@example.com"}
    stored = {row["SubscriberKey"]: row for row in sandbox.rows("Edge")}
    sentinel = by_key["sentinel@example.com"]
    assert stored["sentinel@example.com"]["ValidUntil"].startswith("9999-12-31T23:59:59")
    assert sentinel["ValidUntil"] is None  # the sentinel, not representable in UTC
    assert sentinel["Note"] == stored["sentinel@example.com"]["Note"] == CONTROL
    assert sentinel["Points"] == 2**62
    assert sentinel["Phone"] == "+1 (555) 010-0000\u200b"
    assert by_key["huge@example.com"]["Note"] == HUGE
    assert by_key["plain@example.com"]["ValidUntil"] == "2030-01-02T09:04:05+00:00"
    # One warning per problem, naming the column; no key, no value.
    assert "field ValidUntil" in run1.stderr
    assert "field ModifiedDate: a date later than UTC can hold" in run1.stderr
    for secretish in ("@example.com", "12/31/9999", CONTROL[:3]):
        assert secretish not in run1.stderr
    bookmark = run1.state["bookmarks"]["de_edge"]["replication_key_value"]
    assert not bookmark.startswith("9999")
    # The next run is not blocked either (and the sentinel row still is not emitted).
    run2 = run_tap(config, tmp_path / "run2", state=run1.state)
    assert run2.returncode == 0, run2.stderr[-3000:]
    assert run2.records == []
    assert json.dumps(run2.state)  # a plain, serialisable state


WIDE_FIELDS = [
    {"name": "SubscriberKey", "field_type": "Text", "is_primary_key": True, "max_length": 100},
    {"name": "EmailAddress", "field_type": "EmailAddress"},
    {"name": "Phone", "field_type": "Phone"},
    {"name": "Notes", "field_type": "Text", "max_length": 100_000},
    {"name": "Locale", "field_type": "Locale"},
    {"name": "BirthDate", "field_type": "Date"},
    {"name": "LoyaltyPoints", "field_type": "Number"},
    {"name": "LifetimeValue", "field_type": "Decimal", "max_length": 12, "scale": 2},
    {"name": "EmailOptIn", "field_type": "Boolean"},
    {"name": "ModifiedDate", "field_type": "Date", "is_required": True},
]


def assert_no_pii(result, sandbox, key):
    for row in sandbox.rows(key):
        assert row["SubscriberKey"] not in result.stderr
        if "@" in (row.get("EmailAddress") or ""):
            assert row["EmailAddress"] not in result.stderr


@pytest.mark.parametrize("fetch_mode", ["incremental", "full"])
def test_generated_edge_and_garbage_values_never_block_the_stream(sandbox, tmp_path, fetch_mode):
    """The sandbox's edge-value catalogue in every non-key column, plus raw wire garbage."""
    sandbox.create_de(
        "Edges",
        fields=WIDE_FIELDS,
        size=60,
        seed=5,
        params={"edge_values": 20, "edge_wire_garbage": True},
    )
    config = sandbox.tap_config(
        data_extension_keys=["Edges"], filter_support="client", fetch_mode=fetch_mode
    )
    result = run_tap(config, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    delivered = {r["SubscriberKey"] for r in result.records}
    assert delivered == {row["SubscriberKey"] for row in sandbox.rows("Edges")}
    edge_keys = set(sandbox.edge_rows("Edges")["values"])
    assert len(edge_keys) == 20
    nulled = {r["SubscriberKey"] for r in result.records if r["BirthDate"] is None}
    assert nulled & edge_keys  # 12/31/9999 and the garbage dates became null...
    assert "could not be converted and were set to null" in result.stderr  # ...with a warning
    assert_no_pii(result, sandbox, "Edges")


def test_end_of_time_replication_keys_are_skipped_not_fatal(sandbox, tmp_path):
    sandbox.create_de("EdgeKeys", fields=WIDE_FIELDS, size=40, seed=8, params={"edge_key_rows": 6})
    config = sandbox.tap_config(data_extension_keys=["EdgeKeys"], filter_support="client")
    result = run_tap(config, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["SubscriberKey"]: row for row in sandbox.rows("EdgeKeys")}
    far_future = {k for k, row in rows.items() if (row["ModifiedDate"] or "").startswith("9999")}
    assert far_future  # the catalogue planted some
    delivered = {r["SubscriberKey"] for r in result.records}
    # every row is delivered except those dated after every window (or with no date at all)
    undated = {k for k, row in rows.items() if not row["ModifiedDate"]}
    assert delivered == set(rows) - far_future - undated
    assert "not emitted in incremental mode" in result.stderr
    bookmark = result.state["bookmarks"]["de_edgekeys"]["replication_key_value"]
    assert not bookmark.startswith("9999")
    assert_no_pii(result, sandbox, "EdgeKeys")


def test_garbage_in_the_replication_key_fails_with_the_fix_not_a_traceback(sandbox, tmp_path):
    sandbox.create_de(
        "BadKeys",
        fields=WIDE_FIELDS,
        size=40,
        seed=9,
        params={"edge_key_rows": 12, "edge_wire_garbage": True},
    )
    config = sandbox.tap_config(data_extension_keys=["BadKeys"], filter_support="client")
    result = run_tap(config, tmp_path)
    assert result.returncode == 1
    assert "field ModifiedDate" in result.stderr
    assert "fix the value in the DE" in result.stderr
    assert "Traceback" not in result.stderr
    assert_no_pii(result, sandbox, "BadKeys")
