"""Which records are settled, which STATE is safe to emit, and how the run ends.

A record is *settled* when Insider stored it or it was dead-lettered (rejected, for its own
reason). A record whose request was *not delivered* (429, 5xx, timeouts, connection or
DNS errors after the retries; a reply without Insider's counts) is never settled in this
run: no STATE received after it may be emitted, so the next run re-sends it from the last
safe STATE (upserts are idempotent).

Pure bookkeeping, no I/O: the sink reports outcomes, the target asks for the safe STATE.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from target_insider_one.client import UpsertResponse

_ERROR_KEY = re.compile(r"^users\.(\d+)(?:\.|$)")


class Undelivered(StrEnum):
    """Why a record was not delivered (never a dead letter: the next run re-sends it)."""

    RATE_LIMITED = "rate_limited"  # 429 or 403 "Request Limit Exceeded", after retries
    SERVER_ERROR = "server_error"  # 5xx after retries
    TIMEOUT = "timeout"  # no answer within request_timeout, after retries
    CONNECTION_ERROR = "connection_error"  # refused, reset, DNS, broken body, after retries
    CANNOT_SEND = "cannot_send"  # the request could not be sent at all (e.g. invalid URL)
    UNCONFIRMED = "unconfirmed"  # a 2xx without Insider's counts: nobody knows what stored
    RUN_STOPPED = "run_stopped"  # the run stopped before they were delivered


class DeadLetterReason(StrEnum):
    """Why a record was dead-lettered (rejected for its own reason; STATE may pass it)."""

    NO_IDENTIFIER = "no_identifier"  # no identifier field has a value
    NO_VALID_IDENTIFIER = "no_valid_identifier"  # every identifier value is invalid
    INVALID_IDENTIFIER = "invalid_identifier"  # invalid_identifier_policy: skip_record
    INVALID_ATTRIBUTE = "invalid_attribute"  # invalid_attribute_policy: skip_record
    NO_ATTRIBUTES = "no_attributes"  # no attribute has a value
    SCHEMA_VALIDATION_FAILED = "schema_validation_failed"  # validate_records found it invalid
    UNSERIALIZABLE = "unserializable"  # the user cannot be encoded as UTF-8 JSON
    USER_TOO_LARGE = "user_too_large"  # one user is larger than max_request_bytes
    REQUEST_TOO_LARGE = "request_too_large"  # Insider refused a one-user request as too large
    BAD_REQUEST = "bad_request"  # Insider refused the request's body (400/422)
    REJECTED_BY_INSIDER = "rejected_by_insider"  # Insider named this user in its failures


class RunStatus(StrEnum):
    """How a run ended, in the summary and the metrics' tags."""

    SUCCEEDED = "succeeded"
    INCOMPLETE = "incomplete"  # records not delivered: exit 3
    TOO_MANY_DEAD_LETTERS = "too_many_dead_letters"  # the dead-letter alert: exit 4
    FAILED = "failed"  # stopped: exit 1 or 3


class ExitCode(IntEnum):
    """How the target exits (documented in the README)."""

    OK = 0
    STOPPED = 1  # credentials, wrong endpoint, fast_fail on a rejected request, bad input
    UNDELIVERED = 3  # some records were not delivered: rerun from the last STATE
    TOO_MANY_DEAD_LETTERS = 4  # max_dead_letters / max_dead_letter_percent exceeded


