"""The generated many-DE project file is current and gives every DE its own state id."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "generate_fleet.py"


def test_generated_fleet_file_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_every_de_is_one_inherited_extractor_and_one_task() -> None:
    spec = yaml.safe_load((ROOT / "orchestrate" / "fleet.yml").read_text(encoding="utf-8"))
    generated = yaml.safe_load(
        (ROOT / "orchestrate" / "fleet.meltano.yml").read_text(encoding="utf-8")
    )
    extractors = generated["plugins"]["extractors"]
    expected = {
        (str(unit["account_id"]), key)
        for unit in spec["business_units"]
        for key in unit["data_extensions"]
    }
    assert {
        (e["config"]["account_id"], e["config"]["data_extension_keys"][0]) for e in extractors
    } == expected
    assert len({e["name"] for e in extractors}) == len(expected)
    assert all(e["inherit_from"] == "tap-sfmc-de" for e in extractors)
    (job,) = generated["jobs"]
    assert job["tasks"] == [f"{e['name']} {spec['loader']}" for e in extractors]
    assert generated["schedules"][0]["job"] == job["name"]


def test_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    # Run a copy of the script against a copy of the files with one DE added to the spec.
    (tmp_path / "scripts").mkdir()
    (tmp_path / "orchestrate").mkdir()
    (tmp_path / "scripts" / "generate_fleet.py").write_text(SCRIPT.read_text(encoding="utf-8"))
    spec = yaml.safe_load((ROOT / "orchestrate" / "fleet.yml").read_text(encoding="utf-8"))
    spec["business_units"][0]["data_extensions"].append("Extra")
    (tmp_path / "orchestrate" / "fleet.yml").write_text(yaml.safe_dump(spec))
    generated = ROOT / "orchestrate" / "fleet.meltano.yml"
    (tmp_path / "orchestrate" / "fleet.meltano.yml").write_text(generated.read_text())
    script = tmp_path / "scripts" / "generate_fleet.py"
    stale = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, check=False
    )
    assert stale.returncode == 1
    subprocess.run([sys.executable, str(script)], check=True)
    fresh = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, check=False
    )
    assert fresh.returncode == 0
