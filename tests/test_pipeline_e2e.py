"""The product end to end: `meltano run tap-sfmc-de target-insider-one` against the sandbox.

Real processes and real HTTP on 127.0.0.1: Meltano runs the plugins' CLIs from their own
virtualenvs, the tap talks to the SFMC emulator and the target to the Insider emulator.
The expectations are computed from the DE's rows independently of the plugins' code.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import STATE_ID

if TYPE_CHECKING:
    from api_sandbox.testing import SandboxProcess

    from tests.conftest import MeltanoProject

pytestmark = pytest.mark.e2e

EMAIL_ONLY = json.dumps([{"type": "email", "field": "EmailAddress"}])
INSIDER_EMAIL = r"^.+@.+\..+$"


def expected_split(rows: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Rows that must become profiles (by lowercased email) and keys that must be dead-lettered.

    With email as the only identifier, a row is deliverable exactly when its email passes
    Insider's own rule (something@something.something, no spaces).
    """
    import re

    deliverable: dict[str, dict[str, Any]] = {}
    undeliverable: set[str] = set()
    for row in rows:
        email = (row.get("EmailAddress") or "").strip()
        if email and " " not in email and re.match(INSIDER_EMAIL, email):
            deliverable[email.lower()] = row
        else:
            undeliverable.add(row["SubscriberKey"])
    return deliverable, undeliverable


def profiles_by_email(sandbox: SandboxProcess) -> dict[str, dict[str, Any]]:
    """Insider profiles keyed by their (lowercased) email identifier."""
    return {p["identifiers"]["email"].lower(): p for p in sandbox.profiles()}


def dead_letter_keys(project: MeltanoProject) -> set[str]:
    """SubscriberKeys of every dead-lettered source record."""
    return {letter["record"]["SubscriberKey"] for letter in project.dead_letters()}


def tap_summaries(project: MeltanoProject) -> list[str]:
    """The tap's end-of-run lines (rows, pages, windows, mode) of every run so far."""
    return [line for log in project.logs for line in log.splitlines() if ": emitted " in line]


def test_first_run_delivers_every_row_and_second_run_only_the_changes(
    project: MeltanoProject, sandbox: SandboxProcess
) -> None:
    project.env["TARGET_INSIDER_ONE_IDENTIFIER_MAPPINGS"] = EMAIL_ONLY
    rows = sandbox.rows("Customers")
    deliverable, undeliverable = expected_split(rows)
    assert deliverable
    assert undeliverable, "the demo DE should contain rows with bad or missing emails"

    project.run("run", "tap-sfmc-de", "target-insider-one")

    profiles = profiles_by_email(sandbox)
    assert set(profiles) == set(deliverable)
    for email, profile in profiles.items():
        row = deliverable[email]
        attributes = profile["attributes"]
        assert attributes["custom"]["sfmc_subscriber_key"] == row["SubscriberKey"]
        assert attributes["custom"]["data_source"] == "sfmc"
        if row.get("FirstName"):
            assert attributes["name"] == row["FirstName"]
        if row.get("EmailOptIn") is not None:
            assert attributes["email_optin"] is bool(row["EmailOptIn"])
    assert dead_letter_keys(project) == undeliverable
    assert all(letter["reason"] for letter in project.dead_letters())

    state = project.state()
    bookmark = state["singer_state"]["bookmarks"]["de_customers"]
    assert bookmark["replication_key"] == "ModifiedDate"
    first_bookmark = bookmark["replication_key_value"]
    assert first_bookmark.endswith("+00:00")

    # Change rows in "SFMC"; the next run must send exactly those (nothing else).
    requests_before = len(sandbox.requests())
    time.sleep(1.1)  # ModifiedDate has second precision: keep the change after the bookmark
    change = sandbox.mutate("Customers", update=15, insert=5)
    changed = set(change["updated"]) | set(change["inserted"])
    assert len(changed) == 20
    # A run's window ends a second before the server's clock at its start, so a change made
    # in that last second belongs to the next run (late, never lost); keep clear of it here.
    time.sleep(2.1)

    upserts_before = {p["id"]: p["upserts"] for p in sandbox.profiles()}
    project.run("run", "tap-sfmc-de", "target-insider-one")

    changed_rows = [r for r in sandbox.rows("Customers") if r["SubscriberKey"] in changed]
    changed_deliverable, changed_undeliverable = expected_split(changed_rows)
    touched = [p for p in sandbox.profiles() if p["upserts"] != upserts_before.get(p["id"])]
    assert {p["identifiers"]["email"].lower() for p in touched} == set(changed_deliverable)
    sent_users = sum(r["users"] for r in sandbox.requests()[requests_before:])
    assert sent_users == len(changed_deliverable), tap_summaries(project)
    profiles = profiles_by_email(sandbox)
    for email, row in changed_deliverable.items():
        assert (
            profiles[email]["attributes"]["custom"]["sfmc_subscriber_key"] == row["SubscriberKey"]
        )
        if row.get("FirstName"):
            assert profiles[email]["attributes"]["name"] == row["FirstName"]
    assert changed_undeliverable <= dead_letter_keys(project)
    second_bookmark = project.state()["singer_state"]["bookmarks"]["de_customers"]
    assert second_bookmark["replication_key_value"] > first_bookmark

    # A third run with no changes sends nothing.
    requests_before = len(sandbox.requests())
    project.run("run", "tap-sfmc-de", "target-insider-one")
    sent_users = sum(r["users"] for r in sandbox.requests()[requests_before:])
    assert sent_users == 0, tap_summaries(project)


