"""State beyond one SQLite file: the system database on PostgreSQL, state in an S3 store.

Each test runs the real pipeline twice against the sandbox and checks from outside that the
second run only delivered the rows changed in between (Insider's request log) and that the
state lives where the settings say (read from PostgreSQL or the S3 bucket directly).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import STATE_ID
from tests.scale_out.helpers import EMAIL_ONLY, users_sent, wait_until_change_is_readable
from tests.scale_out.services import S3_KEY_ID, S3_SECRET

if TYPE_CHECKING:
    from api_sandbox.testing import SandboxProcess

    from tests.conftest import MeltanoProject
    from tests.scale_out.services import PostgresServer, S3Server

pytestmark = [pytest.mark.e2e, pytest.mark.scale_out]

DE_KEY = "StateDemo"
STREAM = "de_statedemo"
ROWS = 120
CHANGED = {"update": 7, "insert": 3}


def small_de_project(project: MeltanoProject, sandbox: SandboxProcess) -> None:
    """Point the pipeline at a small DE whose every row is deliverable by email."""
    sandbox.create_de(DE_KEY, size=ROWS, seed=5, params={"bad_email_rate": 0, "null_rate": 0})
    project.env["TAP_SFMC_DE_DATA_EXTENSION_KEYS"] = json.dumps([DE_KEY])
    project.env["TARGET_INSIDER_ONE_IDENTIFIER_MAPPINGS"] = EMAIL_ONLY


def run_then_change(project: MeltanoProject, sandbox: SandboxProcess) -> dict[str, Any]:
    """First run (every row delivered), then change rows in SFMC; returns the state."""
    project.run("run", "tap-sfmc-de", "target-insider-one")
    assert users_sent(sandbox) == ROWS
    assert project.dead_letters() == []
    state = project.state()
    wait_until_change_is_readable(sandbox, sandbox.mutate(DE_KEY, **CHANGED))
    return state


def bookmark_of(state: dict[str, Any]) -> str:
    """The replication bookmark of the small DE in a state (`meltano state get`)."""
    bookmark = state["singer_state"]["bookmarks"][STREAM]
    assert bookmark["replication_key"] == "ModifiedDate"
    return bookmark["replication_key_value"]


def test_system_database_on_postgres_holds_state_between_runs(
    project: MeltanoProject, sandbox: SandboxProcess, postgres: PostgresServer, postgres_db: str
) -> None:
    sqlite_file = Path(project.env["MELTANO_DATABASE_URI"].removeprefix("sqlite:///"))
    project.env["MELTANO_DATABASE_URI"] = postgres.url(postgres_db, driver="postgresql+psycopg")
    small_de_project(project, sandbox)

    first_bookmark = bookmark_of(run_then_change(project, sandbox))
    before = len(sandbox.requests())
    project.run("run", "tap-sfmc-de", "target-insider-one")

    assert users_sent(sandbox, since=before) == sum(CHANGED.values())
    second_bookmark = bookmark_of(project.state())
    assert second_bookmark > first_bookmark
    stored = postgres.query(postgres_db, "SELECT state_id, completed_state FROM state")
    assert [state_id for state_id, _ in stored] == [STATE_ID]
    in_table = json.loads(stored[0][1])["singer_state"]["bookmarks"][STREAM]
    assert in_table["replication_key_value"] == second_bookmark
    assert postgres.query(postgres_db, "SELECT count(*) FROM runs")[0][0] == 2
    assert not sqlite_file.exists(), "Meltano wrote a SQLite system database after all"


def test_state_migrated_from_sqlite_to_s3_continues_incrementally(
    project: MeltanoProject, sandbox: SandboxProcess, s3_server: S3Server, s3_bucket: str
) -> None:
    small_de_project(project, sandbox)
    sqlite_state = run_then_change(project, sandbox)

    # Switch the state backend (environment variables of the settings in the README).
    project.env.update(
        MELTANO_STATE_BACKEND_URI=f"s3://{s3_bucket}/meltano/state",
        MELTANO_STATE_BACKEND_S3_ENDPOINT_URL=s3_server.endpoint_url,
        MELTANO_STATE_BACKEND_S3_AWS_ACCESS_KEY_ID=S3_KEY_ID,
        MELTANO_STATE_BACKEND_S3_AWS_SECRET_ACCESS_KEY=S3_SECRET,
        AWS_DEFAULT_REGION="us-east-1",
    )
    project.run("state", "set", "--force", STATE_ID, json.dumps(sqlite_state))

    before = len(sandbox.requests())
    project.run("run", "tap-sfmc-de", "target-insider-one")

    assert users_sent(sandbox, since=before) == sum(CHANGED.values())
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]]
    state_keys = [key for key in keys if key.endswith(".json")]
    assert state_keys == [f"meltano/state/{STATE_ID}/state.json"], keys
    body = s3_server.client().get_object(Bucket=s3_bucket, Key=state_keys[0])["Body"].read()
    in_bucket = json.loads(body)["completed"]["singer_state"]["bookmarks"][STREAM]
    assert in_bucket["replication_key_value"] == bookmark_of(project.state())
    assert in_bucket["replication_key_value"] > bookmark_of(sqlite_state)
