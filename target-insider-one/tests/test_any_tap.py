"""Works with any tap: a third-party Singer tap from PyPI feeds the real target CLI.

The tap (``tap-jsonl`` 0.3.1) is installed into its own virtual environment under the
session's temporary directory, never into the project's environment. The test is skipped
(with the reason) only when the install fails for network reasons.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .e2e_helpers import TARGET_CLI

pytestmark = pytest.mark.e2e

TAP_SPEC = "tap-jsonl==0.3.1"
_NETWORK_ERROR = re.compile(
    r"network|connect|resolve|dns|timed? ?out|temporary failure|unreachable|"
    r"no matching distribution|failed to fetch|could not find a version|proxy|ssl",
    re.IGNORECASE,
)


def _install(venv: Path) -> subprocess.CompletedProcess[str]:
    uv = Path(sys.executable).parent / "uv"
    if uv.exists() or shutil.which("uv"):
        uv_cmd = str(uv) if uv.exists() else "uv"
        made = subprocess.run(
            [uv_cmd, "venv", "-q", "-p", sys.executable, str(venv)],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        if made.returncode != 0:
            return made
        return subprocess.run(
            [uv_cmd, "pip", "install", "-q", "-p", str(venv / "bin" / "python"), TAP_SPEC],
            capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip
    made = subprocess.run(
        [sys.executable, "-m", "venv", str(venv)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    if made.returncode != 0:
        return made
    return subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", TAP_SPEC],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="session")
def tap_jsonl(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("tap-jsonl") / "venv"
    result = _install(venv)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        if _NETWORK_ERROR.search(output):
            pytest.skip(f"could not install {TAP_SPEC} (network): {output.strip()[-300:]}")
        pytest.fail(f"installing {TAP_SPEC} failed:\n{output}")
    cli = venv / "bin" / "tap-jsonl"
    assert cli.exists(), output
    return cli


def test_tap_jsonl_into_target(tap_jsonl, sandbox, tmp_path):
    data = tmp_path / "customers.jsonl"
    rows = [
        {"customer_id": 1, "email": "One@Example.com", "first": "One", "vip": "yes",
         "signup": "2024-05-01T10:00:00+02:00", "points": 10},
        {"customer_id": 2, "email": "two@example.com", "first": "Two", "vip": "no",
         "signup": "2024-06-01T00:00:00Z", "points": 20},
        {"customer_id": 3, "email": "not-an-email", "first": "Three"},
        {"customer_id": None, "email": None, "first": "Nobody"},
    ]  # fmt: skip
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tap_config = tmp_path / "tap.json"
    tap_config.write_text(
        json.dumps({"path": str(data), "stream_name": "people", "primary_keys": ["customer_id"]})
    )
    target_config = tmp_path / "target.json"
    target_config.write_text(
        json.dumps(
            sandbox.target_config(
                identifier_mappings=[
                    {"type": "uuid", "field": "customer_id"},
                    {"type": "email", "field": "email"},
                ],
                attribute_mappings={
                    "first": "name",
                    "vip": "is_vip",
                    "signup": "signed_up_at",
                    "points": "points",
                },
                fixed_value_mappings={"data_source": "jsonl"},
                dead_letter_path=str(tmp_path / "dead.jsonl"),
            )
        )
    )
    tap = subprocess.Popen(
        [str(tap_jsonl), "--config", str(tap_config)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    target = subprocess.run(
        [str(TARGET_CLI), "--config", str(target_config)],
        stdin=tap.stdout, capture_output=True, text=True, check=False, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert tap.stdout is not None
    tap.stdout.close()
    assert tap.wait(timeout=60) == 0
    assert target.returncode == 0, target.stderr

    states = [json.loads(line) for line in target.stdout.splitlines() if line.strip()]
    assert states, "the tap's STATE must come through once the records are settled"
    assert "people" in states[-1]["bookmarks"]

    profiles = {p["identifiers"]["uuid"]: p for p in sandbox.profiles()}
    assert set(profiles) == {"1", "2", "3"}
    one = profiles["1"]
    assert one["identifiers"]["email"] == "one@example.com"
    assert one["attributes"]["name"] == "One"
    # tap-jsonl infers strings for "yes"/"no" and datetimes; they stay strings.
    assert one["attributes"]["custom"]["is_vip"] == "yes"
    assert one["attributes"]["custom"]["points"] == 10
    assert one["attributes"]["custom"]["data_source"] == "jsonl"
    assert "email" not in profiles["3"]["identifiers"]  # invalid email dropped, uuid kept
    letters = [json.loads(x) for x in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [(d["reason"], d["stream"]) for d in letters] == [("no_identifier", "people")]
