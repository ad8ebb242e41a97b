"""InsiderUpsertSink: buffers mapped users and upserts them in bounded, concurrent requests."""

from __future__ import annotations

import itertools
import re
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from singer_sdk.exceptions import InvalidRecord
from singer_sdk.sinks import BatchSink
from singer_sdk.sinks.core import BaseJSONSchemaValidator

from target_insider_one.client import (
    InsiderAuthError,
    InsiderBadRequestError,
    InsiderConfigError,
    InsiderError,
    InsiderRequestFailedError,
    UpsertResponse,
)
from target_insider_one.field_check import check_stream_fields
from target_insider_one.mapping import UserMapper
from target_insider_one.payload import RequestPlan, build_body, plan_requests, serialize_user
from target_insider_one.runtime import InsiderFatalError
from target_insider_one.schema_validation import compile_validator
from target_insider_one.settlement import ExitCode, Undelivered

if TYPE_CHECKING:
    from singer_sdk import Target

    from target_insider_one.runtime import Runtime

_ERROR_KEY = re.compile(r"^users\.(\d+)(?:\.|$)")


@dataclass
class Item:
    """One mapped record waiting in a batch."""

    record: dict[str, Any]
    data: bytes
    keys: tuple[str, ...]
    number: int  # in the run's ledger


@dataclass
class _Job:
    plan: RequestPlan
    deps: set[int] = field(default_factory=set)


def identifier_keys(identifiers: dict[str, Any]) -> tuple[str, ...]:
    """Keys that make two users the same profile in Insider (shared identifier values).

    Args:
        identifiers: The user's ``identifiers`` object.

    Returns:
        Keys such as ``email:a@b.co`` and ``custom.loyalty_id:42``.
    """
    keys = [f"{k}:{v}" for k, v in identifiers.items() if k != "custom"]
    keys += [f"custom.{k}:{v}" for k, v in (identifiers.get("custom") or {}).items()]
    return tuple(keys)


def request_dependencies(plans: list[RequestPlan], items: list[Item]) -> list[set[int]]:
    """For each request, the earlier requests that touch one of the same profiles.

    Such requests must not overlap in time, so that a later record for a profile is never
    applied before an earlier one.

    Args:
        plans: Requests in batch order.
        items: The batch's items.

    Returns:
        Per request, the indexes of the requests it must wait for.
    """
    last: dict[str, int] = {}
    result: list[set[int]] = []
    for index, plan in enumerate(plans):
        deps: set[int] = set()
        for item_index in plan.items:
            for key in items[item_index].keys:
                previous = last.get(key)
                if previous is not None and previous != index:
                    deps.add(previous)
                last[key] = index
        result.append(deps)
    return result


class _CapturingValidator(BaseJSONSchemaValidator):
    """Runs the SDK's validator but dead-letters invalid records instead of stopping.

    The SDK would log the failing value; this keeps values out of the logs.
    """

    def __init__(self, inner: BaseJSONSchemaValidator, sink: InsiderUpsertSink) -> None:
        super().__init__(inner.schema)
        self.inner = inner
        self.sink = sink

    def validate(self, record: dict[str, Any]) -> None:
        try:
            self.inner.validate(record)
        except InvalidRecord as exc:
            self.sink.invalid_record_message = exc.error_message


