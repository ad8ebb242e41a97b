"""README "Going live": the preflight and preview plugin commands through real `meltano`."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import pytest
import yaml
from api_sandbox.config import SandboxConfig
from target_insider_one.settings import parse_settings

from tests.conftest import MELTANO, ROOT

if TYPE_CHECKING:
    from api_sandbox.testing import SandboxProcess

    from tests.conftest import MeltanoProject


def test_the_sandbox_defines_every_custom_attribute_of_the_project_mapping() -> None:
    """Else the dev setup's target preflight (and every dev run) warns about the demo mapping."""
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    loader = next(p for p in project["plugins"]["loaders"] if p["name"] == "target-insider-one")
    settings = parse_settings({"partner_name": "p", "api_key": "k", **loader["config"]})
    custom = {t.name for _, t in settings.attributes if t.custom}
    custom |= {t.name for t, _ in settings.fixed_values if t.custom}
    assert custom
    assert custom <= set(SandboxConfig().insider_custom_attributes)


@pytest.mark.e2e
def test_both_preflights_pass_on_the_dev_setup_and_write_no_state(
    project: MeltanoProject, sandbox: SandboxProcess
) -> None:
    # Plugin commands get settings from the environment only; numbers must survive that.
    project.env["TAP_SFMC_DE_REQUEST_TIMEOUT"] = "30"
    project.env["TARGET_INSIDER_ONE_REQUEST_TIMEOUT"] = "20"
    tap = project.run("invoke", "tap-sfmc-de:preflight")
    assert "9 OK, 0 WARN, 0 FAIL -> exit 0" in tap.stdout, tap.stdout
    target = project.run("invoke", "target-insider-one:preflight")
    assert "0 WARN, 0 FAIL -> exit 0" in target.stdout, target.stdout
    assert "No state IDs found" in project.run("state", "list").stderr
    assert sandbox.requests("upsert") == []


@pytest.mark.e2e
def test_a_preflight_fail_is_exit_1_through_meltano(
    project: MeltanoProject, sandbox: SandboxProcess
) -> None:
    project.env["TARGET_INSIDER_ONE_API_KEY"] = "wrong-key-value"
    result = project.run("invoke", "target-insider-one:preflight", check=False)
    assert result.returncode == 1
    assert "credentials  FAIL    Insider rejected the credentials" in result.stdout
    assert "wrong-key-value" not in result.stdout + result.stderr
    assert [r["status"] for r in sandbox.requests(None)] == [403]


@pytest.mark.e2e
def test_the_preview_pipe_sends_nothing_and_writes_no_state(
    project: MeltanoProject, sandbox: SandboxProcess
) -> None:
    # Two meltano processes creating a fresh system database at once race on its tables
    # ("table job already exists"); a user's project has one already.
    project.run("state", "list")
    env = {**project.env, "TAP_SFMC_DE_PAGE_SIZE": "10", "TAP_SFMC_DE_MAX_PAGES_PER_RUN": "5"}
    tap_log = (project.workdir / "tap.log").open("w")
    tap = subprocess.Popen(
        [MELTANO, "invoke", "tap-sfmc-de"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=tap_log,
    )  # fmt: skip
    assert tap.stdout is not None
    preview = subprocess.run(
        [MELTANO, "invoke", "target-insider-one:preview"], cwd=ROOT, env=project.env,
        stdin=tap.stdout, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    tap.stdout.close()
    tap.wait(timeout=120)  # 0, or 1 when it was still writing as the preview stopped reading
    tap_log.close()
    tap_errors = (project.workdir / "tap.log").read_text()[-3000:]
    assert preview.returncode == 0, preview.stderr[-3000:]
    assert "10 record(s) of de_customers" in preview.stdout, tap_errors
    outcomes = [line.split()[0] for line in preview.stdout.splitlines()[1:-1] if line[:1] == " "]
    assert len(outcomes) == 10
    sent, dead = outcomes.count("send"), outcomes.count("dead")
    assert f"{sent} would be sent, {dead} dead-lettered" in preview.stdout
    emails = [row["EmailAddress"] for row in sandbox.rows("Customers", limit=10)]
    assert not [e for e in emails if e and e in preview.stdout]
    assert sandbox.rowset_request_count() <= 5
    assert sandbox.requests("upsert") == []
    assert sandbox.profiles() == []
    assert "No state IDs found" in project.run("state", "list").stderr
