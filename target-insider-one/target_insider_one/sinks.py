"""InsiderUpsertSink: the SDK's sink for Insider, from record intake to batch delivery.

Intake (``process_record``) maps each record to a user or dead-letters it; a drain
(``process_batch``) plans the batch's requests and hands them to
:class:`~target_insider_one.delivery.BatchDelivery`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from singer_sdk.exceptions import InvalidRecord
from singer_sdk.sinks import BatchSink
from singer_sdk.sinks.core import BaseJSONSchemaValidator
from typing_extensions import override

from target_insider_one.client import InsiderConfigError
from target_insider_one.delivery import BatchDelivery
from target_insider_one.field_check import check_stream_fields
from target_insider_one.mapping import UserMapper
from target_insider_one.payload import RequestPlan, plan_requests, serialize_user
from target_insider_one.phone import to_e164
from target_insider_one.scheduler import Item, identifier_keys, request_dependencies
from target_insider_one.schema_validation import compile_validator
from target_insider_one.settlement import DeadLetterReason

if TYPE_CHECKING:
    from singer_sdk import Target

    from target_insider_one.mapping import MappedRecord
    from target_insider_one.runtime import Runtime

__all__ = ["InsiderUpsertSink", "Item", "identifier_keys", "request_dependencies"]


class _CapturingValidator(BaseJSONSchemaValidator):
    """Runs the SDK's validator but dead-letters invalid records instead of stopping.

    The SDK would log the failing value; this keeps values out of the logs.
    """

    @override
    def __init__(self, inner: BaseJSONSchemaValidator, sink: InsiderUpsertSink) -> None:
        super().__init__(inner.schema)
        self.inner = inner
        self.sink = sink

    @override
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

    @override
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
        phones = getattr(target, "phones", None)  # normalised ahead by a worker, if any
        self.mapper = UserMapper(
            self.runtime.settings, self.schema, phones.to_e164 if phones else to_e164
        )
        self._warned: set[tuple[str, str]] = set()
        self._check_fields()

    @override
    def _singer_validate_message(self, record: dict) -> None:
        """A record without its key properties is dead-lettered, not the end of the run.

        The SDK raises ``MissingKeyPropertiesError`` (and a traceback) for it, so one such row
        would stop every run at the same place. Only the field names go in the message.

        Args:
            record: The record (after schema validation).
        """
        if self.invalid_record_message is not None:
            return  # already dead-lettered for its schema, which says more
        missing = [key for key in self._key_properties if key not in record]
        if missing:
            self.invalid_record_message = (
                f"the record lacks its key properties {missing} (the stream's SCHEMA message "
                "names them in key_properties)"
            )

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
    @override
    def max_size(self) -> int:
        """Records buffered per drain: one full request per concurrent slot."""
        s = self.runtime.settings
        return s.batch_size_rows * s.max_concurrent_requests

    @override
    def get_validator(self) -> BaseJSONSchemaValidator | None:
        """A compiled schema validator whose failures dead-letter the record, not the run.

        Returns:
            The validator, or None when ``validate_records`` is false.
        """
        if not self.validate_schema:
            return None
        inner = compile_validator(self.schema) or super().get_validator()
        return _CapturingValidator(inner, self) if inner is not None else None

    @override
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

    def _skip(self, record: dict[str, Any], reason: str, message: str, **extra: Any) -> None:
        """Count a record skipped before sending, and dead-letter it."""
        self.runtime.stats.skipped(reason)
        self._dead_letter(record, reason, message, **extra)

    @override
    def process_record(self, record: dict, context: dict) -> None:
        """Map and validate one record; keep it for the batch or dead-letter it.

        Args:
            record: The record (after stream maps).
            context: Batch context.
        """
        self.runtime.stats.add(records_received=1)
        batch_id = context.get("batch_id")
        if self.invalid_record_message is not None:
            message, self.invalid_record_message = self.invalid_record_message, None
            reason = DeadLetterReason.SCHEMA_VALIDATION_FAILED
            self._skip(
                record, reason, f"record does not match its schema: {message}", batch_id=batch_id
            )
            return
        mapped = self.mapper.map_record(record)
        if mapped.user is None:
            reason = mapped.skip_reason or "skipped"
            details = {"issues": [i.as_dict() for i in mapped.issues]}
            self._skip(
                record, reason, mapped.skip_message or reason, details=details, batch_id=batch_id
            )
            return
        self._count_dropped_values(mapped)
        try:
            data = serialize_user(mapped.user)
        except (TypeError, ValueError, RecursionError) as exc:
            # Not the exception's text: it can quote the offending value.
            message = f"the user could not be encoded as UTF-8 JSON ({type(exc).__name__})"
            self._skip(record, DeadLetterReason.UNSERIALIZABLE, message, batch_id=batch_id)
            return
        keys = identifier_keys(mapped.user["identifiers"])
        number = self.runtime.ledger.open()
        context.setdefault("items", []).append(Item(record, data, keys, number))

    def _count_dropped_values(self, mapped: MappedRecord) -> None:
        """Count values dropped from a sent user; warn once per attribute and reason."""
        for issue in mapped.issues:
            self.runtime.stats.dropped(issue.kind, issue.target, issue.reason)
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

    # -- batch delivery -------------------------------------------------------------------

    @override
    def process_batch(self, context: dict) -> None:
        """Send the batch: in the background when the sink drains because it is full.

        A full sink is drained mid-stream: its batch goes to the delivery thread (see
        :meth:`~target_insider_one.runtime.Runtime.deliver_in_background`) once the
        previous batch is delivered, and records are mapped meanwhile. Every other drain
        (end of input, record age, schema change, several sinks at once) waits for that
        batch, then returns when every request is settled or known undelivered, as the
        SDK expects; the target also waits for the last batch at the end of input.

        Args:
            context: Batch context.

        Raises:
            InsiderFatalError: On fast-fail, rejected credentials or a wrong endpoint (of
                the previous batch: this one is then never sent).
        """
        items: list[Item] = context.get("items") or []
        batch_id = context.get("batch_id")
        try:
            if not items:
                return
            plans = self._plan(items, batch_id)
            if self.runtime.settings.dry_run:
                self._write_dry_run(plans)
                return
            delivery = BatchDelivery(
                self.runtime, self.stream_name, self.logger, self._dead_letter, (items, batch_id)
            )
            if self.is_full:  # still true here: the SDK resets the count after the drain
                self.runtime.deliver_in_background(lambda: self._deliver(delivery, plans))
            else:
                self.runtime.wait_for_delivery()
                delivery.send(plans)
        finally:
            self.runtime.flush_dead_letters()

    def _deliver(self, delivery: BatchDelivery, plans: list[RequestPlan]) -> None:
        try:
            delivery.send(plans)
        finally:
            self.runtime.flush_dead_letters()

    def _plan(self, items: list[Item], batch_id: str | None) -> list[RequestPlan]:
        """Split the batch into requests; dead-letter users too large for any request."""
        settings = self.runtime.settings
        plans, oversize = plan_requests(
            [item.data for item in items],
            skip_hook=settings.skip_hook,
            not_append=settings.not_append,
            max_users=settings.batch_size_rows,
            max_bytes=settings.max_request_bytes,
        )
        for index in oversize:
            message = (
                f"the user alone is {len(items[index].data)} bytes, more than "
                f"max_request_bytes ({settings.max_request_bytes})"
            )
            self._skip(
                items[index].record, DeadLetterReason.USER_TOO_LARGE, message, batch_id=batch_id
            )
        self.runtime.ledger.settle(items[index].number for index in oversize)
        return plans

    def _write_dry_run(self, plans: list[RequestPlan]) -> None:
        for plan in plans:
            self.runtime.dry_run_writer.write_line(plan.body.decode())
            self.runtime.stats.add(dry_run_users=len(plan.items))
        self.runtime.dry_run_writer.flush()
