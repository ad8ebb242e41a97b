"""The README's commands, run as written: a new user's first hour, against the sandbox.

Every block of README.md marked ``<!-- doctest -->`` (a shell block) or
``<!-- doctest: meltano.yml -->`` (a ``meltano.yml`` excerpt the user is told to apply) is
taken in page order and run in one shell, as a user would in one terminal, in a fresh copy of
the repository (tracked files only: no ``.meltano/``, no ``output/``; the already built
``.venv`` is shared). The sandbox's credentials stand in for real ones in the copy's ``.env``,
as "Going live" tells the user to put them. Blocks added later to any section are picked up
by their marker. What the commands did is then checked in the sandbox.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.conftest import ROOT

if TYPE_CHECKING:
    from api_sandbox.testing import SandboxProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MARKER = re.compile(r"^\s*<!-- doctest(?::\s*(?P<kind>[\w.-]+))?\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>\w*)")
BLOCK_START = "=== README block"
# The Makefile reinstalls into .venv when these are newer than its stamp; the copy must not
# (it would point the shared .venv's editable installs at the temporary copy).
VENV_PREREQUISITES = [
    "requirements/dev.txt",
    "requirements/constraints.txt",
    "sandbox/pyproject.toml",
    "tap-sfmc-de/pyproject.toml",
    "target-insider-one/pyproject.toml",
]


@dataclass
class Block:
    """One marked block of the README."""

    kind: str  # "shell" or "meltano.yml"
    section: str
    text: str


def readme_blocks(text: str) -> list[Block]:
    """The marked blocks in page order, dedented to their fence."""
    lines = text.splitlines()
    blocks: list[Block] = []
    section = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            section = line[3:].strip()
        marker = MARKER.match(line)
        if marker:
            fence = FENCE.match(lines[index + 1])
            assert fence, f"README: a doctest marker must precede a fence (line {index + 1})"
            indent = len(fence["indent"])
            body: list[str] = []
            index += 2
            while not lines[index].strip().startswith("```"):
                body.append(lines[index][indent:])
                index += 1
            kind = marker["kind"] or "shell"
            assert kind in {"shell", "meltano.yml"}, f"unknown doctest kind {kind}"
            assert (kind == "shell") == (fence["lang"] in {"bash", "sh"}), section
            blocks.append(Block(kind, section, "\n".join(body)))
        index += 1
    return blocks


def apply_excerpt(project: dict[str, Any], excerpt: dict[str, Any]) -> dict[str, Any]:
    """``meltano.yml`` with a README excerpt applied, as the README words it.

    A plugin or job of the excerpt that exists already gets the excerpt's ``config`` /
    ``tasks`` in place of its own; a new one is added.
    """
    for kind, plugins in excerpt.get("plugins", {}).items():
        existing = {p["name"]: p for p in project["plugins"][kind]}
        for plugin in plugins:
            if plugin["name"] in existing:
                existing[plugin["name"]]["config"] = plugin.get("config", {})
            else:
                project["plugins"][kind].append(plugin)
    jobs = {j["name"]: j for j in project.get("jobs", [])}
    for job in excerpt.get("jobs", []):
        if job["name"] in jobs:
            jobs[job["name"]]["tasks"] = job["tasks"]
        else:
            project.setdefault("jobs", []).append(job)
    return project


def fresh_copy(destination: Path) -> Path:
    """The repository's files as a clone has them, sharing the built .venv."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    (destination / ".venv").symlink_to(ROOT / ".venv")
    stamp = (ROOT / ".venv" / ".installed").stat().st_mtime
    for name in VENV_PREREQUISITES:
        os.utime(destination / name, (stamp - 60, stamp - 60))
    return destination


def user_environment() -> dict[str, str]:
    """The test's environment without anything the README must set up itself."""
    venv_bin = str(ROOT / ".venv" / "bin")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TAP_", "TARGET_", "MELTANO_", "VIRTUAL_ENV", "PYTEST"))
    }
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return env


def write_dotenv(project: Path, sandbox: SandboxProcess) -> None:
    """The `.env` of "Going live", with the sandbox's credentials standing in."""
    values = {
        "TAP_SFMC_DE_CLIENT_ID": "sandbox-client-id",
        "TAP_SFMC_DE_CLIENT_SECRET": "sandbox-client-secret",
        "TAP_SFMC_DE_SUBDOMAIN": "mcsandbox0000000000000000000",
        "TAP_SFMC_DE_AUTH_BASE_URL": sandbox.sfmc_url,  # the real hosts need no override
        "TARGET_INSIDER_ONE_PARTNER_NAME": "sandboxpartner",
        "TARGET_INSIDER_ONE_API_KEY": "sandbox-api-key",
        "TARGET_INSIDER_ONE_API_BASE_URL": sandbox.insider_url,
    }
    dotenv = project / ".env"
    dotenv.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    dotenv.chmod(0o600)


