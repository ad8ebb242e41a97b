"""Phone numbers normalised in a second process, one chunk ahead of the records using them.

``phonenumbers`` (parse, validate, format) costs about as much per record as everything
else the target does, and it is pure CPU: on a machine with a second core, a worker
process normalises the phone values of the next chunk of records while the main process
maps the current one. The worker only fills a lookup table; the mapping still asks
:meth:`PhonePrefetch.to_e164` for each value and gets either the worker's answer for that
exact text or, on a miss, the inline :func:`~target_insider_one.phone.to_e164`. So:

- results are the inline ones (same function, same options; keyed by the value itself,
  never by position, so no record can get another record's number);
- a worker that dies or answers wrongly (wrong length) only costs speed: the pool is shut
  down, a warning without any value is logged, and every later value is normalised inline;
- with one core, with ``normalize_phone_numbers`` off or with no phone mapping there is no
  pool, and records are processed as they arrive. The first full chunk starts the worker
  (small inputs never start a process); until the worker has started (its imports take about
  half a second, longer than the main process needs for several chunks) chunks are
  normalised inline rather than waited for. Only then are records held back, at most two
  chunks. A STATE arriving while a chunk is in the worker is held in line with them
  (released after the records before it, so the ledger numbers it as before; otherwise the
  records before it are processed at once); every held message is processed before any
  other message (SCHEMA...) or the end of input, so STATE and delivery order are unchanged;
- the worker ignores SIGINT (the target handles it and exits), is killed when the target
  dies (Linux), and writes nothing to the target's stdout (see :func:`_start_worker`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any

from target_insider_one.phone import PhoneNumberError, PhoneOptions, to_e164

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from target_insider_one.settings import Settings

LOGGER = logging.getLogger("target_insider_one.phone_pool")

# Pickling 1,000 values is cheap next to parsing them. A STATE (the tap sends one per page)
# is held in line with the records, so only the chunk filling at a SCHEMA or at the end of
# input is normalised inline.
CHUNK_RECORDS = 1000
# A normalised value: (e164, "", "") or ("", reason, message) of the PhoneNumberError.
Result = tuple[str, str, str]


def normalise_values(values: list[str], options: PhoneOptions) -> list[Result]:
    """Normalise phone values (runs in the worker process).

    Args:
        values: Phone texts.
        options: Normalisation options.

    Returns:
        One result per value, in order.
    """
    results: list[Result] = []
    for value in values:
        try:
            results.append((to_e164(value, options), "", ""))
        except PhoneNumberError as exc:
            results.append(("", exc.reason, exc.message))
    return results


_PR_SET_PDEATHSIG = 1  # prctl option (Linux): a signal for this process when its parent dies


def _start_worker(parent: int) -> None:
    """Set the worker up so that it never outlives the target, nor holds its stdout.

    The target exits with ``os._exit`` on SIGTERM/SIGINT (and can be killed outright), which
    skips the pool's shutdown, and the worker would wait on its queue forever. Holding the
    target's stdout, it would keep an orchestrator that reads STATE until end of file (Meltano)
    waiting too. So: SIGINT is ignored (the target decides how the run stops), the worker is
    killed when the target dies (Linux), exits if it already has, and its stdout is
    /dev/null (it never writes Singer output).

    Args:
        parent: The target's process id.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # stdout
    os.close(devnull)
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the stdout part still holds
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the target died before the line above took effect
        os._exit(0)


def _worker_processes(pool: ProcessPoolExecutor) -> list[Any]:
    # No public way before Python 3.14 (kill_workers); shutdown() forgets the table.
    return list((getattr(pool, "_processes", None) or {}).values())


