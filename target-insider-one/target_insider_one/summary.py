"""Run statistics: counted from several threads, logged at the end as text and metrics."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from typing import Any

from singer_sdk.metrics import get_metrics_logger

from target_insider_one.settlement import Undelivered

_FIELDS = (
    "records_received",
    "users_upserted",
    "users_rejected_by_insider",
    "records_skipped",
    "records_dead_lettered",
    "records_undelivered",
    "requests_sent",
    "retries",
    "failed_requests",
    "dry_run_users",
    "identifiers_dropped",
    "attributes_dropped",
)


class RunStats:
    """Thread-safe counters for one run."""

    def __init__(self) -> None:
        """Start the clock."""
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.counts: dict[str, int] = dict.fromkeys(_FIELDS, 0)
        self.skipped_by_reason: Counter[str] = Counter()
        self.dead_lettered_by_reason: Counter[str] = Counter()
        self.undelivered_by_reason: Counter[str] = Counter()
        self.dropped_by_reason: Counter[str] = Counter()
        self.warnings: list[str] = []  # configuration warnings, repeated in the summary

    def add(self, **increments: int) -> None:
        """Add to counters.

        Args:
            **increments: Counter name -> increment.
        """
        with self._lock:
            for key, value in increments.items():
                self.counts[key] = self.counts.get(key, 0) + value

    def skipped(self, reason: str) -> None:
        """Count a record skipped before sending.

        Args:
            reason: Reason code.
        """
        with self._lock:
            self.counts["records_skipped"] += 1
            self.skipped_by_reason[reason] += 1

    def dead_lettered(self, reason: str, count: int = 1) -> None:
        """Count dead-lettered records.

        Args:
            reason: Reason code.
            count: Number of records.
        """
        with self._lock:
            self.counts["records_dead_lettered"] += count
            self.dead_lettered_by_reason[reason] += count

    def undelivered(self, reason: str, count: int) -> None:
        """Count records whose request was not delivered (the next run re-sends them).

        Args:
            reason: Why (a :class:`~target_insider_one.settlement.Undelivered` value).
            count: Number of records.
        """
        with self._lock:
            self.counts["records_undelivered"] += count
            self.undelivered_by_reason[reason] += count

    def dropped(self, kind: str, target: str, reason: str) -> None:
        """Count an identifier or attribute value dropped from an otherwise sent user.

        Args:
            kind: ``identifier`` or ``attribute``.
            target: Identifier/attribute label.
            reason: Reason code.
        """
        with self._lock:
            self.counts[f"{kind}s_dropped"] += 1
            self.dropped_by_reason[f"{kind}:{target}:{reason}"] += 1

    def warn(self, text: str) -> None:
        """Keep a configuration warning for the summary.

        Args:
            text: The warning (no values from records or secrets).
        """
        with self._lock:
            self.warnings.append(text)

    def close_books(self, *, stopped: bool, dry_run: bool) -> tuple[int, int] | None:
        """Check that every record received was upserted, dead-lettered or undelivered.

        Args:
            stopped: The run stopped early: records still buffered, or in the request that
                stopped it, are counted as undelivered (``run_stopped``).
            dry_run: Records "sent" are the dry run's users.

        Returns:
            (received, accounted) when they differ (a bug to report), else None.
        """
        with self._lock:
            counts = self.counts
            accounted = (
                counts["records_dead_lettered"]
                + counts["records_undelivered"]
                + (counts["dry_run_users"] if dry_run else counts["users_upserted"])
            )
            received = counts["records_received"]
        if stopped and accounted < received:
            self.undelivered(Undelivered.RUN_STOPPED, received - accounted)
            return None
        return (received, accounted) if accounted != received else None

    @property
    def duration(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    def as_dict(self) -> dict[str, Any]:
        """Snapshot.

        Returns:
            All counters, the per-reason breakdowns and the duration.
        """
        with self._lock:
            return {
                **self.counts,
                "skipped_by_reason": dict(self.skipped_by_reason),
                "dead_lettered_by_reason": dict(self.dead_lettered_by_reason),
                "undelivered_by_reason": dict(self.undelivered_by_reason),
                "dropped_by_reason": dict(self.dropped_by_reason),
                "duration_seconds": round(self.duration, 3),
            }

    def human_summary(self, *, status: str, dead_letter_path: str | None, dry_run: bool) -> str:
        """A short multi-line summary.

        The first line says how many records were dead-lettered and how many were not
        delivered, by reason, for whoever only reads one line.

        Args:
            status: ``succeeded``, ``incomplete``, ``too_many_dead_letters``, ``failed`` or
                ``terminated``.
            dead_letter_path: Where dead letters went, if any were written.
            dry_run: Whether nothing was sent.

        Returns:
            The text.
        """
        data = self.as_dict()
        skipped = _by_reason(data["skipped_by_reason"])
        dead = _by_reason(data["dead_lettered_by_reason"])
        undelivered = _by_reason(data["undelivered_by_reason"])
        lines = [
            f"Insider run summary ({status}{', DRY RUN' if dry_run else ''}): "
            f"{data['records_dead_lettered']} dead-lettered"
            + (f" ({dead})" if dead else "")
            + f", {data['records_undelivered']} not delivered"
            + (f" ({undelivered})" if undelivered else ""),
            f"  records received:        {data['records_received']}",
            f"  users upserted:          {data['users_upserted']}"
            + (f" (dry run: {data['dry_run_users']} would be sent)" if dry_run else ""),
            f"  skipped before sending:  {data['records_skipped']}"
            + (f" ({skipped})" if skipped else ""),
            f"  rejected by Insider:     {data['users_rejected_by_insider']}",
            f"  dead-lettered:           {data['records_dead_lettered']}"
            + (f" ({dead}) -> {dead_letter_path}" if data["records_dead_lettered"] else ""),
            f"  not delivered:           {data['records_undelivered']}"
            + (
                f" ({undelivered}): not dead-lettered, re-sent by the next run"
                if undelivered
                else ""
            ),
            f"  failed requests:         {data['failed_requests']}",
            f"  requests / retries:      {data['requests_sent']} / {data['retries']}",
            (
                f"  values dropped:          {data['identifiers_dropped']} identifiers, "
                f"{data['attributes_dropped']} attributes"
            ),
            f"  duration:                {data['duration_seconds']:.2f}s",
        ]
        lines += [f"  WARNING: {text}" for text in self.warnings]
        if data["records_undelivered"]:
            lines.append(
                "  NOTE: some records were not delivered; no STATE was emitted past the first "
                "of them, so the next run re-sends them (upserts are idempotent)."
            )
        return "\n".join(lines)

    def emit_metrics(self, *, status: str) -> None:
        """Log every counter as a Singer SDK ``METRIC:`` line.

        Args:
            status: ``succeeded`` or ``failed``.
        """
        logger = get_metrics_logger()
        data = self.as_dict()
        for key in (*_FIELDS, "duration_seconds"):
            point = {
                "type": "timer" if key == "duration_seconds" else "counter",
                "metric": f"insider_{key}",
                "value": data[key],
                "tags": {"status": status},
            }
            logger.info("METRIC: %s", json.dumps(point, separators=(",", ":")))
        for metric, by_reason in (
            ("insider_records_skipped", data["skipped_by_reason"]),
            ("insider_records_dead_lettered", data["dead_lettered_by_reason"]),
            ("insider_records_undelivered", data["undelivered_by_reason"]),
        ):
            for reason, value in sorted(by_reason.items()):
                point = {
                    "type": "counter",
                    "metric": metric,
                    "value": value,
                    "tags": {"status": status, "reason": reason},
                }
                logger.info("METRIC: %s", json.dumps(point, separators=(",", ":")))


def _by_reason(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason}={n}" for reason, n in sorted(counts.items()))


def log_summary(logger: logging.Logger, text: str) -> None:
    """Log a multi-line summary line by line (keeps structured logs readable).

    Args:
        logger: Where to log.
        text: The summary.
    """
    for line in text.splitlines():
        logger.info("%s", line)