def test_run_killed_mid_way_then_rerun_loses_nothing(
    project: MeltanoProject, sandbox: SandboxProcess
) -> None:
    project.env["TARGET_INSIDER_ONE_IDENTIFIER_MAPPINGS"] = EMAIL_ONLY
    project.env["TARGET_INSIDER_ONE_BATCH_SIZE_ROWS"] = "500"
    project.env["TARGET_INSIDER_ONE_MAX_CONCURRENT_REQUESTS"] = "1"
    deliverable, undeliverable = expected_split(sandbox.rows("Customers"))
    sandbox.add_faults(
        {"endpoint": "upsert", "action": "delay", "delay_seconds": 1.0, "times": None}
    )

    run = project.start("run", "tap-sfmc-de", "target-insider-one")
    try:
        deadline = time.monotonic() + 120
        while len(sandbox.requests()) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(sandbox.requests()) >= 2, "the run never reached Insider"
    finally:
        project.kill(run)
    delivered_before_kill = len(profiles_by_email(sandbox))
    assert delivered_before_kill < len(deliverable), "the kill came too late to test anything"

    sandbox.clear_faults()
    # Meltano still marks the killed run as running; --force is how a user reruns at once
    # (otherwise Meltano waits until the stale run times out).
    project.run("run", "--force", "tap-sfmc-de", "target-insider-one")

    assert set(profiles_by_email(sandbox)) == set(deliverable)
    assert undeliverable <= dead_letter_keys(project)


def test_insider_outage_fails_the_run_without_a_bookmark_and_a_rerun_delivers_everything(
    project: MeltanoProject, sandbox: SandboxProcess
) -> None:
    # Insider is down after two requests, for longer than the retry budget: the records it
    # did not take are not dead letters, the run fails and the bookmark does not move past
    # them (it used to exit 0 with them dead-lettered and the bookmark saved).
    project.env["TARGET_INSIDER_ONE_IDENTIFIER_MAPPINGS"] = EMAIL_ONLY
    project.env["TARGET_INSIDER_ONE_RETRY_BUDGET_SECONDS"] = "1"
    project.env["TARGET_INSIDER_ONE_BACKOFF_BASE_SECONDS"] = "0"
    deliverable, undeliverable = expected_split(sandbox.rows("Customers"))
    sandbox.add_faults({"endpoint": "upsert", "status": 503, "after": 2, "times": None})

    failed = project.run("run", "tap-sfmc-de", "target-insider-one", check=False)
    assert failed.returncode != 0
    assert "not delivered" in failed.stderr
    assert len(profiles_by_email(sandbox)) < len(deliverable)
    assert dead_letter_keys(project) <= undeliverable  # only records rejected for a reason
    states = project.run("state", "list", check=False).stdout
    if STATE_ID in states:
        assert "de_customers" not in json.dumps(project.state().get("singer_state", {}))

    sandbox.clear_faults()
    project.run("run", "--force", "tap-sfmc-de", "target-insider-one")
    assert set(profiles_by_email(sandbox)) == set(deliverable)
    assert dead_letter_keys(project) == undeliverable
    assert project.state()["singer_state"]["bookmarks"]["de_customers"]["replication_key_value"]


def test_schedule_is_listed_and_runs_the_job(
    project: MeltanoProject, sandbox: SandboxProcess
) -> None:
    listed = project.run("schedule", "list", "--format=json").stdout
    schedules = json.loads(listed[listed.index("{") :])
    job = next(s for s in schedules["schedules"]["job"] if s["name"] == "hourly-sync")
    assert job["interval"] == "0 * * * *"
    assert job["job"]["name"] == "sfmc-to-insider"

    project.run("--environment=dev", "schedule", "run", "hourly-sync")
    assert sandbox.profiles(), "the scheduled job delivered nothing"
    assert project.state()["singer_state"]["bookmarks"]["de_customers"]["replication_key_value"]


def test_tap_feeds_a_third_party_loader(project: MeltanoProject, sandbox: SandboxProcess) -> None:
    project.run("run", "tap-sfmc-de", "target-jsonl")

    out_dir = project.workdir / "jsonl"
    files = list(out_dir.glob("de_customers*.jsonl"))
    assert files, f"target-jsonl wrote nothing in {out_dir}"
    written = [json.loads(line) for line in files[0].read_text(encoding="utf-8").splitlines()]
    by_key = {record["SubscriberKey"]: record for record in written}
    rows = sandbox.rows("Customers")
    assert set(by_key) == {row["SubscriberKey"] for row in rows}
    sample = rows[0]
    assert by_key[sample["SubscriberKey"]]["EmailAddress"] == sample["EmailAddress"]
    assert project.state("dev:tap-sfmc-de-to-target-jsonl")["singer_state"]["bookmarks"]


