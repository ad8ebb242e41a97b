"""`make demo`: the whole product against the local sandbox, in about a minute.

1. installs the Meltano plugins (offline from the repository's definitions),
2. starts the sandbox with a demo Data Extension ``Customers``,
3. runs the job (``meltano run --state-id-suffix demo sfmc-to-insider``) and shows what
   arrived in "Insider",
4. changes a few rows in "SFMC" and runs again: only the changes travel,
5. shows the bookmark Meltano stored.

The demo keeps its own state id (suffix ``demo``) and clears it first, so it can be run
again and again without touching the ``dev`` pipeline's state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from api_sandbox.testing import SandboxProcess

ROOT = Path(__file__).resolve().parent.parent
MELTANO = str(Path(sys.executable).with_name("meltano"))
STATE_SUFFIX = "demo"
STATE_ID = f"dev:tap-sfmc-de-to-target-insider-one:{STATE_SUFFIX}"
# What each run executes, printed as is: `meltano state get STATE_ID` finds its bookmark.
RUN = ("run", "--state-id-suffix", STATE_SUFFIX, "sfmc-to-insider")
DEMO_ROWS = 5000


def say(text: str) -> None:
    """Print a step header."""
    print(f"\n==> {text}", flush=True)


def meltano(*args: str, env: dict[str, str], quiet: bool = True) -> str:
    """Run a meltano command in the project; stop the demo with its log if it fails."""
    result = subprocess.run(  # noqa: S603 - fixed argv
        [MELTANO, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-6000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"demo: `meltano {' '.join(args)}` failed (exit {result.returncode})")
    if not quiet:
        print(result.stdout.strip())
    return result.stdout + result.stderr


def print_target_summary(meltano_log: str) -> None:
    """Echo the target's end-of-run summary block from the Meltano log."""
    lines = meltano_log.splitlines()
    start = next((i for i, line in enumerate(lines) if "Insider run summary" in line), None)
    if start is None:
        return
    for line in lines[start : start + 12]:
        if "target-insider-one" not in line or "METRIC" in line:
            break
        print("  " + line.split("target-insider-one", 1)[1].strip())


def dead_letters(directory: Path) -> list[dict[str, Any]]:
    """Every dead-letter line written so far."""
    lines: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.jsonl")):
        lines += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return lines


def show_profiles(sandbox: SandboxProcess, rows: int) -> None:
    """Counts and a few profiles from the Insider emulator."""
    profiles = sandbox.profiles()
    print(f"DE rows in SFMC: {rows}   profiles in Insider: {len(profiles)}")
    print(
        "  (fewer profiles than users upserted: rows that share an email or phone number merge"
        " into one profile, as Insider's identity resolution does)"
    )
    for profile in profiles[:3]:
        print("  " + json.dumps(profile, ensure_ascii=False)[:300])


def show_dead_letters(directory: Path) -> None:
    """Dead letters grouped by reason, with one example each."""
    letters = dead_letters(directory)
    print(f"dead-lettered records: {len(letters)} (file: {directory.relative_to(ROOT)}/)")
    by_reason = Counter(letter["reason"] for letter in letters)
    for reason, count in by_reason.most_common():
        example = next(letter for letter in letters if letter["reason"] == reason)
        print(f"  {count:5d}  {reason}: e.g. {example.get('message', '')[:120]}")


def main() -> None:
    """Run the demo."""
    say("Installing the Meltano plugins (tap-sfmc-de, target-insider-one)")
    env = {**os.environ, "MELTANO_ENVIRONMENT": "dev"}
    meltano("install", env=env)

    with SandboxProcess(rows=DEMO_ROWS) as sandbox, tempfile.TemporaryDirectory() as tmp:
        say(f"Sandbox up: SFMC at {sandbox.sfmc_url}, Insider at {sandbox.insider_url}")
        dead_dir = ROOT / "output" / "demo-dead-letters"
        for old in dead_dir.glob("*.jsonl"):
            old.unlink()
        env.update(
            {
                "TAP_SFMC_DE_AUTH_BASE_URL": sandbox.sfmc_url,
                "TAP_SFMC_DE_TOKEN_STORE_PATH": str(Path(tmp) / "token.json"),
                "TARGET_INSIDER_ONE_API_BASE_URL": sandbox.insider_url,
                "TARGET_INSIDER_ONE_DEAD_LETTER_PATH": str(dead_dir / "dead-letters.jsonl"),
            }
        )
        meltano("state", "clear", "--force", STATE_ID, env=env)

        say(f"Run 1: meltano {' '.join(RUN)}")
        log = meltano(*RUN, env=env)
        print_target_summary(log)
        show_profiles(sandbox, DEMO_ROWS)
        show_dead_letters(dead_dir)
        first_requests = len(sandbox.requests())

        say("Changing rows in SFMC: 20 updated, 5 inserted")
        change = sandbox.mutate("Customers", update=20, insert=5)
        changed = {*change.get("updated", []), *change.get("inserted", [])}
        print(f"changed primary keys: {len(changed)}")
        # A run reads changes up to a second before the server's clock at its start; a change
        # made within that second is picked up by the following run instead.
        time.sleep(2.1)

        say(f"Run 2: the same command picks up only the changes: meltano {' '.join(RUN)}")
        letters_before = len(dead_letters(dead_dir))
        log = meltano(*RUN, env=env)
        print_target_summary(log)
        second = sandbox.requests()[first_requests:]
        sent = sum(request.get("users", 0) for request in second)
        new_letters = len(dead_letters(dead_dir)) - letters_before
        print(
            f"changed rows: {len(changed)} -> users sent: {sent} in {len(second)} request(s), "
            f"dead-lettered: {new_letters}"
        )
        show_profiles(sandbox, DEMO_ROWS + 5)

        say(f"Bookmark stored by Meltano: meltano state get {STATE_ID}")
        meltano("state", "get", STATE_ID, env=env, quiet=False)

    say("Done. Next: `make test`, then README.md → Going live.")


if __name__ == "__main__":
    main()
