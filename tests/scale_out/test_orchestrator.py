"""The orchestrator: Dagster runs this project's Meltano jobs, one DE or twenty in parallel.

`sfmc_to_insider` is the job from meltano.yml; `sfmc_fleet` the generated one
(orchestrate/fleet.yml: 20 DEs in two business units, one inherited extractor and so one
state id each). The two business units are two sandboxes (one SFMC account_id each); every
DE's rows carry emails of their own, so Insider's profile store tells which DE delivered what.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.conftest import ROOT, STATE_ID
from tests.scale_out.helpers import EMAIL_ONLY, upserts_by_email, users_sent
from tests.scale_out.orchestrator import DagsterRun, execute_job

if TYPE_CHECKING:
    from api_sandbox.testing import SandboxProcess

    from tests.conftest import MeltanoProject

pytestmark = [pytest.mark.e2e, pytest.mark.scale_out, pytest.mark.slow]

FLEET = yaml.safe_load((ROOT / "orchestrate" / "fleet.yml").read_text(encoding="utf-8"))
FIELDS = [
    {"name": "SubscriberKey", "field_type": "Text", "is_primary_key": True, "max_length": 50},
    {"name": "EmailAddress", "field_type": "EmailAddress"},
    {"name": "Note", "field_type": "Text", "max_length": 4000},
    {"name": "ModifiedDate", "field_type": "Date"},
]
ROWS_PER_DE = 6
MAX_CONCURRENT = 4  # DEs at once (FLEET_MAX_CONCURRENT)
# Failures planted in the first fleet run, one per DE (their neighbours must not notice):
BAD_SECRET = ("100001", "Contacts03")  # a wrong client secret for this DE: 401 at the token
NO_READ_SCOPE = ("200002", "Members05")  # a token without data_extensions_read: 403 on rows
POISONED = ("100001", "Contacts07")  # one row of garbage: dead-lettered, the rest delivered
POISON_NOTE = "ctl\x00\x01\x1b\u2028 😀 \ufffd" + "x" * 3900


def plugin_env(account_id: str, key: str, setting: str) -> str:
    """The environment variable of one setting of one generated DE extractor."""
    return f"TAP_SFMC_DE__{account_id}_{key.upper()}_{setting.upper()}"


def email(account_id: str, key: str, n: int) -> str:
    """The email of row `n` of a DE: unique across the fleet."""
    return f"{key.lower()}-{n}@bu{account_id}.example.com"


def de_rows(account_id: str, key: str) -> list[dict[str, Any]]:
    """A DE's rows; the poisoned DE's last row has an undeliverable email and garbage text."""
    rows = [
        {"SubscriberKey": f"{key}-{n}", "EmailAddress": email(account_id, key, n),
         "Note": f"row {n}", "ModifiedDate": f"2026-01-0{1 + n % 5}T10:00:00"}
        for n in range(ROWS_PER_DE)
    ]  # fmt: skip
    if (account_id, key) == POISONED:
        rows[-1].update(EmailAddress="not an email\x00", Note=POISON_NOTE)
    return rows


def fleet_des() -> list[tuple[str, str]]:
    """(account_id, DE key) of every DE in orchestrate/fleet.yml."""
    return [
        (str(unit["account_id"]), key)
        for unit in FLEET["business_units"]
        for key in unit["data_extensions"]
    ]


def fleet_op(account_id: str, key: str) -> str:
    """The Dagster op that runs one DE (dagster-meltano's name for the Meltano task)."""
    return f"tap_sfmc_de__{account_id}_{key.lower()}_{FLEET['loader'].replace('-', '_')}"


def fleet_state_id(account_id: str, key: str) -> str:
    """The state id Meltano keeps for one DE of the fleet."""
    return f"dev:tap-sfmc-de--{account_id}-{key.lower()}-to-{FLEET['loader']}"


def system_db(project: MeltanoProject, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a query on Meltano's SQLite system database (read directly: twenty `meltano
    state get` calls would take a minute)."""
    database = project.env["MELTANO_DATABASE_URI"].removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(database)) as conn:
        return conn.execute(sql).fetchall()


def stored_states(project: MeltanoProject) -> dict[str, dict[str, Any]]:
    """Every state id with its completed state."""
    rows = system_db(project, "SELECT state_id, completed_state FROM state")
    return {state_id: json.loads(completed or "{}") for state_id, completed in rows}


def most_runs_at_once(project: MeltanoProject) -> int:
    """The most `meltano run`s that were running at the same time (Meltano's run records)."""
    events: list[tuple[datetime, int]] = []
    for started, ended in system_db(project, "SELECT started_at, ended_at FROM runs"):
        events += [(datetime.fromisoformat(started), 1), (datetime.fromisoformat(ended), -1)]
    running = peak = 0
    for _, change in sorted(events):  # at equal times an end (-1) sorts before a start
        running += change
        peak = max(peak, running)
    return peak


def bookmark(state: dict[str, Any], key: str) -> str | None:
    """The DE's replication bookmark in a state, if any."""
    marks = state.get("singer_state", {}).get("bookmarks", {})
    return marks.get(f"de_{key.lower()}", {}).get("replication_key_value")


def test_dagster_runs_the_meltano_job_once(
    project: MeltanoProject, sandbox: SandboxProcess, dagster_bin: Path
) -> None:
    sandbox.create_de("Orchestrated", size=40, seed=9, params={"bad_email_rate": 0, "null_rate": 0})
    project.env["TAP_SFMC_DE_DATA_EXTENSION_KEYS"] = json.dumps(["Orchestrated"])
    project.env["TARGET_INSIDER_ONE_IDENTIFIER_MAPPINGS"] = EMAIL_ONLY

    run = execute_job(dagster_bin, project, "sfmc_to_insider")

    assert run.returncode == 0, run.output[-6000:]
    assert "RUN_SUCCESS" in run.output
    assert users_sent(sandbox) == 40
    assert bookmark(project.state(STATE_ID), "Orchestrated")


@pytest.fixture
def fleet(
    project: MeltanoProject, sandbox_factory: Callable[..., SandboxProcess]
) -> dict[str, SandboxProcess]:
    """The fleet's two business units as two sandboxes holding their DEs; Insider on the first."""
    units: dict[str, SandboxProcess] = {}
    for unit in FLEET["business_units"]:
        account_id = str(unit["account_id"])
        units[account_id] = sandbox_factory(
            rows=1, extra_args=["--set", f'account_id="{account_id}"']
        )
    for account_id, key in fleet_des():
        units[account_id].create_de(key, fields=FIELDS, rows=de_rows(account_id, key))
        project.env[plugin_env(account_id, key, "auth_base_url")] = units[account_id].sfmc_url
    first = next(iter(units.values()))
    project.env["TARGET_INSIDER_ONE_API_BASE_URL"] = first.insider_url
    project.env["TARGET_INSIDER_ONE_IDENTIFIER_MAPPINGS"] = EMAIL_ONLY
    project.env["TARGET_INSIDER_ONE_ATTRIBUTE_MAPPINGS"] = json.dumps(
        {"SubscriberKey": "sfmc_subscriber_key", "Note": "sfmc_note"}
    )
    return units


def delivered_des(insider: SandboxProcess) -> dict[tuple[str, str], set[str]]:
    """Emails in Insider's profile store by the DE (account_id, lowercased key) they came from."""
    by_de: dict[tuple[str, str], set[str]] = {}
    for address in upserts_by_email(insider):
        local, _, domain = address.partition("@")
        key = local.rsplit("-", 1)[0]
        by_de.setdefault((domain.split(".")[0].removeprefix("bu"), key), set()).add(address)
    return by_de


def expected_emails(account_id: str, key: str) -> set[str]:
    """Every deliverable email of one DE."""
    return {
        row["EmailAddress"].lower()
        for row in de_rows(account_id, key)
        if "@" in row["EmailAddress"] and " " not in row["EmailAddress"]
    }


def test_fleet_runs_in_parallel_and_one_failing_de_neither_blocks_nor_corrupts_the_others(
    project: MeltanoProject, fleet: dict[str, SandboxProcess], dagster_bin: Path
) -> None:
    insider = fleet[BAD_SECRET[0]]
    project.env[plugin_env(*BAD_SECRET, "client_secret")] = "wrong-secret"
    project.env[plugin_env(*NO_READ_SCOPE, "scopes")] = "list_and_subscribers_read"
    failing = {BAD_SECRET, NO_READ_SCOPE}
    healthy = [de for de in fleet_des() if de not in failing]

    first = execute_job(dagster_bin, project, "sfmc_fleet", max_concurrent=MAX_CONCURRENT)

    assert first.returncode != 0, "two DEs failed: the Dagster run must fail"
    at_once = most_runs_at_once(project)
    assert 1 < at_once <= MAX_CONCURRENT, "FLEET_MAX_CONCURRENT DEs run in parallel, no more"
    by_de = delivered_des(insider)
    for account_id, key in healthy:
        assert by_de.get((account_id, key.lower())) == expected_emails(account_id, key), key
    for account_id, key in failing:
        assert (account_id, key.lower()) not in by_de, f"{key} delivered despite its failure"
    letters = project.dead_letters()
    assert [letter["record"]["SubscriberKey"] for letter in letters] == [f"{POISONED[1]}-5"]
    states = stored_states(project)
    for de in healthy:
        assert bookmark(states[fleet_state_id(*de)], de[1]), de
    for de in failing:
        assert bookmark(states.get(fleet_state_id(*de), {}), de[1]) is None, de
    upserts_after_first = upserts_by_email(insider)
    assert set(upserts_after_first.values()) == {1}, "a row was sent twice"

    # Fix both DEs' settings and rerun them: they complete; the others are left as they were.
    del project.env[plugin_env(*BAD_SECRET, "client_secret")]
    del project.env[plugin_env(*NO_READ_SCOPE, "scopes")]
    requests_before = len(insider.requests())
    rerun = execute_job(
        dagster_bin, project, "sfmc_fleet", ops=[fleet_op(*de) for de in sorted(failing)]
    )

    assert rerun.returncode == 0, rerun.output[-6000:]
    assert users_sent(insider, since=requests_before) == sum(
        len(expected_emails(*de)) for de in failing
    )
    by_de = delivered_des(insider)
    for account_id, key in fleet_des():
        assert by_de.get((account_id, key.lower())) == expected_emails(account_id, key), key
    upserts = upserts_by_email(insider)
    assert set(upserts.values()) == {1}
    new_states = stored_states(project)
    assert set(new_states) == {fleet_state_id(*de) for de in fleet_des()}
    for de in healthy:
        assert new_states[fleet_state_id(*de)] == states[fleet_state_id(*de)], de
    for de in failing:
        assert bookmark(new_states[fleet_state_id(*de)], de[1]), de
    assert len(project.dead_letters()) == 1
    print_fleet_report(
        first=first, at_once=at_once, rerun=rerun, upserts=upserts,
        dead_letters=len(project.dead_letters()), states=new_states,
    )  # fmt: skip


def print_fleet_report(
    *,
    first: DagsterRun,
    at_once: int,
    rerun: DagsterRun,
    upserts: dict[str, int],
    dead_letters: int,
    states: dict[str, Any],
) -> None:
    """The figures for the note (`pytest -s` shows them)."""
    print(f"\nfleet: {len(fleet_des())} DEs, {len(fleet_des()) * ROWS_PER_DE} rows in SFMC")
    print(f"run 1 (2 DEs failing): exit {first.returncode}, {first.seconds:.1f} s wall,")
    print(f"  up to {at_once} DEs at once")
    print(f"rerun of the 2 fixed DEs: exit {rerun.returncode}, {rerun.seconds:.1f} s wall")
    print(f"Insider profiles: {len(upserts)}, upserts: {sum(upserts.values())},")
    print(f"  dead letters: {dead_letters}")
    for state_id, state in sorted(states.items()):
        marks = state.get("singer_state", {}).get("bookmarks", {})
        rk = {stream: mark["replication_key_value"] for stream, mark in marks.items()}
        print(f"  {state_id}: {json.dumps(rk)}")