def usable_cores() -> int:
    """CPU cores this process may run on.

    Returns:
        Their number.
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def phone_fields(settings: Settings) -> tuple[str, ...]:
    """Record fields holding phone numbers to normalise (identifiers and attributes).

    Args:
        settings: Target settings.

    Returns:
        The fields (empty when normalisation is off).
    """
    if not settings.phone.normalize:
        return ()
    fields = [m.field for m in settings.identifiers if m.type == "phone_number"]
    fields += [s for s, t in settings.attributes if not t.custom and t.name == "phone_number"]
    return tuple(dict.fromkeys(fields))


class PhonePrefetch:
    """Holds back RECORD and STATE messages a chunk at a time while a worker normalises phones."""

    def __init__(
        self,
        options: PhoneOptions,
        fields: tuple[str, ...],
        *,
        chunk_records: int = CHUNK_RECORDS,
        cores: int | None = None,
    ) -> None:
        """Create the prefetcher (no process is started until a full chunk arrives).

        Args:
            options: Phone options of the run.
            fields: Record fields holding phone numbers.
            chunk_records: Records per chunk.
            cores: Usable cores (default: this machine's).
        """
        self.options = options
        self.fields = fields
        self.chunk_records = chunk_records
        self.enabled = bool(fields) and (cores or usable_cores()) > 1
        self._current: list[dict[str, Any]] = []
        self._queued: deque[tuple[list[dict[str, Any]], list[str], Future[list[Result]]]] = deque()
        self._known: dict[str, Result] = {}
        self._pool: ProcessPoolExecutor | None = None
        self._started: Future[int] | None = None  # answers once the worker process is up

    def to_e164(self, value: object, options: PhoneOptions) -> str:
        """:func:`~target_insider_one.phone.to_e164`, answered from the worker when it can.

        Args:
            value: The phone value.
            options: Options (the run's; other options are normalised inline).

        Returns:
            The E.164 string.

        Raises:
            PhoneNumberError: As :func:`~target_insider_one.phone.to_e164` does.
        """
        known = self._known.get(value) if type(value) is str else None
        if known is None or options is not self.options:
            return to_e164(value, options)
        e164, reason, message = known
        if reason:
            raise PhoneNumberError(reason, message)
        return e164

    def add(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """Take a RECORD or STATE message; return those whose phones are ready, in order.

        Args:
            message: The message (a STATE holds no phone: it only keeps its place).

        Returns:
            Messages to process now (none while a chunk fills).
        """
        if not self.enabled:  # no worker (or it failed): what is held first, then this
            return [*self.drain(), message] if self._queued or self._current else [message]
        if message.get("type") == "STATE" and not self._queued:
            # Nothing in the worker (a small input, the first chunk still filling): the
            # records before it are processed now, so its STATE is not held back.
            return [*self.drain(), message]
        self._current.append(message)
        if len(self._current) < self.chunk_records:
            return []
        chunk, self._current = self._current, []
        up = self._worker_up()
        values = self._values(chunk) if up else []
        future = self._submit(normalise_values, values, self.options) if up else None
        if future is None:  # starting or failed: inline, after the chunk held in the worker
            self._current = chunk
            return self.drain()
        self._queued.append((chunk, values, future))
        if len(self._queued) < 2:  # noqa: PLR2004 - keep one chunk in the worker
            return []
        return self._release(*self._queued.popleft())

    def drain(self) -> list[dict[str, Any]]:
        """Every held message, in input order (before any other message or the end).

        Returns:
            The messages.
        """
        ready: list[dict[str, Any]] = []
        known: dict[str, Result] = {}
        while self._queued:
            ready += self._release(*self._queued.popleft())
            known.update(self._known)
        self._known = known  # the held chunk's values are looked up inline
        chunk, self._current = self._current, []
        return ready + chunk

    def close(self) -> None:
        """Stop the worker (not waiting for it); held chunks are then normalised inline.

        A worker still starting is killed: its start-up call cannot be cancelled once
        queued, and Python's exit would wait for it (half a second on a run that is done).
        """
        pool, self._pool = self._pool, None
        if pool is None:
            return
        starting = self._started is not None and not self._started.done()
        workers = _worker_processes(pool) if starting else []
        pool.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            with contextlib.suppress(OSError, ValueError):  # already gone
                worker.kill()

    def _values(self, chunk: Iterable[dict[str, Any]]) -> list[str]:
        values: dict[str, None] = {}
        for message in chunk:
            record = message.get("record")
            if not isinstance(record, dict):
                continue
            for field in self.fields:
                value = record.get(field)
                if type(value) is str:
                    values[value] = None
        return list(values)

    def _worker_up(self) -> bool:
        """Whether the worker is ready for a chunk; the first call starts it.

        Returns:
            False while it starts and once it failed (the chunk is then normalised inline).
        """
        if self._started is None:
            self._started = self._submit(os.getpid)  # the worker's pid, once it is up
            if self._started is not None:
                self._started.add_done_callback(self._log_started)
        if self._started is None or not self._started.done():
            return False
        try:
            self._started.result()
        except Exception as exc:  # noqa: BLE001 - any start failure: inline from now on
            self._give_up(exc)
            return False
        return self.enabled

    def _log_started(self, started: Future[int]) -> None:
        # On the pool's thread; not once the run closed the pool (a worker still starting).
        if self._pool is not None and not started.cancelled() and started.exception() is None:
            LOGGER.info("The phone number worker process is up: it normalises the next chunks")

    def _submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any] | None:
        if not self.enabled:
            return None
        try:
            if self._pool is None:
                # spawn, not fork: the target runs HTTP threads, and forking them is unsafe.
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=get_context("spawn"),
                    initializer=_start_worker,
                    initargs=(os.getpid(),),
                )
            return self._pool.submit(fn, *args)
        except (BrokenProcessPool, RuntimeError, OSError) as exc:
            self._give_up(exc)
            return None

    def _release(
        self,
        chunk: list[dict[str, Any]],
        values: list[str],
        future: Future[list[Result]] | None,
    ) -> list[dict[str, Any]]:
        self._known = {}
        if future is None:
            return chunk
        try:
            results = future.result()
        except Exception as exc:  # noqa: BLE001 - any worker failure: fall back to inline
            self._give_up(exc)
            return chunk
        if len(results) != len(values):
            self._give_up(RuntimeError("wrong number of results"))
            return chunk
        self._known = dict(zip(values, results, strict=True))
        return chunk

    def _give_up(self, exc: BaseException) -> None:
        if self.enabled:  # the exception's text could quote a value: only its type
            LOGGER.warning(
                "The phone number worker process failed (%s); phone numbers are normalised "
                "in the main process from now on (same results, slower)",
                type(exc).__name__,
            )
        self.enabled = False
        self.close()
