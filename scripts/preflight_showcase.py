"""What a new user sees: both preflights and the preview, sound and with each usual mistake.

    .venv/bin/python scripts/preflight_showcase.py

Starts a sandbox (random ports), writes the tap and target configs the project's
``meltano.yml`` would give them, and runs the real CLIs: ``tap-sfmc-de --preflight`` and
``target-insider-one --preflight`` on a sound setup, then once per deliberate mistake
(missing scope, a DE name instead of its key, no replication key, ``$filter`` ignored, date
literals read as UTC, a wrong Insider key, an unknown custom attribute), and a ten-row
preview. At the end it shows, from the sandbox's own counters, that nothing was upserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from api_sandbox.testing import SandboxProcess

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def project_config(kind: str, name: str) -> dict[str, Any]:
    """A plugin's ``config`` from meltano.yml (the mapping a user starts from)."""
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    plugin = next(p for p in project["plugins"][kind] if p["name"] == name)
    return dict(plugin.get("config") or {})


def run(argv: list[str], config: dict[str, Any], workdir: Path, stdin: Any = None) -> None:
    """Run one CLI with a config file and print its stdout and exit code."""
    path = workdir / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    proc = subprocess.run(  # noqa: S603 - our own plugin executables
        [argv[0], "--config", str(path), *argv[1:]],
        stdin=stdin, capture_output=True, text=True, timeout=120, check=False, cwd=workdir,
    )  # fmt: skip
    print(f"$ {Path(argv[0]).name} {' '.join(argv[1:])}   (exit {proc.returncode})")
    print(proc.stdout, flush=True)


def main() -> None:
    """Run every case."""
    tap_base = project_config("extractors", "tap-sfmc-de")
    target_base = project_config("loaders", "target-insider-one")
    with SandboxProcess() as sb, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tap = [str(BIN / "tap-sfmc-de"), "--preflight"]
        target = [str(BIN / "target-insider-one"), "--preflight"]
        tap_config = sb.tap_config(**tap_base, token_store_path=str(work / "token.json"))
        target_config = sb.target_config(**target_base, dead_letter_path=str(work / "dl.jsonl"))

        def case(title: str) -> None:
            sb.reset()
            print(f"\n##### {title}\n", flush=True)

        case("A sound setup")
        run(tap, tap_config, work)
        run(target, target_config, work)

        case("Mistake: the SFMC package lacks Data Extensions > Read")
        sb.configure(granted_scopes=["offline", "list_and_subscribers_read"])
        run(tap, tap_config, work)

        case("Mistakes: a DE name instead of its external key; a DE without ModifiedDate")
        sb.create_de("cust_export_01", name="Customers Export", size=20)
        fields = [{"name": "Id", "is_primary_key": True}, {"name": "Note"}]
        sb.create_de("NoModified", fields=fields, size=20)
        run(tap, {**tap_config, "data_extension_keys": ["Customers Export", "NoModified"]}, work)

        case("Server quirk: $filter is ignored")
        sb.configure(filter_mode="ignored")
        run(tap, tap_config, work)

        case("Server quirk: naive $filter date literals are read as UTC")
        sb.configure(filter_date_literal="utc")
        run(tap, tap_config, work)

        case("Mistake: a wrong Insider API key")
        run(target, {**target_config, "api_key": "not-the-ucd-key"}, work)

        case("Mistake: a mapped custom attribute Insider does not define")
        mapping = {**target_config["attribute_mappings"], "LastName": "family_name"}
        run(target, {**target_config, "attribute_mappings": mapping}, work)

        case("Preview of ten rows (values masked), through the real tap")
        cfg = work / "tap.json"
        cfg.write_text(json.dumps({**tap_config, "page_size": 10, "max_pages_per_run": 5}))
        with subprocess.Popen(  # noqa: S603
            [str(BIN / "tap-sfmc-de"), "--config", str(cfg)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        ) as source:  # fmt: skip
            run([str(BIN / "target-insider-one"), "--preview", "10"], target_config, work,
                stdin=source.stdout)  # fmt: skip
            if source.stdout is not None:
                source.stdout.close()
        print(
            f"sandbox during the preview: upsert requests {len(sb.requests('upsert'))}, "
            f"profiles {len(sb.profiles())}, rowset requests {sb.rowset_request_count()}"
        )


if __name__ == "__main__":
    main()
