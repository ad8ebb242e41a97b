r"""Dead-letter file: one JSON line per record that was not delivered.

Line format::

    {"reason": "rejected_by_insider", "message": "...", "stream": "Customers",
     "record": {...source record...}, "details": {...}, "batch_id": "...",
     "run_id": "...", "at": "2026-11-29T18:00:00Z"}

The file is created on the first dead letter (mode 0600: it holds whole records) and
appended to; it is flushed and fsynced before a batch is reported settled, so STATE never
runs ahead of it. Secrets are never written: the record is the source record, and the API
key is redacted from every line as a last line of defence.

Every line is valid UTF-8 JSON whatever the record holds: lone surrogates (and U+2028 /
U+2029) are written as ``\\uXXXX`` escapes, NaN and infinities as strings, values JSON
cannot hold (integers beyond Python's 4,300-digit limit, nesting deeper than
``MAX_DEPTH``) as a short description.

A dead letter whose (stream, reason, record) is already in the file is not written again
(a rerun of the same input adds nothing): the digests of the last ``REMEMBERED_LETTERS``
lines (read from at most the last ``TAIL_BYTES`` of the file) and of this run's lines are
kept, so memory stays bounded whatever the file's size.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
import logging
import math
import os
import threading
import time
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import msgspec
from typing_extensions import override

from target_insider_one.text import safe_json_line

if TYPE_CHECKING:
    from pathlib import Path

LOGGER = logging.getLogger("target_insider_one.deadletter")
FILE_MODE = 0o600
MAX_DEPTH = 100
REMEMBERED_LETTERS = 100_000  # about 10 MB of digests
TAIL_BYTES = 64 * 1024 * 1024
_MAX_INT_BITS = 14_000  # about 4,200 decimal digits: below int's str() limit (4,300)
_MAX_DECIMAL_EXPONENT = 4_000
_PLAIN_INT_BITS = 63  # signed 64-bit: what msgspec writes and reads back as a plain int
_ENCODER = msgspec.json.Encoder()
_SORTED_ENCODER = msgspec.json.Encoder(order="sorted")
_NEL_BYTES = "\x85".encode()
_SEPARATOR_LEAD = "\u2028".encode()[:2]  # U+2029's too


def json_default(value: object) -> Any:  # noqa: PLR0911 - one case per type
    """JSON fallback for values found in source records.

    Args:
        value: A value ``json`` cannot serialise.

    Returns:
        A serialisable equivalent.
    """
    if isinstance(value, Decimal):
        if not value.is_finite() or abs(value.adjusted()) > _MAX_DECIMAL_EXPONENT:
            return str(value)  # exact, and never a huge int() or an infinite float
        if value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, set | tuple):
        return list(value)
    return str(value)


def _jsonable(value: object, depth: int = 0) -> Any:  # noqa: PLR0911 - one case per type
    """A copy of ``value`` that ``json.dumps(allow_nan=False)`` always accepts.

    Only used when the fast path failed, so it may be slow.
    """
    if depth > MAX_DEPTH:
        return f"<nested deeper than {MAX_DEPTH} levels>"
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        bits = value.bit_length()
        return value if bits <= _MAX_INT_BITS else f"<integer of {bits} bits>"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v, depth + 1) for v in value]
    return _jsonable(json_default(value), depth + 1)


def encode_line(entry: dict[str, Any]) -> str:
    """Encode one object as a JSONL line that any UTF-8 JSON reader can read.

    Args:
        entry: The object.

    Returns:
        Compact JSON, without a newline.
    """
    try:
        text = json.dumps(
            entry,
            default=json_default,
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
        )
    except (ValueError, TypeError, RecursionError):
        text = json.dumps(_jsonable(entry), ensure_ascii=False, separators=(",", ":"))
    return safe_json_line(text)


def _is_plain(value: object, depth: int = 0) -> bool:  # noqa: PLR0911 - one case per type
    """Whether msgspec writes ``value`` exactly as ``json.dumps`` would, and reads it back.

    JSON's own types with str keys, 64-bit integers and finite floats whose ``repr`` has no
    exponent (msgspec writes ``1e16``, json ``1e+16``); anything else takes the reference.
    Strings, booleans and None inside a container are accepted without a call (most values).
    """
    kind = type(value)
    if kind is str or kind is bool or value is None or isinstance(value, StrEnum):
        return True  # a StrEnum (a reason) is written as its text by both
    if kind is int:
        return value.bit_length() <= _PLAIN_INT_BITS  # type: ignore[attr-defined]
    if kind is float:
        return math.isfinite(value) and "e" not in repr(value)  # type: ignore[arg-type]
    if depth >= MAX_DEPTH:
        return False
    if kind is dict:
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str:
                return False
            if not (type(item) is str or item is None or _is_plain(item, depth + 1)):
                return False
        return True
    if kind is list:
        return all(
            type(item) is str or _is_plain(item, depth + 1)
            for item in value  # type: ignore[attr-defined]
        )
    return False


def plain_entry(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The entry as :func:`encode_line` writes it, if msgspec can write it the same way.

    A record's top-level ``Decimal`` values (what the reader makes of JSON numbers with a
    fraction) are replaced by what :func:`json_default` gives ``json.dumps``; the result
    is the value a reader of the line gets back, so its digest is the line's.

    Args:
        entry: The dead letter (its top-level values other than record and details are
            str or None).

    Returns:
        The entry with plain values, or None when it needs the reference encoder.
    """
    record = entry["record"]
    if type(record) is dict:
        for value in record.values():
            if type(value) is Decimal:
                record = {
                    k: json_default(v) if type(v) is Decimal else v for k, v in record.items()
                }
                entry = {**entry, "record": record}
                break
    if not (_is_plain(record) and _is_plain(entry["details"])):
        return None
    return entry


