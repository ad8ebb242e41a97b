"""Rowset requests and wall time per tap run against a slow SFMC (the sandbox counts).

    .venv/bin/python -m benchmarks.tap_latency [--rows 25000] [--latency 1.5] [--runs 3]
        [--page-concurrency N]

A DE of ``--rows`` rows behind ``--latency`` seconds per rowset request, default settings
($filter honoured, page size 2,500; ``page_concurrency`` the tap's default unless given).
Run 1 reads the DE; later runs change nothing. The request figures come from the
sandbox's ``rowset_requests`` counter, not from the tap's log, so they include every
probe; wall time is the whole ``tap-sfmc-de`` process (discovery included). The last line
is the most rowset requests the sandbox served at once.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from api_sandbox.testing import SandboxProcess

from benchmarks import project

TAP = Path(sys.executable).parent / "tap-sfmc-de"
PAGE_SIZE = 2500


def run_tap(config: Path, state: dict | None, workdir: Path) -> tuple[dict | None, int, float]:
    """One tap run; returns its last STATE, the records emitted and the wall time."""
    argv = [str(TAP), "--config", str(config)]
    if state is not None:
        state_path = workdir / "state.json"
        state_path.write_text(json.dumps(state), encoding="utf-8")
        argv += ["--state", str(state_path)]
    started = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        print(result.stderr[-3000:], file=sys.stderr)
        raise SystemExit("tap run failed")
    records, last = 0, state
    for line in result.stdout.splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            records += 1
        elif message["type"] == "STATE":
            last = message["value"]
    return last, records, elapsed


def main() -> None:
    """Run the tap several times and print one line per run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=25_000)
    parser.add_argument("--latency", type=float, default=1.5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--page-concurrency", type=int, help="default: the tap's default")
    parser.add_argument(
        "--max-pages-per-run",
        type=int,
        help="default: enough for the whole DE in one run, probes included",
    )
    args = parser.parse_args()
    overrides = {"max_pages_per_run": args.max_pages_per_run or project.pages_for(args.rows)}
    if args.page_concurrency is not None:
        overrides["page_concurrency"] = args.page_concurrency
    with SandboxProcess(rows=10) as sandbox, tempfile.TemporaryDirectory() as tmp:
        sandbox.create_de("Bench", size=args.rows, seed=11)
        sandbox.configure(latency={"rowset": args.latency})
        config = Path(tmp) / "config.json"
        tap_config = sandbox.tap_config(data_extension_keys=["Bench"], **overrides)
        config.write_text(json.dumps(tap_config))
        print(
            f"DE of {args.rows:,} rows, {args.latency} s per rowset request, page size "
            f"{PAGE_SIZE}: {math.ceil(args.rows / PAGE_SIZE)} data pages to read it; "
            f"page_concurrency {overrides.get('page_concurrency', 'default')}"
        )
        print(f"{'run':>3}  {'records':>8}  {'rowset requests':>15}  {'wall s':>7}")
        state = None
        for number in range(1, args.runs + 1):
            before = sandbox.rowset_requests()["total"]
            state, records, elapsed = run_tap(config, state, Path(tmp))
            requests = sandbox.rowset_requests()["total"] - before
            print(f"{number:>3}  {records:>8,}  {requests:>15}  {elapsed:>7.1f}")
        print(f"most rowset requests in flight at once: {sandbox.rowset_in_flight_max()}")


if __name__ == "__main__":
    main()
