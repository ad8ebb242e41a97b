"""Settings reach the plugins through real `meltano` as a user sets them."""

from __future__ import annotations

import json
import os
import subprocess
from typing import TYPE_CHECKING

import pytest

from tests.conftest import MELTANO, ROOT

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import MeltanoProject

pytestmark = pytest.mark.e2e


def test_fractional_seconds_from_the_environment_reach_both_plugins(
    project: MeltanoProject,
) -> None:
    # Meltano 4.4 crashed on these with `kind: integer` (int("0.5")) and `kind: decimal`
    # (a Decimal it cannot write to the plugin's config file).
    project.env["TAP_SFMC_DE_BACKOFF_BASE_SECONDS"] = "0.5"
    project.env["TAP_SFMC_DE_REQUEST_TIMEOUT"] = "12.5"
    project.env["TARGET_INSIDER_ONE_BACKOFF_BASE_SECONDS"] = "0.25"
    project.env["TARGET_INSIDER_ONE_RETRY_BUDGET_SECONDS"] = "30.5"

    config = project.run("config", "print", "tap-sfmc-de").stdout
    assert '"backoff_base_seconds": "0.5"' in config
    catalog = json.loads(project.run("invoke", "tap-sfmc-de", "--discover").stdout)
    assert [s["tap_stream_id"] for s in catalog["streams"]] == ["de_customers"]
    target = project.run("invoke", "target-insider-one", input_text="")
    assert target.returncode == 0


def test_prod_without_credentials_fails_at_once_naming_the_variables(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_SFMC_DE_", "TARGET_"))}
    env["MELTANO_DATABASE_URI"] = f"sqlite:///{tmp_path / 'meltano.db'}"
    run = subprocess.run(
        [MELTANO, "--environment=prod", "run", "sfmc-to-insider"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode != 0
    for variable in ("TAP_SFMC_DE_CLIENT_ID", "TAP_SFMC_DE_CLIENT_SECRET", "TAP_SFMC_DE_SUBDOMAIN"):
        assert f"set {variable} " in run.stderr, run.stderr[-3000:]
    assert "Traceback" not in run.stderr

    target = subprocess.run(
        [MELTANO, "--environment=prod", "invoke", "target-insider-one"],
        cwd=ROOT, env=env, input="", capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert target.returncode != 0
    output = target.stdout + target.stderr
    for variable in ("TARGET_INSIDER_ONE_PARTNER_NAME", "TARGET_INSIDER_ONE_API_KEY"):
        assert f"set {variable} " in output, output[-3000:]
    assert "Traceback" not in output
