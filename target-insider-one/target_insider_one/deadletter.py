"""Dead-letter file: one JSON line per record that was not delivered.

Line format::

    {"reason": "rejected_by_insider", "message": "...", "stream": "Customers",
     "record": {...source record...}, "details": {...}, "batch_id": "...",
     "run_id": "...", "at": "2026-11-29T18:00:00Z"}

The file is created on the first dead letter and appended to; it is flushed and fsynced
before a batch is reported settled, so STATE never runs ahead of it. Secrets are never
written: the record is the source record, and the API key is redacted from every line as
a last line of defence.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path


def json_default(value: object) -> Any:
    """JSON fallback for values found in source records.

    Args:
        value: A value ``json`` cannot serialise.

    Returns:
        A serialisable equivalent.
    """
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, set | tuple):
        return list(value)
    return str(value)


class JsonlWriter:
    """Thread-safe, lazily opened JSONL appender."""

    def __init__(self, path: Path, redact: tuple[str, ...] = ()) -> None:
        """Create the writer (the file is opened on first write).

        Args:
            path: File to append to (parent directories are created).
            redact: Strings that must never appear in the file.
        """
        self.path = path
        self._redact = tuple(r for r in redact if r and len(r) >= 6)  # noqa: PLR2004
        self._file: Any = None
        self._lock = threading.Lock()
        self.lines = 0

    def _open(self) -> Any:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        return self._file

    def write_line(self, line: str) -> None:
        """Append one line (a newline is added).

        Args:
            line: A single-line string.
        """
        for secret in self._redact:
            line = line.replace(secret, "***")
        with self._lock:
            self._open().write(line + "\n")
            self.lines += 1

    def flush(self) -> None:
        """Flush and fsync, so a following STATE never runs ahead of the file."""
        with self._lock:
            if self._file is not None:
                self._file.flush()
                os.fsync(self._file.fileno())

    def flush_and_hold(self, timeout: float = -1) -> None:
        """Flush and fsync, then keep the lock so no thread writes again before the exit.

        For an immediate process exit: the file ends with whole lines only.

        Args:
            timeout: Give up (without flushing) when the lock is not free by then; for a
                signal handler whose own thread may hold it.
        """
        if not self._lock.acquire(timeout=timeout):
            return
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush and close."""
        self.flush()
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class DeadLetterWriter(JsonlWriter):
    """Writes dead letters."""

    def __init__(self, path: Path, run_id: str, redact: tuple[str, ...] = ()) -> None:
        """Create the writer.

        Args:
            path: Dead-letter file.
            run_id: Identifies this run in every line.
            redact: Strings that must never appear in the file.
        """
        super().__init__(path, redact)
        self.run_id = run_id

    def write(
        self,
        *,
        reason: str,
        message: str,
        stream: str,
        record: dict[str, Any],
        details: dict[str, Any] | None = None,
        batch_id: str | None = None,
    ) -> None:
        """Dead-letter one record.

        Args:
            reason: Reason code (see README).
            message: Human-readable explanation.
            stream: Singer stream name.
            record: The source record as received (after stream maps).
            details: Extra structured information (issues, Insider error keys, status).
            batch_id: SDK batch id.
        """
        entry = {
            "reason": reason,
            "message": message,
            "stream": stream,
            "record": record,
            "details": details or {},
            "batch_id": batch_id,
            "run_id": self.run_id,
            "at": dt.datetime.now(tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        self.write_line(
            json.dumps(entry, default=json_default, ensure_ascii=False, separators=(",", ":"))
        )
