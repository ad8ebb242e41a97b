"""Run the real ``target-insider-one`` CLI as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TARGET_CLI = Path(sys.executable).parent / "target-insider-one"


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    dead_letter_path: Path

    @property
    def states(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def dead_letters(self) -> list[dict]:
        if not self.dead_letter_path.exists():
            return []
        return [json.loads(line) for line in self.dead_letter_path.read_text().splitlines()]


def run_cli(
    config: dict[str, Any],
    messages: list[dict] | str | bytes,
    tmp_path: Path,
    *,
    timeout: float = 120,
) -> CliResult:
    """Run the CLI; ``messages`` as dicts, text, or raw bytes (e.g. invalid UTF-8)."""
    config = {"dead_letter_path": str(tmp_path / "dead.jsonl"), **config}
    config_path = tmp_path / "target-config.json"
    config_path.write_text(json.dumps(config))
    if isinstance(messages, list):
        messages = "".join(json.dumps(m) + "\n" for m in messages)
    proc = subprocess.run(
        [str(TARGET_CLI), "--config", str(config_path)],
        input=messages.encode() if isinstance(messages, str) else messages,
        capture_output=True,
        timeout=timeout,
        check=False,
        cwd=tmp_path,
    )
    return CliResult(
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
        Path(config["dead_letter_path"]),
    )
