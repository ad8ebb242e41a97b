import json
import logging

from target_insider_one.runtime import RedactingFilter
from target_insider_one.summary import RunStats


def test_counts_and_human_summary():
    stats = RunStats()
    stats.add(records_received=10, users_upserted=7, requests_sent=3, retries=1)
    stats.skipped("no_identifier")
    stats.dead_lettered("no_identifier")
    stats.dead_lettered("rejected_by_insider", 2)
    stats.dropped("identifier", "email", "email_invalid")
    data = stats.as_dict()
    assert data["records_dead_lettered"] == 3
    assert data["skipped_by_reason"] == {"no_identifier": 1}
    assert data["dropped_by_reason"] == {"identifier:email:email_invalid": 1}
    text = stats.human_summary(status="succeeded", dead_letter_path="dl.jsonl", dry_run=False)
    assert "records received:        10" in text
    assert "(no_identifier=1)" in text
    # Why records were dead-lettered, not just how many.
    assert "dead-lettered:           3 (no_identifier=1, rejected_by_insider=2) -> dl.jsonl" in text
    assert "NOTE" not in text
    stats.undelivered("rate_limited", 1000)
    stats.undelivered("server_error", 4)
    text = stats.human_summary(status="incomplete", dead_letter_path="dl.jsonl", dry_run=False)
    # The first line alone says what was dead-lettered and what was not delivered, and why.
    assert text.splitlines()[0] == (
        "Insider run summary (incomplete): 3 dead-lettered (no_identifier=1, "
        "rejected_by_insider=2), 1004 not delivered (rate_limited=1000, server_error=4)"
    )
    assert "NOTE" in text


def test_metrics_lines(caplog):
    caplog.set_level(logging.INFO, logger="singer_sdk.metrics")
    stats = RunStats()
    stats.add(users_upserted=5)
    stats.skipped("no_identifier")
    stats.emit_metrics(status="succeeded")
    points = [
        json.loads(r.getMessage().removeprefix("METRIC: "))
        for r in caplog.records
        if r.getMessage().startswith("METRIC: ")
    ]
    by_metric = {(p["metric"], p["tags"].get("reason")): p["value"] for p in points}
    assert by_metric[("insider_users_upserted", None)] == 5
    assert by_metric[("insider_records_skipped", "no_identifier")] == 1


def test_redacting_filter():
    record = logging.LogRecord("x", logging.INFO, "f", 1, "key=%s", ("abcdef123456",), None)
    assert RedactingFilter(("abcdef123456",)).filter(record)
    assert record.getMessage() == "key=***"
    short = logging.LogRecord("x", logging.INFO, "f", 1, "keep k", None, None)
    RedactingFilter(("k",)).filter(short)
    assert short.getMessage() == "keep k"