class InsiderUpsertSink(BatchSink):
    """Upserts records as Insider users.

    A drain holds up to ``batch_size_rows x max_concurrent_requests`` records; they are
    split into requests of at most ``batch_size_rows`` users and ``max_request_bytes`` bytes
    that run concurrently. Every record waiting for delivery is opened in the run's
    :class:`~target_insider_one.settlement.Ledger` and reported there as settled
    (upserted, dead-lettered) or undelivered; the target emits STATE from the ledger only.
    """

    def __init__(
        self,
        target: Target,
        stream_name: str,
        schema: dict,
        key_properties: list[str] | None,
    ) -> None:
        """Create the sink.

        Args:
            target: The target (provides the shared runtime).
            stream_name: Stream name.
            schema: Stream schema.
            key_properties: Key properties.
        """
        self.runtime: Runtime = target.runtime  # type: ignore[attr-defined]
        self.invalid_record_message: str | None = None
        super().__init__(target, stream_name, schema, key_properties)
        self.mapper = UserMapper(self.runtime.settings, self.schema)
        self._warned: set[tuple[str, str]] = set()
        self._check_fields()

    def _check_fields(self) -> None:
        """Stop on identifier fields the schema lacks; warn about attribute fields.

        Raises:
            InsiderConfigError: An identifier field is not in the stream's schema.
        """
        errors, warnings = check_stream_fields(self.runtime.settings, self.stream_name, self.schema)
        if errors:
            msg = "Invalid identifier_mappings for this stream:\n  - " + "\n  - ".join(errors)
            raise InsiderConfigError(msg)
        for warning in warnings:
            if warning not in self.runtime.stats.warnings:  # a repeated SCHEMA warns once
                self.logger.warning("%s", warning)
                self.runtime.stats.warn(warning)

    @property
    def max_size(self) -> int:
        """Records buffered per drain: one full request per concurrent slot."""
        s = self.runtime.settings
        return s.batch_size * s.max_concurrent_requests

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        """A compiled schema validator whose failures dead-letter the record, not the run.

        Returns:
            The validator, or None when ``validate_records`` is false.
        """
        if not self.validate_schema:
            return None
        inner = compile_validator(self.schema) or super().get_validator()
        return _CapturingValidator(inner, self) if inner is not None else None

    def _parse_timestamps_in_record(self, record: dict, schema: dict, treatment: Any) -> None:
        """Keep values as received: :mod:`target_insider_one.values` converts dates itself.

        This also keeps the source record intact for dead letters, and an unparseable date
        drops one attribute instead of crashing the run.
        """

    # -- record intake -------------------------------------------------------------------

    def _dead_letter(
        self,
        record: dict[str, Any],
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        batch_id: str | None = None,
    ) -> None:
        self.runtime.dead_letters.write(
            reason=reason,
            message=message,
            stream=self.stream_name,
            record=record,
            details=details,
            batch_id=batch_id,
        )
        self.runtime.stats.dead_lettered(reason)

    def process_record(self, record: dict, context: dict) -> None:
        """Map and validate one record; keep it for the batch or dead-letter it.

        Args:
            record: The record (after stream maps).
            context: Batch context.
        """
        stats = self.runtime.stats
        stats.add(records_received=1)
        batch_id = context.get("batch_id")
        if self.invalid_record_message is not None:
            message, self.invalid_record_message = self.invalid_record_message, None
            stats.skipped("schema_validation_failed")
            self._dead_letter(
                record,
                "schema_validation_failed",
                f"record does not match its schema: {message}",
                batch_id=batch_id,
            )
            return
        mapped = self.mapper.map_record(record)
        if mapped.user is None:
            reason = mapped.skip_reason or "skipped"
            stats.skipped(reason)
            self._dead_letter(
                record,
                reason,
                mapped.skip_message or reason,
                {"issues": [i.as_dict() for i in mapped.issues]},
                batch_id,
            )
            return
        for issue in mapped.issues:
            stats.dropped(issue.kind, issue.target, issue.reason)
            if (issue.target, issue.reason) not in self._warned:
                self._warned.add((issue.target, issue.reason))
                self.logger.warning(
                    "Dropping %s %r from field %r (%s: %s); further occurrences are only counted",
                    issue.kind,
                    issue.target,
                    issue.field,
                    issue.reason,
                    issue.message,
                )
        try:
            data = serialize_user(mapped.user)
        except (TypeError, ValueError, RecursionError) as exc:
            # Not the exception's text: it can quote the offending value.
            stats.skipped("unserializable")
            message = f"the user could not be encoded as UTF-8 JSON ({type(exc).__name__})"
            self._dead_letter(record, "unserializable", message, batch_id=batch_id)
            return
        keys = identifier_keys(mapped.user["identifiers"])
        number = self.runtime.ledger.open()
        context.setdefault("items", []).append(Item(record, data, keys, number))

    # -- batch delivery -------------------------------------------------------------------

    def process_batch(self, context: dict) -> None:
        """Send the batch; return when every request is settled or known undelivered.

        Args:
            context: Batch context.

        Raises:
            InsiderFatalError: On fast-fail, rejected credentials or a wrong endpoint.
        """
        items: list[Item] = context.get("items") or []
        settings = self.runtime.settings
        batch_id = context.get("batch_id")
        try:
            if not items:
                return
            plans, oversize = plan_requests(
                [item.data for item in items],
                skip_hook=settings.skip_hook,
                not_append=settings.not_append,
                max_users=settings.batch_size,
                max_bytes=settings.max_request_bytes,
            )
            for index in oversize:
                self.runtime.stats.skipped("user_too_large")
                self._dead_letter(
                    items[index].record,
                    "user_too_large",
                    f"the user alone is {len(items[index].data)} bytes, more than "
                    f"max_request_bytes ({settings.max_request_bytes})",
                    batch_id=batch_id,
                )
            self.runtime.ledger.settle(items[index].number for index in oversize)
            if settings.dry_run:
                for plan in plans:
                    self.runtime.dry_run_writer.write_line(plan.body.decode())
                    self.runtime.stats.add(dry_run_users=len(plan.items))
                self.runtime.dry_run_writer.flush()
                return
            self._send(plans, items, batch_id)
        finally:
            self.runtime.flush_dead_letters()

    def _send(self, plans: list[RequestPlan], items: list[Item], batch_id: str | None) -> None:
        """Run the requests concurrently (bounded), keeping per-profile order.

        A request that shares a profile with an earlier request of the batch starts only
        after that one has settled; a request split in two sends its halves in order.
        """
        ids = itertools.count()
        jobs: dict[int, _Job] = {}
        for plan, deps in zip(plans, request_dependencies(plans, items), strict=True):
            jobs[next(ids)] = _Job(plan, deps)
        waiting = list(jobs)
        finished: set[int] = set()
        pending: dict[Future[UpsertResponse], int] = {}
        fatal: InsiderError | None = None
        while pending or (waiting and fatal is None):
            if fatal is None:
                fatal = self._start_ready(jobs, waiting, finished, pending)
            if not pending:  # pragma: no cover - dependencies always point backwards
                break
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in done:
                job_id = pending.pop(future)
                plan = jobs[job_id].plan
                if future.cancelled():
                    waiting.append(job_id)  # counted as not sent below
                    continue
                error, halves = self._outcome(
                    future, plan, items, batch_id, stopping=fatal is not None
                )
                if halves:
                    # The first half runs now; the second takes over this job's id, so
                    # requests waiting for this one wait for both halves.
                    first = next(ids)
                    jobs[first] = _Job(halves[0])
                    jobs[job_id] = _Job(halves[1], {first})
                    waiting[:0] = [first, job_id]
                    continue
                finished.add(job_id)
                if error is not None:
                    fatal = fatal or error
                    self.runtime.stop(error)
                if fatal is not None:
                    for other in pending:
                        other.cancel()
        if fatal is not None:
            unsent = sum(len(jobs[j].plan.items) for j in waiting)
            if unsent:
                self.runtime.stats.undelivered(Undelivered.RUN_STOPPED, unsent)
                self.logger.error(
                    "%d records of stream %r were not sent because the run is stopping",
                    unsent,
                    self.stream_name,
                )
            raise fatal

    def _start_ready(
        self,
        jobs: dict[int, _Job],
        waiting: list[int],
        finished: set[int],
        pending: dict[Future[UpsertResponse], int],
    ) -> InsiderError | None:
        """Start every waiting request whose predecessors have settled.

        Returns:
            The run's fatal error when another stream has stopped the run, else None.
        """
        for job_id in [j for j in waiting if jobs[j].deps <= finished]:
            future = self.runtime.submit(jobs[job_id].plan.body)
            if future is None:
                return self.runtime.fatal
            waiting.remove(job_id)
            pending[future] = job_id
        return None

    def _outcome(
        self,
        future: Future[UpsertResponse],
        plan: RequestPlan,
        items: list[Item],
        batch_id: str | None,
        *,
        stopping: bool,
    ) -> tuple[InsiderError | None, list[RequestPlan]]:
        """Settle one finished request.

        Returns:
            A fatal error (or None) and requests to send next (the halves of a split).
        """
        try:
            response = future.result()
        except InsiderBadRequestError as exc:
            if exc.too_large and len(plan.items) > 1 and not stopping:
                self.logger.warning(
                    "Insider refused a request of %d users as too large (%s); splitting it",
                    len(plan.items),
                    exc.message,
                )
                half = len(plan.items) // 2
                settings = self.runtime.settings
                return None, [
                    RequestPlan(
                        part,
                        build_body(
                            [items[i].data for i in part], settings.skip_hook, settings.not_append
                        ),
                    )
                    for part in (plan.items[:half], plan.items[half:])
                ]
            reason = "request_too_large" if exc.too_large else "bad_request"
            self._reject_plan(plan, items, reason, exc, batch_id)
            return self._fast_fail_error(plan, exc, ExitCode.STOPPED), []
        except (InsiderAuthError, InsiderConfigError) as exc:
            return InsiderFatalError(exc.message, exc.status), []
        except InsiderRequestFailedError as exc:
            self._undeliver(plan.items, items, exc.reason, exc.message)
            return self._fast_fail_error(plan, exc, ExitCode.UNDELIVERED), []
        self._settle(plan, items, response, batch_id)
        return None, []

    def _fast_fail_error(
        self, plan: RequestPlan, exc: InsiderError, exit_code: ExitCode
    ) -> InsiderError | None:
        if not self.runtime.settings.fast_fail:
            return None
        return InsiderFatalError(
            f"fast_fail is on and a request of {len(plan.items)} users for stream "
            f"{self.stream_name!r} failed: {exc.message}. The run stops here: no STATE past "
            "its records was emitted, so the next run re-sends them from the last bookmark.",
            exc.status,
            exit_code,
        )

    def _reject_plan(
        self,
        plan: RequestPlan,
        items: list[Item],
        reason: str,
        exc: InsiderError,
        batch_id: str | None,
    ) -> None:
        """Dead-letter every record of a request Insider refused as a whole (400/422)."""
        self.runtime.stats.add(failed_requests=1)
        self.logger.error(
            "Insider refused a request of %d users for stream %r (%s: %s); %s",
            len(plan.items),
            self.stream_name,
            reason,
            exc.message,
            "stopping (fast_fail)"
            if self.runtime.settings.fast_fail
            else "its records are dead-lettered and the run continues",
        )
        details = {"status": exc.status, "users_in_request": len(plan.items)}
        for index in plan.items:
            self._dead_letter(items[index].record, reason, exc.message, details, batch_id)
        self.runtime.ledger.settle(items[index].number for index in plan.items)

    def _undeliver(
        self, indexes: list[int], items: list[Item], reason: Undelivered, message: str
    ) -> None:
        """Records whose delivery is unknown: never dead-lettered, STATE stops before them."""
        self.runtime.stats.add(failed_requests=1)
        self.runtime.stats.undelivered(reason, len(indexes))
        self.runtime.ledger.undeliver(items[index].number for index in indexes)
        self.logger.error(
            "%d records of stream %r were not delivered (%s: %s); no STATE will pass them, "
            "so the next run re-sends them; %s",
            len(indexes),
            self.stream_name,
            reason,
            message,
            "stopping (fast_fail)"
            if self.runtime.settings.fast_fail
            else "the run delivers the other batches, then exits non-zero",
        )

    def _settle(
        self,
        plan: RequestPlan,
        items: list[Item],
        response: UpsertResponse,
        batch_id: str | None,
    ) -> None:
        total = len(plan.items)
        failed: dict[int, dict[str, list[str]]] = {}
        unattributed: list[str] = []
        for key, messages in response.errors.items():
            match = _ERROR_KEY.match(key)
            if match and int(match.group(1)) < total:
                failed.setdefault(int(match.group(1)), {})[key] = messages
            else:
                unattributed.append(key)
        for position, errors in sorted(failed.items()):
            message = "; ".join(m for messages in errors.values() for m in messages)
            self._dead_letter(
                items[plan.items[position]].record,
                "rejected_by_insider",
                message or "rejected by Insider",
                {"errors": errors, "user_index": position, "status": response.status},
                batch_id,
            )
        self.runtime.ledger.settle(items[plan.items[p]].number for p in failed)
        others = [plan.items[p] for p in range(total) if p not in failed]
        # Insider omits successful.count when nobody succeeded.
        successful = response.successful or 0
        if others and (response.fail_count > len(failed) or successful < len(others)):
            # Insider's counts do not add up to the users it names: whether the others
            # were stored is unknown, so they are not delivered (the next run re-sends
            # them; upserts are idempotent) rather than counted as upserted.
            self.logger.warning(
                "Insider reported %s successful and %d failed of %d users but named %d "
                "failures (unmatched error keys: %s)",
                "no" if response.successful is None else response.successful,
                response.fail_count,
                total,
                len(failed),
                ", ".join(unattributed) or "none",
            )
            self._undeliver(
                others, items, Undelivered.UNCONFIRMED, "Insider's counts do not add up"
            )
            others = []
        elif unattributed:
            self.logger.warning(
                "Insider returned error keys that name no user of the request: %s",
                ", ".join(unattributed),
            )
        self.runtime.ledger.settle(items[index].number for index in others)
        self.runtime.stats.add(users_upserted=len(others), users_rejected_by_insider=len(failed))
