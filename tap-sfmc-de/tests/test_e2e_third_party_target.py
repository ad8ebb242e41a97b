"""Reuse with other targets: pipe the tap into target-jsonl from PyPI (its own venv)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tap_sfmc_de_testkit import TAP_BIN

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# target-jsonl pins an old singer-python that conflicts with singer-sdk, so it can never
# live in the project venv.
TARGET_REQUIREMENT = "target-jsonl==0.1.4"


@pytest.fixture(scope="session")
def target_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("target-jsonl-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
         TARGET_REQUIREMENT],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    if pip.returncode != 0:
        network = ("Could not find a version", "No matching distribution", "connection", "resolve")
        if any(word.lower() in pip.stderr.lower() for word in network):
            pytest.skip(f"cannot install {TARGET_REQUIREMENT} (network?): {pip.stderr[-300:]}")
        pytest.fail(f"pip install {TARGET_REQUIREMENT} failed: {pip.stderr[-1000:]}")
    return venv / "bin" / "target-jsonl"


def test_tap_into_target_jsonl(sandbox, tmp_path, target_jsonl):
    sandbox.create_de("Export", size=700, seed=4)
    config = tmp_path / "tap.json"
    config.write_text(json.dumps(sandbox.tap_config(data_extension_keys=["Export"], page_size=250)))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target_config = tmp_path / "target.json"
    target_config.write_text(
        json.dumps({"destination_path": str(out_dir), "do_timestamp_file": False})
    )
    tap = subprocess.Popen(
        [TAP_BIN, "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    target = subprocess.run(
        [str(target_jsonl), "--config", str(target_config)],
        stdin=tap.stdout, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    tap.stdout.close()
    tap_err = tap.stderr.read().decode()
    tap.stderr.close()
    assert tap.wait(timeout=60) == 0, tap_err[-2000:]
    assert target.returncode == 0, target.stderr[-2000:]
    written = [json.loads(line) for line in (out_dir / "de_export.jsonl").read_text().splitlines()]
    expected = {r["SubscriberKey"]: r for r in sandbox.rows("Export")}
    assert len(written) == 700
    assert {r["SubscriberKey"] for r in written} == set(expected)
    sample = written[0]
    source = expected[sample["SubscriberKey"]]
    assert sample["EmailAddress"] == source["EmailAddress"]
    assert sample["ModifiedDate"].endswith("+00:00")
    # The final STATE reached the target's stdout (it echoes the last state).
    state = json.loads(target.stdout.strip().splitlines()[-1])
    assert state["bookmarks"]["de_export"]["replication_key_value"].endswith("+00:00")
