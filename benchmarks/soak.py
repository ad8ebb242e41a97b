"""Soak: many scheduled runs under live changes, faults and kills; then prove nothing was lost.

    .venv/bin/python -m benchmarks.soak [--cycles 20] [--rows 20000] [--seed 7]

Each cycle is what an hourly schedule meets on a bad day, compressed:
- rows of the DE change while the tap pages (the sandbox's live scenario: updates, inserts
  and deletes after a random page);
- transient faults on both APIs (429 with and without Retry-After, 5xx, dropped connections);
- every fourth run is killed part-way and rerun with `--force`.
The tap runs with a small cap (pages of 500, 8 pages a run), so the backlog takes many runs.
At the end the faults stop, runs continue until one sends nothing, and every row still in
the DE is checked against "Insider": a row with a deliverable email must be there **in its
latest version** (its ModifiedDate), any other row must be in the dead-letter file.
Exit status 1 if any row is missing or stale. Bounded: at most `cycles + 20` runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from api_sandbox.testing import SandboxProcess

ROOT = Path(__file__).resolve().parent.parent
MELTANO = str(Path(sys.executable).with_name("meltano"))
HTTP_OK = 200
INSIDER_EMAIL = re.compile(r"^[^\s]+@[^\s]+\.[^\s]+$")
FAULTS = (
    {"endpoint": "rowset", "status": 429, "retry_after": 1, "errorcode": 50100},
    {"endpoint": "rowset", "status": 500},
    {"endpoint": "rowset", "action": "drop"},
    {"endpoint": "token", "status": 503},
    {"endpoint": "upsert", "status": 429},
    {"endpoint": "upsert", "status": 502},
    {"endpoint": "upsert", "action": "drop"},
)


def utc_z(value: str) -> str:
    """An ISO timestamp with offset as Insider's `YYYY-MM-DDTHH:MM:SSZ`."""
    parsed = dt.datetime.fromisoformat(value).astimezone(dt.UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


class Soak:
    """One soak: a sandbox, an isolated Meltano state DB, counters."""

    def __init__(self, sandbox: SandboxProcess, work: Path, rng: random.Random) -> None:
        self.sandbox = sandbox
        self.rng = rng
        self.dead_letters = work / "dead-letters.jsonl"
        self.env = {
            **os.environ,
            "MELTANO_ENVIRONMENT": "dev",
            "MELTANO_DATABASE_URI": f"sqlite:///{work / 'meltano.db'}",
            "TAP_SFMC_DE_AUTH_BASE_URL": sandbox.sfmc_url,
            "TAP_SFMC_DE_TOKEN_STORE_PATH": str(work / "token.json"),
            "TAP_SFMC_DE_PAGE_SIZE": "500",
            "TAP_SFMC_DE_MAX_PAGES_PER_RUN": "8",
            "TAP_SFMC_DE_BACKOFF_BASE_SECONDS": "1",
            "TARGET_INSIDER_ONE_API_BASE_URL": sandbox.insider_url,
            "TARGET_INSIDER_ONE_DEAD_LETTER_PATH": str(self.dead_letters),
            "TARGET_INSIDER_ONE_IDENTIFIER_MAPPINGS": json.dumps(
                [{"type": "email", "field": "EmailAddress"}]
            ),
            "TARGET_INSIDER_ONE_BACKOFF_BASE_SECONDS": "1",
        }
        self.runs = 0
        self.kills = 0
        self.failed_runs = 0
        self.faults_fired = 0

    def meltano(self, *args: str) -> int:
        """Run meltano; return its exit code (failures are part of a soak, not fatal)."""
        self.runs += 1
        result = subprocess.run(  # noqa: S603 - fixed argv
            [MELTANO, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            self.failed_runs += 1
        return result.returncode

    def killed_run(self) -> None:
        """Start a run and kill it once Insider has seen a request or after a few seconds."""
        self.runs += 1
        self.kills += 1
        requests_before = len(self.sandbox.requests())
        proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [MELTANO, "run", "--force", "tap-sfmc-de", "target-insider-one"],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and proc.poll() is None:
            if len(self.sandbox.requests()) > requests_before:
                break
            time.sleep(0.1)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def clear_faults(self) -> None:
        """Count what the last faults did, then remove them."""
        self.faults_fired += sum(rule.get("fired", 0) for rule in self.sandbox.faults())
        self.sandbox.clear_faults()

    def cycle(self, number: int) -> None:
        """Arm a live change and some faults, then run (or kill) the pipeline once."""
        self.clear_faults()
        self.sandbox.scenario(
            "Customers",
            after_page=self.rng.randint(1, 4),
            update=self.rng.randint(0, 300),
            insert=self.rng.randint(0, 100),
            delete=self.rng.randint(0, 30),
        )
        for rule in self.rng.sample(FAULTS, k=self.rng.randint(0, 3)):
            self.sandbox.add_faults({**rule, "after": self.rng.randint(0, 5), "times": 1})
        if number % 4 == 3:  # noqa: PLR2004 - every fourth cycle
            self.killed_run()
        else:
            self.meltano("run", "--force", "tap-sfmc-de", "target-insider-one")

    def converge(self, max_runs: int = 20) -> int:
        """Without faults, run until a run sends no user; return the number of runs."""
        self.clear_faults()
        for attempt in range(1, max_runs + 1):
            before = len(self.sandbox.requests())
            time.sleep(2.1)  # a change in the last second before a run is the next run's
            if self.meltano("run", "--force", "tap-sfmc-de", "target-insider-one") != 0:
                continue
            sent = sum(
                r.get("users", 0)
                for r in self.sandbox.requests()[before:]
                if r.get("status") == HTTP_OK
            )
            if sent == 0:
                return attempt
        return max_runs

    def verify(self) -> list[str]:
        """Every current row: in Insider in its latest version, or dead-lettered."""
        profiles = {
            p["identifiers"]["email"].lower(): p
            for p in self.sandbox.profiles()
            if "email" in p["identifiers"]
        }
        dead: set[str] = set()
        if self.dead_letters.exists():
            for line in self.dead_letters.read_text(encoding="utf-8").splitlines():
                dead.add(json.loads(line)["record"]["SubscriberKey"])
        problems = []
        for row in self.sandbox.rows("Customers"):
            key, email = row["SubscriberKey"], (row.get("EmailAddress") or "").strip()
            if not (email and INSIDER_EMAIL.match(email)):
                if key not in dead:
                    problems.append(f"{key}: undeliverable but not dead-lettered")
                continue
            profile = profiles.get(email.lower())
            if profile is None:
                problems.append(f"{key}: missing in Insider")
                continue
            delivered = profile["attributes"].get("custom", {}).get("sfmc_modified_date")
            if delivered != utc_z(row["ModifiedDate"]):
                problems.append(f"{key}: stale in Insider ({delivered} < {row['ModifiedDate']})")
        return problems


def main() -> None:
    """Run the soak and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--filter-mode", default="honoured", choices=("honoured", "ignored", "rejected"),
        help="how the emulated rowset treats $filter (ignored/rejected: the tap's client mode)",
    )  # fmt: skip
    args = parser.parse_args()
    rng = random.Random(args.seed)
    started = time.monotonic()

    subprocess.run([MELTANO, "install"], cwd=ROOT, capture_output=True, check=True)  # noqa: S603
    with (
        SandboxProcess(rows=args.rows, seed=args.seed) as sandbox,
        tempfile.TemporaryDirectory() as tmp,
    ):
        soak = Soak(sandbox, Path(tmp), rng)
        for number in range(args.cycles):
            soak.cycle(number)
            print(
                f"cycle {number + 1}/{args.cycles}: runs={soak.runs} killed={soak.kills} "
                f"failed={soak.failed_runs} profiles={len(sandbox.profiles())}",
                flush=True,
            )
        converge_runs = soak.converge()
        changes = sandbox.changes("Customers")
        problems = soak.verify()
        rows = len(sandbox.rows("Customers"))

    print("\nSoak summary")
    print(f"  runs: {soak.runs} ({soak.kills} killed, {soak.failed_runs} failed)")
    print(f"  runs to converge after the last cycle: {converge_runs}")
    print(
        f"  live changes: {len(changes.get('updated', []))} updated, "
        f"{len(changes.get('inserted', []))} inserted, {len(changes.get('deleted', []))} deleted"
    )
    print(f"  faults fired: {soak.faults_fired}")
    print(f"  rows checked: {rows}; problems: {len(problems)}")
    print(f"  duration: {time.monotonic() - started:.0f}s")
    for problem in problems[:20]:
        print(f"  ! {problem}")
    raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
