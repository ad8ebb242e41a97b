"""Benchmark: push N records through the real target CLI into the sandbox.

Usage::

    .venv/bin/python -m benchmarks.target [--records 50000] [--concurrency 4]

Prints records/s and request counts with and without ``validate_records``, side by side.
The mapping is the Meltano project's (``meltano.yml``), so the benchmark measures what a
``meltano run`` sends. Not a test: it needs the sandbox package (``api_sandbox``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from api_sandbox.testing import SandboxProcess

from benchmarks.project import project_mapping

TARGET_CLI = Path(sys.executable).parent / "target-insider-one"
HTTP_OK = 200

SCHEMA = {
    "type": "object",
    "properties": {
        "SubscriberKey": {"type": ["string"]},
        "EmailAddress": {"type": ["string", "null"]},
        "Phone": {"type": ["string", "null"]},
        "FirstName": {"type": ["string", "null"]},
        "LastName": {"type": ["string", "null"]},
        "City": {"type": ["string", "null"]},
        "Country": {"type": ["string", "null"]},
        "BirthDate": {"type": ["string", "null"], "format": "date-time"},
        "LoyaltyPoints": {"type": ["integer", "null"]},
        "LifetimeValue": {"type": ["number", "null"]},
        "EmailOptIn": {"type": ["boolean", "null"]},
        "ModifiedDate": {"type": ["string", "null"], "format": "date-time"},
    },
}


def write_input(path: Path, records: int) -> None:
    """Write a Singer stream of ``records`` customers.

    Args:
        path: Output file.
        records: Number of RECORD messages.
    """
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps({"type": "SCHEMA", "stream": "Customers", "schema": SCHEMA,
                              "key_properties": ["SubscriberKey"]}) + "\n")  # fmt: skip
        for i in range(records):
            record = {
                "SubscriberKey": f"CUST-{i:07d}",
                "EmailAddress": f"customer{i}@example.com",
                "Phone": f"+44 7911 {i % 1_000_000:06d}",
                "FirstName": f"First{i}",
                "LastName": "Lovelace",
                "City": "London",
                "Country": "GB",
                "BirthDate": "1990-12-10T00:00:00-06:00",
                "LoyaltyPoints": i % 5000,
                "LifetimeValue": round(i * 1.37, 2),
                "EmailOptIn": i % 2 == 0,
                "ModifiedDate": "2026-01-01T00:00:00Z",
            }
            out.write(json.dumps({"type": "RECORD", "stream": "Customers", "record": record}))
            out.write("\n")
        out.write(json.dumps({"type": "STATE", "value": {"bookmarks": {"Customers": {}}}}) + "\n")


def run_once(
    sandbox: SandboxProcess, input_path: Path, workdir: Path, **options: Any
) -> dict[str, Any]:
    """Run the CLI once and measure it.

    Args:
        sandbox: Running sandbox (reset before the run).
        input_path: Singer input file.
        workdir: Scratch directory.
        **options: Extra target settings.

    Returns:
        Measurements.
    """
    sandbox.reset()
    config = sandbox.target_config(
        **project_mapping(), dead_letter_path=str(workdir / "dead.jsonl"), **options
    )
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    started = time.perf_counter()
    with input_path.open("rb") as stdin:
        proc = subprocess.run(  # noqa: S603 - our own CLI
            [str(TARGET_CLI), "--config", str(config_path)],
            stdin=stdin, capture_output=True, check=False, cwd=workdir,
        )  # fmt: skip
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr.decode(errors="replace")[-3000:])
        raise SystemExit(proc.returncode)
    log = sandbox.requests()
    return {
        "seconds": elapsed,
        "requests": len(log),
        "users": sum(r.get("users") or 0 for r in log if r.get("status") == HTTP_OK),
        "profiles": len(sandbox.profiles()),
    }


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-target-") as tmp,
        SandboxProcess(rows=10) as sandbox,
    ):
        workdir = Path(tmp)
        input_path = workdir / "input.jsonl"
        write_input(input_path, args.records)
        results = {
            flag: run_once(
                sandbox,
                input_path,
                workdir,
                validate_records=flag,
                max_concurrent_requests=args.concurrency,
            )
            for flag in (True, False)
        }
    print(f"target-insider-one benchmark: {args.records:,} records, "
          f"max_concurrent_requests={args.concurrency}, sandbox on loopback")  # fmt: skip
    print(f"{'':24}{'validate_records=true':>24}{'validate_records=false':>24}")
    rows = [
        ("wall time (s)", lambda r: f"{r['seconds']:.2f}"),
        ("records/s", lambda r: f"{args.records / r['seconds']:,.0f}"),
        ("requests", lambda r: str(r["requests"])),
        ("users accepted", lambda r: f"{r['users']:,}"),
        ("profiles stored", lambda r: f"{r['profiles']:,}"),
    ]
    for label, fmt in rows:
        print(f"{label:24}{fmt(results[True]):>24}{fmt(results[False]):>24}")


if __name__ == "__main__":
    main()