def fast_line(entry: dict[str, Any]) -> str | None:
    """:func:`encode_line` in one msgspec pass, for an entry of plain values.

    Args:
        entry: The dead letter.

    Returns:
        The same line as :func:`encode_line`, or None when the entry needs the reference
        (a value that is not plain, a lone surrogate msgspec refuses).
    """
    plain = plain_entry(entry)
    return None if plain is None else _encode_plain(plain)


def _encode_plain(plain: dict[str, Any]) -> str | None:
    try:
        data = _ENCODER.encode(plain)
    except (TypeError, ValueError, OverflowError):  # UnicodeEncodeError: a lone surrogate
        return None
    # msgspec writes no lone surrogate; a line break's UTF-8 form starts with one of these.
    if _NEL_BYTES in data or _SEPARATOR_LEAD in data:
        return safe_json_line(data.decode())
    return data.decode()


def letter_digest(entry: dict[str, Any]) -> bytes:
    """What makes two dead letters the same: stream, reason and record.

    The key is the canonical (sorted) JSON of the three, so equal values give equal digests
    whichever side computes them (a line read back, or a plain entry about to be written).

    Args:
        entry: A dead letter as read back from its line.

    Returns:
        A 16-byte digest.
    """
    key_of = [entry.get("stream"), entry.get("reason"), entry.get("record")]
    try:
        key = _SORTED_ENCODER.encode(key_of)
    except (TypeError, ValueError, OverflowError):  # e.g. a lone surrogate read back
        key = json.dumps(key_of, sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode()
    return hashlib.blake2b(key, digest_size=16).digest()


def open_private(path: Path) -> Any:
    """Open a file for appending, readable by its owner only.

    New files are created 0600 whatever the umask; an existing file is narrowed to 0600
    too, because what is appended now holds whole records.

    Args:
        path: The file (parent directories are created).

    Returns:
        A text file object (UTF-8).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except OSError as exc:  # e.g. someone else's file on a shared volume: still usable
        LOGGER.warning("Could not restrict %s to mode 0600: %s", path, exc.strerror)
    return os.fdopen(fd, "a", encoding="utf-8")


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
            self._file = open_private(self.path)
        return self._file

    def redacted(self, line: str) -> str:
        """The line with every secret replaced by ``***``.

        Args:
            line: A line.

        Returns:
            The redacted line.
        """
        for secret in self._redact:
            line = line.replace(secret, "***")
        return line

    def _holds_secret(self, line: str) -> bool:
        return any(secret in line for secret in self._redact)

    def write_line(self, line: str) -> None:
        """Append one line (a newline is added).

        Args:
            line: A single-line string.
        """
        line = self.redacted(line)
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
    """Writes dead letters, each (stream, reason, record) once per file."""

    @override
    def __init__(self, path: Path, run_id: str, redact: tuple[str, ...] = ()) -> None:
        """Create the writer.

        Args:
            path: Dead-letter file.
            run_id: Identifies this run in every line.
            redact: Strings that must never appear in the file.
        """
        super().__init__(path, redact)
        self.run_id = run_id
        self.duplicates = 0
        self._seen: set[bytes] | None = None
        self._order: collections.deque[bytes] = collections.deque()
        self._at_second = -1
        self._at = ""

    def _now(self) -> str:
        """The UTC time to the second, formatted once per second (not once per letter)."""
        second = int(time.time())
        if second != self._at_second:
            self._at_second = second
            self._at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        return self._at

    def _remember(self, digest: bytes) -> None:
        assert self._seen is not None  # noqa: S101 - loaded first by the caller
        self._seen.add(digest)
        self._order.append(digest)
        if len(self._order) > REMEMBERED_LETTERS:
            self._seen.discard(self._order.popleft())

    def _load_seen(self) -> None:
        """Remember the dead letters already at the end of the file."""
        self._seen = set()
        try:
            with self.path.open("rb") as existing:
                size = existing.seek(0, os.SEEK_END)
                existing.seek(max(0, size - TAIL_BYTES))
                if size > TAIL_BYTES:
                    existing.readline()  # a partial line
                for raw in existing:
                    try:
                        entry = json.loads(raw)
                    except ValueError:
                        continue  # a torn last line or a foreign line: nothing to dedupe
                    if isinstance(entry, dict):
                        self._remember(letter_digest(entry))
        except FileNotFoundError:
            return

    def write(
        self,
        *,
        reason: str,
        message: str,
        stream: str,
        record: dict[str, Any],
        details: dict[str, Any] | None = None,
        batch_id: str | None = None,
    ) -> bool:
        """Dead-letter one record, unless the file already holds it for the same reason.

        Args:
            reason: Reason code (see README).
            message: Human-readable explanation.
            stream: Singer stream name.
            record: The source record as received (after stream maps).
            details: Extra structured information (issues, Insider error keys, status).
            batch_id: SDK batch id.

        Returns:
            Whether a line was written (False for a duplicate).
        """
        entry = {
            "reason": reason,
            "message": message,
            "stream": stream,
            "record": record,
            "details": details or {},
            "batch_id": batch_id,
            "run_id": self.run_id,
            "at": self._now(),
        }
        plain = plain_entry(entry)
        line = None if plain is None else _encode_plain(plain)
        if line is not None and not self._holds_secret(line):
            digest = letter_digest(plain)  # type: ignore[arg-type] # read back exactly as is
        else:
            line = self.redacted(encode_line(entry))
            digest = letter_digest(json.loads(line))  # the record exactly as a reader sees it
        with self._lock:
            if self._seen is None:
                self._load_seen()
            if digest in self._seen:  # type: ignore[operator]
                self.duplicates += 1
                return False
            self._remember(digest)
            self._open().write(line + "\n")
            self.lines += 1
        return True

    @override
    def close(self) -> None:
        """Flush and close; say how many dead letters were already in the file."""
        super().close()
        if self.duplicates:
            LOGGER.info(
                "%d dead letters were already in %s (same stream, reason and record) and "
                "were not written again",
                self.duplicates,
                self.path,
            )
