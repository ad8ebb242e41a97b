"""Run the real ``target-insider-one`` CLI as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
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

    def stdout_closed(self, timeout: float = 30) -> bool:
        """Whether its stdout reaches end of file within ``timeout`` (all its holders exited)."""
        self._readers[0].join(timeout=timeout)
        return not self._readers[0].is_alive()

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


class RunningCli:
    """The CLI as a background process whose stdout lines are collected as they come."""

    def __init__(
        self,
        config: dict[str, Any],
        messages: list[dict],
        tmp_path: Path,
        *,
        more_to_come: bool = False,
    ) -> None:
        config = {"dead_letter_path": str(tmp_path / "dead.jsonl"), **config}
        self.dead_letter_path = Path(config["dead_letter_path"])
        config_path = tmp_path / "target-config.json"
        config_path.write_text(json.dumps(config))
        self.proc = subprocess.Popen(
            [str(TARGET_CLI), "--config", str(config_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=tmp_path,
        )  # fmt: skip
        self.lines: list[str] = []
        self._stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self._stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.send(messages, last=not more_to_come)

    def send(self, messages: list[dict], *, last: bool = True) -> None:
        """Write messages to its stdin; the ``last`` ones close it (end of input)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
            self.proc.stdin.flush()
            if last:
                self.proc.stdin.close()
        except BrokenPipeError:  # it already exited (asserted by the caller)
            pass

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def wait_until(self, condition: Callable[[], bool], timeout: float = 30) -> bool:
        """Poll ``condition`` until it holds or the process exits (then: whether it holds).

        Raises:
            AssertionError: At the deadline, with the process still running.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            if self.proc.poll() is not None:
                return condition()
            time.sleep(0.01)
        raise AssertionError("timed out waiting for the target")

    def finish(self, timeout: float = 30) -> int:
        """Wait for the exit (at most ``timeout`` seconds) and for the output to be read."""
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    def stdout_closed(self, timeout: float = 30) -> bool:
        """Whether its stdout reaches end of file within ``timeout`` (all its holders exited)."""
        self._readers[0].join(timeout=timeout)
        return not self._readers[0].is_alive()

    @property
    def states(self) -> list[dict]:
        return [json.loads(line) for line in list(self.lines) if line.strip()]

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def dead_letters(self) -> list[dict]:
        if not self.dead_letter_path.exists():
            return []
        return [json.loads(line) for line in self.dead_letter_path.read_text().splitlines()]