class Ledger:
    """Tracks records waiting for delivery and the STATE messages received between them.

    Records are numbered in the order they arrive (``open``); a STATE message is safe once
    every record numbered before it is settled and none of them was undelivered. Thread
    safe: sinks settle from drain threads while the main thread reads input.
    """

    def __init__(self) -> None:
        """Start empty."""
        self._lock = threading.Lock()
        self._next = 0
        self._open: set[int] = set()
        self._low = 0  # every record numbered below this is settled or undelivered
        self._blocked_at: int | None = None  # the first undelivered record
        self._states: deque[tuple[int, Any]] = deque()
        self._safe: Any = None
        self._emitted: Any = None
        # Set by whatever can make a STATE safe (settle, undeliver, note_state): the
        # per-record question is answered without the lock until one of them happened.
        self._changed = False

    def open(self) -> int:
        """Note a record that waits for delivery.

        Returns:
            Its number (pass it to ``settle`` or ``undeliver``).
        """
        with self._lock:
            number = self._next
            self._next += 1
            self._open.add(number)
            return number

    def settle(self, numbers: Iterable[int]) -> None:
        """Records stored by Insider or dead-lettered.

        Args:
            numbers: Their numbers.
        """
        with self._lock:
            self._open.difference_update(numbers)
            self._changed = True

    def undeliver(self, numbers: Iterable[int]) -> None:
        """Records whose request was not delivered: STATE stops before the first of them.

        Args:
            numbers: Their numbers.
        """
        numbers = list(numbers)
        if not numbers:
            return
        with self._lock:
            self._open.difference_update(numbers)
            self._changed = True
            first = min(numbers)
            self._blocked_at = first if self._blocked_at is None else min(first, self._blocked_at)

    def note_state(self, state: Any) -> None:
        """A STATE message arrived after every record opened so far.

        Args:
            state: Its value.
        """
        with self._lock:
            self._states.append((self._next, state))
            self._changed = True

    @property
    def blocked(self) -> bool:
        """Whether a record was undelivered (no later STATE will ever be safe)."""
        with self._lock:
            return self._blocked_at is not None

    def take_safe_state(self) -> Any:
        """The latest STATE that is safe and was not taken before.

        The target asks after every record, and almost always nothing is new: when nothing
        was settled, undelivered or noted since the last answer, it is None without the
        lock (a flag set under the lock and read without it: a delivery thread's settling
        seen one record late only delays the STATE to the next record).

        Returns:
            The STATE value, or None when nothing new is safe.
        """
        if not self._changed:
            return None
        return self._take_safe_state_locked()

    def _take_safe_state_locked(self) -> Any:
        """:meth:`take_safe_state` without the shortcut (the reference for its test)."""
        with self._lock:
            self._changed = False
            while self._low < self._next and self._low not in self._open:
                self._low += 1
            horizon = self._low if self._blocked_at is None else min(self._low, self._blocked_at)
            while self._states and self._states[0][0] <= horizon:
                self._safe = self._states.popleft()[1]
            if self._safe is None or self._safe == self._emitted:
                return None
            self._emitted = self._safe
            return self._safe


@dataclass(frozen=True)
class ResponseSettlement:
    """What one 2xx answer says about each user of its request (positions in the request)."""

    rejected: dict[int, dict[str, list[str]]]  # position -> Insider's error key -> messages
    upserted: list[int]
    unconfirmed: list[int]  # Insider's counts do not add up: whether stored is unknown
    unattributed: list[str]  # error keys that name no user of the request


def settle_response(response: UpsertResponse, total: int) -> ResponseSettlement:
    """Attribute Insider's per-user failures; decide whether the others were stored.

    Insider names a failed user by its index (``users.3.identifiers.email``). When its
    counts do not add up to the users it names, whether the others were stored is unknown:
    they are unconfirmed (not delivered; the next run re-sends them, upserts are
    idempotent) rather than counted as upserted.

    Args:
        response: The parsed 2xx answer.
        total: Users in the request.

    Returns:
        The settlement.
    """
    rejected: dict[int, dict[str, list[str]]] = {}
    unattributed: list[str] = []
    for key, messages in response.errors.items():
        match = _ERROR_KEY.match(key)
        if match and int(match.group(1)) < total:
            rejected.setdefault(int(match.group(1)), {})[key] = messages
        else:
            unattributed.append(key)
    others = [p for p in range(total) if p not in rejected]
    successful = response.successful or 0  # Insider omits successful.count when nobody did
    if others and (response.fail_count > len(rejected) or successful < len(others)):
        return ResponseSettlement(rejected, [], others, unattributed)
    return ResponseSettlement(rejected, others, [], unattributed)


def run_exit_code(
    *,
    undelivered: int,
    dead_lettered: int,
    received: int,
    max_dead_letters: int | None,
    max_dead_letter_percent: float | None,
) -> ExitCode:
    """How a run that read all its input ends.

    Args:
        undelivered: Records not delivered.
        dead_lettered: Records dead-lettered.
        received: Records received.
        max_dead_letters: Alert when more records than this were dead-lettered.
        max_dead_letter_percent: Alert when a larger percentage than this was dead-lettered.

    Returns:
        The exit code (undelivered records win: rerunning is what they need).
    """
    if undelivered:
        return ExitCode.UNDELIVERED
    if max_dead_letters is not None and dead_lettered > max_dead_letters:
        return ExitCode.TOO_MANY_DEAD_LETTERS
    if (
        max_dead_letter_percent is not None
        and received
        and dead_lettered * 100 > max_dead_letter_percent * received
    ):
        return ExitCode.TOO_MANY_DEAD_LETTERS
    return ExitCode.OK
