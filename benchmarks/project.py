"""What the benchmark reads from the Meltano project and the plugins' own settings.

The target's mapping is the project's (``meltano.yml``), so the benchmark measures what a
``meltano run`` sends. Setting defaults come from each plugin's ``--about`` (its config
schema), never from a copy here: the latency bound stays right when a default changes or a
setting (the tap's ``page_concurrency``) appears.
"""

from __future__ import annotations

import compileall
import functools
import json
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from benchmarks.processes import BIN, ROOT

if TYPE_CHECKING:
    from api_sandbox.testing import SandboxProcess

TAP = str(BIN / "tap-sfmc-de")
TARGET = str(BIN / "target-insider-one")
MELTANO = str(BIN / "meltano")
PAGE_SIZE = 2500  # the tap's default page size (rows per rowset request)
EXTRA_REQUESTS = 10  # probes per run on top of the data pages, with room to spare


PACKAGES = (
    "tap-sfmc-de/tap_sfmc_de",
    "target-insider-one/target_insider_one",
    "sandbox/api_sandbox",
)


def compile_packages() -> None:
    """Byte-compile the project's own packages, as ``pip install`` does for an installed plugin.

    They are installed editable here, and under ``PYTHONDONTWRITEBYTECODE`` (set on some CI
    machines) every process would compile them again at start-up: a cost the anchors, whose
    packages pip compiled, do not pay and a deployed plugin does not either.
    """
    for package in PACKAGES:
        compileall.compile_dir(ROOT / package, quiet=1)


def plugin_configs(
    sandbox: SandboxProcess, work: Path, rows: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tap's config (reading the whole DE in one run) and the target's (project mapping)."""
    tap_config = sandbox.tap_config(
        token_store_path=str(work / "token.json"), max_pages_per_run=pages_for(rows)
    )
    target_config = sandbox.target_config(
        dead_letter_path=str(work / "dead.jsonl"), **project_mapping()
    )
    return tap_config, target_config


def project_mapping() -> dict[str, Any]:
    """The target's settings exactly as the Meltano project configures them."""
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    loader = next(p for p in project["plugins"]["loaders"] if p["name"] == "target-insider-one")
    return loader["config"]


def phones_off(mapping: dict[str, Any]) -> dict[str, Any]:
    """The same mapping without its phone_number identifier."""
    identifiers = [m for m in mapping["identifier_mappings"] if m["type"] != "phone_number"]
    return {**mapping, "identifier_mappings": identifiers}


def phone_field(mapping: dict[str, Any]) -> str:
    """The record field the mapping reads phone numbers from."""
    return next(m["field"] for m in mapping["identifier_mappings"] if m["type"] == "phone_number")


def pages_for(rows: int) -> int:
    """A ``max_pages_per_run`` that lets one run read ``rows`` rows (pages plus probes)."""
    return -(-rows // PAGE_SIZE) + EXTRA_REQUESTS


@functools.cache
def setting_defaults(executable: str) -> dict[str, Any]:
    """Each setting's default from ``<executable> --about --format=json``."""
    about = subprocess.run(  # noqa: S603 - our own plugin CLI
        [executable, "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    properties = json.loads(about)["settings"]["properties"]
    return {name: spec.get("default") for name, spec in properties.items()}


def configured(executable: str, config: dict[str, Any], name: str, missing: Any) -> Any:
    """A setting's value in ``config``, else its default, else ``missing`` (no such setting)."""
    if name in config:
        return config[name]
    default = setting_defaults(executable).get(name)
    return missing if default is None else default


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """Write a plugin config file (0600: it holds the sandbox's credentials)."""
    path.touch(mode=0o600)
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def meltano_env(sandbox_urls: tuple[str, str], work: Path, max_pages: int) -> dict[str, str]:
    """Environment for ``meltano run`` against the sandbox, state in a temporary SQLite DB."""
    sfmc_url, insider_url = sandbox_urls
    return {
        **os.environ,
        "MELTANO_ENVIRONMENT": "dev",
        "MELTANO_DATABASE_URI": f"sqlite:///{work / 'meltano.db'}",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "TAP_SFMC_DE_AUTH_BASE_URL": sfmc_url,
        "TAP_SFMC_DE_TOKEN_STORE_PATH": str(work / "meltano-token.json"),
        "TAP_SFMC_DE_MAX_PAGES_PER_RUN": str(max_pages),
        "TARGET_INSIDER_ONE_API_BASE_URL": insider_url,
        "TARGET_INSIDER_ONE_DEAD_LETTER_PATH": str(work / "dead-meltano.jsonl"),
    }
