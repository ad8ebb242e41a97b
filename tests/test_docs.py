"""The plugins' READMEs show the settings tables their `--about` prints today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def about_settings_table(executable: str) -> list[str]:
    """The `| Setting | ...` table of `--about --format=markdown`."""
    about = subprocess.run(
        [str(Path(sys.executable).with_name(executable)), "--about", "--format=markdown"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    lines = about.splitlines()
    start = lines.index("## Settings")
    return [line for line in lines[start:] if line.startswith("|")]


@pytest.mark.parametrize("plugin", ["tap-sfmc-de", "target-insider-one"])
def test_readme_settings_table_matches_about(plugin: str) -> None:
    readme = (ROOT / plugin / "README.md").read_text(encoding="utf-8")
    table = about_settings_table(plugin)
    assert len(table) > 10
    missing = [line for line in table if line not in readme.splitlines()]
    assert not missing, (
        f"{plugin}/README.md is out of date: paste the table from "
        f"`{plugin} --about --format=markdown`; first differing row: {missing[0]}"
    )