def script_for(blocks: list[Block], project: Path) -> str:
    """One bash script: the shell blocks in order; excerpts applied where they appear."""
    meltano_yml = yaml.safe_load((project / "meltano.yml").read_text(encoding="utf-8"))
    parts = ["set -euo pipefail"]
    for number, block in enumerate(blocks, start=1):
        parts.append(f"echo '{BLOCK_START} {number} ({block.section}, {block.kind})'")
        if block.kind == "shell":
            parts.append(block.text)
            continue
        meltano_yml = apply_excerpt(meltano_yml, yaml.safe_load(block.text))
        applied = project / f".doctest-meltano-{number}.yml"
        applied.write_text(yaml.safe_dump(meltano_yml, sort_keys=False), encoding="utf-8")
        parts.append(f"cp {applied.name} meltano.yml")
    return "\n".join(parts) + "\n"


def block_outputs(log: str) -> dict[str, str]:
    """Output of each block, keyed by section name (blocks of one section joined)."""
    outputs: dict[str, str] = {}
    for chunk in log.split(BLOCK_START)[1:]:
        header, _, body = chunk.partition("\n")
        section = header.split("(", 1)[1].rsplit(",", 1)[0]
        outputs[section] = outputs.get(section, "") + body
    return outputs


def loyalty_de(sandbox: SandboxProcess) -> None:
    """The second DE of "Several Data Extensions", with other columns than Customers."""
    sandbox.create_de(
        "LoyaltyMembers",
        fields=[
            {"name": "MemberId", "type": "Text", "is_primary_key": True},
            {"name": "Email", "type": "EmailAddress"},
            {"name": "Tier", "type": "Text"},
            {"name": "City", "type": "Text"},  # mapped by the Customers loader, not by this one
            {"name": "LastUpdated", "type": "Date"},
        ],
        size=40,
    )
    assert any(row.get("City") for row in sandbox.rows("LoyaltyMembers"))


def test_readme_commands_run_as_written(sandbox: SandboxProcess, tmp_path: Path) -> None:
    blocks = readme_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    sections = {b.section for b in blocks}
    assert {"The two commands", "Going live", "State", "When something goes wrong"} <= sections
    assert "Several Data Extensions" in sections
    project = fresh_copy(tmp_path / "clone")
    write_dotenv(project, sandbox)
    loyalty_de(sandbox)
    script = project / ".doctest.sh"
    script.write_text(script_for(blocks, project), encoding="utf-8")

    result = subprocess.run(
        ["bash", str(script)], cwd=project, env=user_environment(), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1200, check=False,
    )  # fmt: skip
    log = result.stdout
    last_block = log.rsplit(BLOCK_START, 1)[-1].splitlines()[0] if BLOCK_START in log else "-"
    assert result.returncode == 0, f"README block{last_block} failed:\n{log[-6000:]}"
    out = block_outputs(log)

    # The demo: what it prints is what it runs, and the second run sends only the changes.
    demo = out["The two commands"]
    assert "Run 1: meltano run --state-id-suffix demo sfmc-to-insider" in demo
    assert "records received:        5000" in demo
    assert "changed rows: 25 -> users sent:" in demo
    assert "records received:        25" in demo
    assert '"replication_key":"ModifiedDate"' in demo
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "meltano state get dev:tap-sfmc-de-to-target-insider-one:demo" in demo
    assert "meltano state get dev:tap-sfmc-de-to-target-insider-one:demo" in readme

    # Going live (sandbox standing in): secrets redacted, then every deliverable row arrived.
    live = out["Going live"]
    assert "sandbox-client-secret" not in live
    assert live.count("0 WARN, 0 FAIL -> exit 0") == 2, live[-3000:]  # both preflights green
    assert "dry run: nothing sent, no STATE" in live  # the preview
    assert "de_customers" in live  # `select --list`
    # State: the bookmark the README's state id names.
    assert '"de_customers"' in out["State"]
    assert "prod:tap-sfmc-de-to-target-insider-one" in out["State"]
    # Replay: tap-jsonl fed every dead-lettered Customers row to the target, which took them.
    path = project / "output/dead-letters/prod.jsonl"
    letters = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    first_run = [x for x in letters if "_sdc_filename" not in x["record"]]  # not the replays
    replay = out["When something goes wrong"]
    assert first_run
    assert f"records received:        {len(first_run)}" in replay, replay[-3000:]

    # Several DEs: each loader sent its own mapping only (nothing merged from the parent).
    loyalty = [  # profiles of LoyaltyMembers rows only (not merged with a Customers row)
        p
        for p in sandbox.profiles()
        if p["attributes"].get("custom", {}).get("loyalty_tier")
        and "sfmc_subscriber_key" not in p["attributes"]["custom"]
    ]
    assert loyalty, "no LoyaltyMembers row arrived with its own mapping"
    for profile in loyalty:
        custom = profile["attributes"]["custom"]
        assert custom["data_source"] == "sfmc-loyalty"
        # Merged from a parent that held the Customers mapping, City -> city would be sent.
        assert "city" not in profile["attributes"]
    state_ids = out["Several Data Extensions"]
    assert "prod:tap-sfmc-de--loyalty-to-target-insider-one--loyalty" in state_ids
    assert "prod:tap-sfmc-de-to-target-insider-one--customers" in state_ids