def test_target_fed_by_a_third_party_extractor(
    project: MeltanoProject, sandbox: SandboxProcess
) -> None:
    project.env["TARGET_INSIDER_ONE_IDENTIFIER_MAPPINGS"] = json.dumps(
        [{"type": "uuid", "field": "contact_id"}, {"type": "email", "field": "email"}]
    )
    # Meltano merges an object setting from the environment into the one in meltano.yml,
    # so these add to the Customers mapping rather than replace it; absent fields are skipped.
    project.env["TARGET_INSIDER_ONE_ATTRIBUTE_MAPPINGS"] = json.dumps(
        {"first_name": "given_name", "plan": "plan"}
    )
    project.env["TAP_JSONL_PATH"] = "tests/data/contacts.jsonl"

    project.run("run", "tap-jsonl", "target-insider-one")

    profiles = {p["identifiers"]["uuid"]: p for p in sandbox.profiles()}
    assert set(profiles) == {"c-001", "c-002", "c-003"}
    assert profiles["c-001"]["attributes"]["custom"]["given_name"] == "Ada"
    assert profiles["c-002"]["attributes"]["custom"]["plan"] == "pro"
    assert "email" not in profiles["c-003"]["identifiers"]  # bad email dropped, uuid kept


def test_several_data_extensions_keep_their_own_state(
    project: MeltanoProject, sandbox: SandboxProcess
) -> None:
    sandbox.create_de(
        "LoyaltyMembers",
        fields=[
            {"name": "MemberId", "type": "Text", "is_primary_key": True},
            {"name": "Tier", "type": "Text"},
            {"name": "LastUpdated", "type": "Date"},
        ],
        size=300,
    )
    # One extractor, two keys: one stream and one bookmark per DE inside one state.
    project.env["TAP_SFMC_DE_DATA_EXTENSION_KEYS"] = json.dumps(["Customers", "LoyaltyMembers"])
    project.env["TAP_SFMC_DE_REPLICATION_KEYS_BY_DE"] = json.dumps(
        {"LoyaltyMembers": "LastUpdated"}
    )
    project.run("run", "tap-sfmc-de", "target-jsonl")
    bookmarks = project.state("dev:tap-sfmc-de-to-target-jsonl")["singer_state"]["bookmarks"]
    assert {"de_customers", "de_loyaltymembers"} <= set(bookmarks)
    assert bookmarks["de_loyaltymembers"]["replication_key"] == "LastUpdated"

    # Plugin inheritance: a separate pipeline, so a separate state id.
    del project.env["TAP_SFMC_DE_DATA_EXTENSION_KEYS"]
    del project.env["TAP_SFMC_DE_REPLICATION_KEYS_BY_DE"]
    project.env["TAP_SFMC_DE__LOYALTY_AUTH_BASE_URL"] = sandbox.sfmc_url
    project.run("run", "tap-sfmc-de--loyalty", "target-jsonl")
    state_ids = project.run("state", "list").stdout.split()
    assert "dev:tap-sfmc-de--loyalty-to-target-jsonl" in state_ids
    loyalty = project.state("dev:tap-sfmc-de--loyalty-to-target-jsonl")["singer_state"]["bookmarks"]
    assert set(loyalty) == {"de_loyaltymembers"}


def test_dead_letters_can_be_fixed_and_replayed(
    project: MeltanoProject, sandbox: SandboxProcess
) -> None:
    project.env["TARGET_INSIDER_ONE_IDENTIFIER_MAPPINGS"] = EMAIL_ONLY
    project.run("run", "tap-sfmc-de", "target-insider-one")
    letters = project.dead_letters()
    assert letters

    replay = project.workdir / "replay.jsonl"
    with replay.open("w", encoding="utf-8") as out:
        for letter in letters:
            record = letter["record"]
            record["EmailAddress"] = f"fixed-{record['SubscriberKey'].lower()}@example.com"
            out.write(json.dumps(record) + "\n")
    project.env["TAP_JSONL_PATH"] = str(replay)
    project.env["TAP_JSONL_PRIMARY_KEYS"] = json.dumps(["SubscriberKey"])
    project.run("run", "tap-jsonl", "target-insider-one")

    profiles = profiles_by_email(sandbox)
    for letter in letters:
        key = letter["record"]["SubscriberKey"]
        profile = profiles[f"fixed-{key.lower()}@example.com"]
        assert profile["attributes"]["custom"]["sfmc_subscriber_key"] == key


def test_numeric_settings_pass_from_the_environment(project: MeltanoProject) -> None:
    # Regression: Meltano 4.4 crashed on `decimal`-kind settings set through the environment.
    project.env["TAP_SFMC_DE_BACKOFF_BASE_SECONDS"] = "3"
    project.env["TARGET_INSIDER_ONE_REQUEST_TIMEOUT"] = "45"
    tap = project.run("config", "print", "tap-sfmc-de").stdout
    target = project.run("config", "print", "target-insider-one").stdout
    assert json.loads(tap[tap.index("{") :])["backoff_base_seconds"] == 3
    assert json.loads(target[target.index("{") :])["request_timeout"] == 45
