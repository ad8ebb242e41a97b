"""The warehouse side: `meltano run tap-sfmc-de target-postgres` into the throwaway PostgreSQL.

What landed is read with SQL and compared with the sandbox's own rows (its admin API, not the
tap's output): every row, typed columns of the right PostgreSQL type, the DE's primary key as
the table's, and an incremental run that updates changed rows in place (upsert, no duplicates).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from tests.scale_out.helpers import wait_until_change_is_readable

if TYPE_CHECKING:
    from api_sandbox.testing import SandboxProcess

    from tests.conftest import MeltanoProject
    from tests.scale_out.services import PostgresServer

pytestmark = [pytest.mark.e2e, pytest.mark.scale_out]

DE_KEY = "Warehouse"
TABLE = "sfmc.de_warehouse"
ROWS = 60
PRIMARY_KEY_COLUMNS = (
    "SELECT lower(a.attname) FROM pg_index i JOIN pg_attribute a"  # noqa: S608 - constants
    " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
    f" WHERE i.indrelid = '{TABLE}'::regclass AND i.indisprimary"
)
# SFMC field type -> the PostgreSQL column type the tap's JSON schema must produce.
EXPECTED_TYPES = {
    "subscriberkey": "text",
    "emailaddress": "text",
    "phone": "text",
    "firstname": "text",
    "birthdate": "timestamp without time zone",
    "modifieddate": "timestamp without time zone",
    "loyaltypoints": "bigint",
    "lifetimevalue": "numeric",
    "emailoptin": "boolean",
}


def warehouse_project(project: MeltanoProject, postgres: PostgresServer, database: str) -> None:
    """Point target-postgres at the test's database (credentials through the environment)."""
    project.env.update(
        TAP_SFMC_DE_DATA_EXTENSION_KEYS=json.dumps([DE_KEY]),
        TARGET_POSTGRES_HOST="127.0.0.1",
        TARGET_POSTGRES_PORT=str(postgres.port),
        TARGET_POSTGRES_USER="postgres",
        TARGET_POSTGRES_PASSWORD="",
        TARGET_POSTGRES_DATABASE=database,
    )


def landed(postgres: PostgresServer, database: str) -> dict[str, dict[str, Any]]:
    """The table's rows by primary key, column names lowercased."""
    sql = f"SELECT row_to_json(t)::text FROM {TABLE} t"  # noqa: S608 - a constant table name
    with_names = postgres.query(database, sql)
    rows = [json.loads(text) for (text,) in with_names]
    lowered = [{name.lower(): value for name, value in row.items()} for row in rows]
    return {row["subscriberkey"]: row for row in lowered}


def same_value(source: Any, stored: Any) -> bool:
    """A sandbox value equals what PostgreSQL returned as JSON.

    Dates compare as instants: target-postgres stores them as UTC in `timestamp without time
    zone` columns. Decimals compare as decimals.
    """
    if source is None or stored is None:
        return source is None and stored is None
    if isinstance(source, str) and "T" in source and source[:4].isdigit():
        as_utc = datetime.fromisoformat(stored).replace(tzinfo=UTC)
        return datetime.fromisoformat(source) == as_utc
    if isinstance(source, str) and isinstance(stored, (int, float)):
        return Decimal(source) == Decimal(str(stored))
    return source == stored


def assert_rows_match(sandbox: SandboxProcess, postgres: PostgresServer, database: str) -> None:
    """Every sandbox row is in the table exactly once with every value equal."""
    source = {row["SubscriberKey"]: row for row in sandbox.rows(DE_KEY)}
    stored = landed(postgres, database)
    assert set(stored) == set(source)
    for key, row in source.items():
        for field, value in row.items():
            assert same_value(value, stored[key][field.lower()]), (key, field, value)


def test_rows_types_and_keys_land_exactly_and_incremental_runs_upsert(
    project: MeltanoProject, sandbox: SandboxProcess, postgres: PostgresServer, postgres_db: str
) -> None:
    sandbox.create_de(DE_KEY, size=ROWS, seed=11)
    warehouse_project(project, postgres, postgres_db)

    project.run("run", "tap-sfmc-de", "target-postgres")

    assert_rows_match(sandbox, postgres, postgres_db)
    columns = dict(
        postgres.query(
            postgres_db,
            "SELECT lower(column_name), data_type FROM information_schema.columns"
            " WHERE table_schema = 'sfmc' AND table_name = 'de_warehouse'",
        )
    )
    assert {name: columns.get(name) for name in EXPECTED_TYPES} == EXPECTED_TYPES
    primary_key = postgres.query(postgres_db, PRIMARY_KEY_COLUMNS)
    assert primary_key == [("subscriberkey",)]

    change = sandbox.mutate(DE_KEY, update=6, insert=4)
    wait_until_change_is_readable(sandbox, change)
    project.run("run", "tap-sfmc-de", "target-postgres")

    assert_rows_match(sandbox, postgres, postgres_db)
    count = f"SELECT count(*) FROM {TABLE}"  # noqa: S608 - a constant table name
    assert postgres.query(postgres_db, count) == [(ROWS + 4,)]
    state = project.state("dev:tap-sfmc-de-to-target-postgres")
    assert state["singer_state"]["bookmarks"]["de_warehouse"]["replication_key_value"]
