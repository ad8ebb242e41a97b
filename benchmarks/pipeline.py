"""Throughput of each stage and of the whole pipeline, side by side in one run.

    .venv/bin/python -m benchmarks.pipeline [--rows 125000]

Stages, all against one sandbox over HTTP on 127.0.0.1 (the machine is shared and noisy,
so compare the ratios in one run rather than absolute figures across runs):
1. tap alone: `tap-sfmc-de` to a file (the Singer messages are kept for stage 2);
2. target alone: that file into `target-insider-one`;
3. pipe: `tap-sfmc-de | target-insider-one`;
4. Meltano: `meltano run tap-sfmc-de target-insider-one` (plugin venvs, state in a temp DB).
The default DE size, 125,000 rows, is more than one run of the tap at its default cap: the
timed run reads 120,000 of them (50 rowset requests = 2 probes + 48 pages of 2,500) and
the table reports the records it really emitted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from api_sandbox.testing import SandboxProcess

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def project_mapping() -> dict[str, Any]:
    """The target's mapping settings exactly as the Meltano project configures them."""
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    loader = next(p for p in project["plugins"]["loaders"] if p["name"] == "target-insider-one")
    return loader["config"]


def timed(label: str, command: str, env: dict[str, str] | None = None) -> float:
    """Run a shell command, fail loudly on error, return its wall time in seconds."""
    print(f"  running: {label} ...", flush=True)
    started = time.perf_counter()
    result = subprocess.run(  # noqa: S602 - fixed commands built here, for shell pipes
        command, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        print(result.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"benchmark stage failed: {label}")
    return elapsed


def main() -> None:
    """Run the stages and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=125_000)
    args = parser.parse_args()

    with (
        SandboxProcess(rows=args.rows, start_timeout=300) as sandbox,
        tempfile.TemporaryDirectory() as tmp,
    ):
        work = Path(tmp)
        tap_config = sandbox.tap_config(token_store_path=str(work / "token.json"))
        target_config = sandbox.target_config(
            dead_letter_path=str(work / "dead.jsonl"), **project_mapping()
        )
        (work / "tap.json").write_text(json.dumps(tap_config), encoding="utf-8")
        (work / "target.json").write_text(json.dumps(target_config), encoding="utf-8")
        tap = f"{BIN / 'tap-sfmc-de'} --config {work / 'tap.json'}"
        target = f"{BIN / 'target-insider-one'} --config {work / 'target.json'}"
        singer = work / "singer.jsonl"

        print(f"Sandbox with {args.rows:,} rows; stages:")
        results = {"tap alone": timed("tap alone", f"{tap} > {singer}")}
        records = sum(1 for line in singer.open(encoding="utf-8") if '"RECORD"' in line[:30])
        sandbox.reset()
        results["target alone"] = timed("target alone", f"{target} < {singer} > /dev/null")
        sandbox.reset()
        results["tap | target"] = timed("tap | target", f"{tap} | {target} > /dev/null")
        sandbox.reset()
        env = {
            **os.environ,
            "MELTANO_DATABASE_URI": f"sqlite:///{work / 'meltano.db'}",
            "TAP_SFMC_DE_AUTH_BASE_URL": sandbox.sfmc_url,
            "TAP_SFMC_DE_TOKEN_STORE_PATH": str(work / "token.json"),
            "TARGET_INSIDER_ONE_API_BASE_URL": sandbox.insider_url,
            "TARGET_INSIDER_ONE_DEAD_LETTER_PATH": str(work / "dead-meltano.jsonl"),
        }
        timed("meltano install", f"{BIN / 'meltano'} install", env=env)
        results["meltano run"] = timed(
            "meltano run", f"{BIN / 'meltano'} run tap-sfmc-de target-insider-one", env=env
        )

    baseline = results["tap | target"]
    print(f"\n{records:,} records per stage")
    print(f"{'stage':<14} {'seconds':>8} {'records/s':>10} {'vs pipe':>8}")
    for label, seconds in results.items():
        print(
            f"{label:<14} {seconds:>8.1f} {records / seconds:>10,.0f} {seconds / baseline:>7.2f}x"
        )


if __name__ == "__main__":
    main()
