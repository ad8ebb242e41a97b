"""ACTIVATE_VERSION in full mode: one table version per full pass, sent when it completes.

The checks replay the tap's message stream the way a target that honours ACTIVATE_VERSION
does (target-postgres: rows of an older version are removed on activation), so "rows deleted
in SFMC disappear downstream" is checked against the sandbox's own rows.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from tap_sfmc_de.full_pass_version import pass_version, with_version
from tap_sfmc_de_testkit import run_tap

if TYPE_CHECKING:
    from pathlib import Path

    from api_sandbox.testing import SandboxProcess


class VersionedTable:
    """A warehouse table as a target that honours ACTIVATE_VERSION keeps it."""

    def __init__(self) -> None:
        self.rows: dict[str, int | None] = {}  # key -> version of the row's last write
        self.activations: list[int] = []

    def load(self, stdout: str) -> list[str]:
        """Apply one run's messages; return the message types in order."""
        types = []
        for line in stdout.splitlines():
            message = json.loads(line)
            types.append(message["type"])
            if message["type"] == "RECORD":
                self.rows[message["record"]["MemberId"]] = message.get("version")
            elif message["type"] == "ACTIVATE_VERSION":
                version = message["version"]
                self.activations.append(version)
                self.rows = {k: v for k, v in self.rows.items() if v is not None and v >= version}
        return types


def members(sandbox: SandboxProcess) -> set[str]:
    return {row["MemberId"] for row in sandbox.rows("Members")}


def full_pass(config: dict[str, Any], state: Any, table: VersionedTable, workdir: Path) -> Any:
    """Run the tap until one full pass completed; return the state it left."""
    activations = len(table.activations)
    for run_number in range(8):
        run = run_tap(config, workdir / f"run{run_number}", state=state)
        assert run.returncode == 0, run.stderr[-2000:]
        types = table.load(run.stdout)
        state = run.state
        if len(table.activations) > activations:
            # Sent after the pass's last record and before the STATE that closes the pass.
            assert (
                types.index("ACTIVATE_VERSION")
                > max(i for i, t in enumerate(types) if t == "RECORD")
                or "RECORD" not in types
            )
            assert types[-1] == "STATE"
            assert run_number > 0, "the budget should make this pass span runs"
            return state
    pytest.fail("no full pass completed in 8 runs")
    return None


@pytest.fixture
def member_de(sandbox: SandboxProcess) -> None:
    sandbox.create_de(
        "Members",
        fields=[
            {"name": "MemberId", "type": "Text", "is_primary_key": True},
            {"name": "Tier", "type": "Text"},
        ],
        size=450,
    )


@pytest.mark.e2e
@pytest.mark.usefixtures("member_de")
def test_a_full_pass_spanning_runs_has_one_version_and_drops_deleted_rows(
    sandbox: SandboxProcess, tmp_path: Path
) -> None:
    config = sandbox.tap_config(
        data_extension_keys=["Members"], fetch_mode="full", page_size=100,
        max_pages_per_run=5, emit_activate_version_messages=True,
    )  # fmt: skip
    table = VersionedTable()
    state = full_pass(config, None, table, tmp_path / "pass1")
    first = table.activations[-1]
    assert set(table.rows) == members(sandbox)
    assert set(table.rows.values()) == {first}  # every run of the pass wrote one version
    assert "table_version" not in state["bookmarks"]["de_members"]

    deleted = set(sandbox.mutate("Members", delete=25)["deleted"])
    assert deleted <= set(table.rows)
    full_pass(config, state, table, tmp_path / "pass2")
    assert table.activations[-1] > first
    assert set(table.rows) == members(sandbox)
    assert not deleted & set(table.rows)


@pytest.mark.e2e
@pytest.mark.usefixtures("member_de")
def test_without_the_setting_no_version_is_sent(sandbox: SandboxProcess, tmp_path: Path) -> None:
    config = sandbox.tap_config(data_extension_keys=["Members"], fetch_mode="full")
    run = run_tap(config, tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    messages = [json.loads(line) for line in run.stdout.splitlines()]
    assert "ACTIVATE_VERSION" not in {m["type"] for m in messages}
    assert all("version" not in m for m in messages if m["type"] == "RECORD")


def test_a_pass_in_progress_keeps_its_version_and_a_new_pass_gets_a_later_one() -> None:
    assert pass_version({"window": {}, "table_version": 17}, clock=lambda: 99.0) == 17
    assert pass_version({"table_version": 17}, clock=lambda: 99.0) == 99_000  # pass completed
    assert pass_version({"window": {}, "table_version": True}, clock=lambda: 5.0) == 5000
    assert with_version({"window": {}}, 7) == {"window": {}, "table_version": 7}
    assert with_version({"table_version": 7, "recent": {}}, 7) == {"recent": {}}
