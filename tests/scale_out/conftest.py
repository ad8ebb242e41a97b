"""Fixtures of the scale-out tests: PostgreSQL, an S3-compatible store, the orchestrator's venv.

The servers are session-scoped (started once, on first use) and always stopped at the end of
the session, also when a test failed; each test gets its own database or bucket.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.scale_out.services import PostgresServer, S3Server

DAGSTER_VENV = ROOT / ".venv-dagster"
_names = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker (the suite runs with --strict-markers)."""
    config.addinivalue_line(
        "markers", "scale_out: needs PostgreSQL, an S3-compatible server or the orchestrator"
    )


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def postgres_db(postgres: PostgresServer) -> str:
    """A fresh, empty database on the session's server; returns its name."""
    return postgres.create_database(f"scale_out_{next(_names)}")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One moto S3 server for the session."""
    server = S3Server()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket; returns its name."""
    name = f"meltano-state-{next(_names)}"
    s3_server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def dagster_bin() -> Path:
    """The orchestrator's virtualenv (`make venv-dagster`), its `dagster` executable."""
    dagster = DAGSTER_VENV / "bin" / "dagster"
    if not dagster.exists():
        pytest.fail(f"{dagster} missing: run `make venv-dagster`")
    return dagster
