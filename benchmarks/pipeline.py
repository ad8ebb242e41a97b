"""Throughput of each stage and of the whole pipeline, side by side in one run.

    .venv/bin/python -m benchmarks.pipeline [--rows 125000]

A quick subset of ``make bench`` (benchmarks/bench.py), without bounds, anchors, latency
or the big-DE run. Stages, all against one sandbox over HTTP on 127.0.0.1 (the machine is
shared and noisy, so compare the ratios in one run rather than absolute figures across
runs):
1. tap alone: `tap-sfmc-de` to a file (the Singer messages are kept for stage 2);
2. target alone: that file into `target-insider-one` (project mapping, phones on);
3. pipe: `tap-sfmc-de | target-insider-one`;
4. Meltano: `meltano run tap-sfmc-de target-insider-one` (plugin venvs, state in a temp DB).
``max_pages_per_run`` is raised so that one run reads the whole DE.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from api_sandbox.testing import SandboxProcess

from benchmarks import project, singer_file, stages
from benchmarks.stages import Plugins, progress


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
        max_pages = project.pages_for(args.rows)
        plugins = Plugins.write(
            work,
            sandbox.tap_config(
                token_store_path=str(work / "token.json"), max_pages_per_run=max_pages
            ),
            sandbox.target_config(
                dead_letter_path=str(work / "dead.jsonl"), **project.project_mapping()
            ),
        )
        singer = work / "singer.jsonl"
        progress(f"sandbox with {args.rows:,} rows; stages:")
        results = {"tap alone": plugins.tap_to_file(singer).seconds}
        records = singer_file.count_records(singer)
        results["target alone"] = plugins.target_from_file(singer, phones=True).seconds
        results["tap | target"] = plugins.pipe().seconds
        env = project.meltano_env((sandbox.sfmc_url, sandbox.insider_url), work, max_pages)
        stages.meltano_install(env, work)
        results["meltano run"] = stages.meltano_run(env, work).seconds

    baseline = results["tap | target"]
    print(f"\n{records:,} records per stage")
    print(f"{'stage':<14} {'seconds':>8} {'records/s':>10} {'vs pipe':>8}")
    for label, seconds in results.items():
        print(
            f"{label:<14} {seconds:>8.1f} {records / seconds:>10,.0f} {seconds / baseline:>7.2f}x"
        )


if __name__ == "__main__":
    main()
