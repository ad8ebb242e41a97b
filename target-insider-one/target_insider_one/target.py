"""target-insider-one: upserts Singer records into Insider One as user profiles."""

from __future__ import annotations

import copy
import os
import signal
import sys
import typing as t

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import PluginCapabilities, TargetCapabilities
from singer_sdk.singerlib.exceptions import InvalidInputLine
from typing_extensions import override

from target_insider_one.client import InsiderError
from target_insider_one.field_check import unknown_settings
from target_insider_one.mapping import UserMapper
from target_insider_one.operator_cli import operator_options
from target_insider_one.preflight import check_credentials
from target_insider_one.reader import RedactingSingerReader
from target_insider_one.runtime import InsiderFatalError, Runtime
from target_insider_one.settings import (
    DEFAULT_API_BASE_URL,
    DEFAULT_BLOCKED_IDENTIFIER_VALUES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_BUDGET_SECONDS,
    IDENTIFIER_MAPPINGS_REQUIRED,
    IDENTIFIER_TYPES,
    INVALID_ATTRIBUTE_POLICIES,
    INVALID_IDENTIFIER_POLICIES,
    MAX_CONCURRENT_REQUESTS,
    MAX_REQUEST_BYTES,
    MAX_RETRIES_LIMIT,
    MAX_RETRY_BUDGET_SECONDS,
    MAX_USERS_PER_REQUEST,
    parse_settings,
)
from target_insider_one.settlement import ExitCode, run_exit_code
from target_insider_one.sinks import InsiderUpsertSink
from target_insider_one.values import InvalidValueError

if t.TYPE_CHECKING:
    from types import FrameType

    import click
    from singer_sdk.helpers.capabilities import CapabilitiesEnum

_IDENTIFIER = th.ObjectType(
    th.Property(
        "type",
        th.StringType,
        required=True,
        allowed_values=list(IDENTIFIER_TYPES),
        description="Insider identifier type.",
    ),
    th.Property("field", th.StringType, required=True, description="Source record field."),
    th.Property(
        "name",
        th.StringType,
        description="Custom identifier name as configured in Insider IRM (type 'custom' only).",
    ),
    additional_properties=False,
)

_SCHEMA_ERROR_HINTS = {"'identifier_mappings' is a required property": IDENTIFIER_MAPPINGS_REQUIRED}

CONFIG_SCHEMA = th.PropertiesList(
    th.Property(
        "partner_name",
        th.StringType,
        required=True,
        title="Partner Name",
        description="Insider One partner (account) name, sent as X-PARTNER-NAME. It is "
        "lowercased before sending, as Insider requires.",
    ),
    th.Property(
        "api_key",
        th.StringType,
        required=True,
        secret=True,
        title="API Key",
        description="Insider One API key of type 'Unified Customer Database (UCD)', sent as "
        "X-REQUEST-TOKEN.",
    ),
    th.Property(
        "api_base_url",
        th.StringType,
        default=DEFAULT_API_BASE_URL,
        title="API Base URL",
        description="Base URL of the Insider unification API. Must be https; plain http is "
        "accepted only for loopback hosts (localhost, 127.0.0.0/8, ::1), e.g. an emulator.",
    ),
    th.Property(
        "identifier_mappings",
        th.ArrayType(_IDENTIFIER),
        required=True,
        title="Identifier Mappings",
        description="At least one {type, field[, name]}: type is email, phone_number, uuid or "
        "custom (custom needs name). Example: "
        '[{"type": "uuid", "field": "SubscriberKey"}, '
        '{"type": "email", "field": "EmailAddress"}].',
    ),
    th.Property(
        "attribute_mappings",
        th.ObjectType(additional_properties=th.StringType),
        title="Attribute Mappings",
        description="Source field -> Insider attribute. Insider default attributes (name, "
        "surname, email, phone_number, uuid, email_optin, sms_optin, whatsapp_optin, "
        "gdpr_optin, birthday, gender, age, language, country, city, locale, lo, "
        "static_segment_id) go at the root of `attributes`; any other name (or a name "
        "prefixed `custom.`) goes under `attributes.custom`.",
    ),
    th.Property(
        "fixed_value_mappings",
        th.ObjectType(),
        title="Fixed Value Mappings",
        description='Attribute -> constant set on every user, e.g. {"data_source": "sfmc"}. '
        "Same placement rules as attribute_mappings.",
    ),
    th.Property(
        "skip_hook",
        th.BooleanType,
        default=False,
        description="Send top-level skip_hook=true so the import does not trigger Insider "
        "data streams or Architect 'On Event' journeys (use for historical loads).",
    ),
    th.Property(
        "fast_fail",
        th.BooleanType,
        default=False,
        description="Stop the run at once (exit 3, no further STATE) at the first request "
        "that is not delivered after its retries (exit 1 for one Insider refused). When false, "
        "the other batches are still delivered, then the run exits 3 without STATE past the "
        "undelivered records, so the next run re-sends them. Undelivered records are never "
        "dead-lettered.",
    ),
    th.Property(
        "not_append",
        th.BooleanType,
        default=True,
        description="Send not_append=true (per user and at the top level) so array attributes are "
        "overwritten, not appended: replays are idempotent. Set false to append.",
    ),
    th.Property(
        "invalid_identifier_policy",
        th.StringType,
        default="skip_identifier",
        allowed_values=list(INVALID_IDENTIFIER_POLICIES),
        description="For an invalid identifier value: skip_identifier drops it and keeps the "
        "record if another valid identifier remains; skip_record dead-letters the record.",
    ),
    th.Property(
        "invalid_attribute_policy",
        th.StringType,
        default="skip_attribute",
        allowed_values=list(INVALID_ATTRIBUTE_POLICIES),
        description="For an attribute value that cannot be converted (e.g. 'maybe' for a "
        "boolean): skip_attribute omits it (counted in the summary); skip_record "
        "dead-letters the record.",
    ),
    th.Property(
        "empty_string_policy",
        th.StringType,
        default="omit",
        allowed_values=["omit", "send"],
        description="omit: blank strings (and empty arrays) are treated like null and never "
        "sent; send: blank strings are sent to string attributes as-is. Nulls are never sent.",
    ),
    th.Property(
        "normalize_emails",
        th.BooleanType,
        default=True,
        description="Trim and lowercase email identifiers and the email attribute.",
    ),
    th.Property(
        "blocked_identifier_values",
        th.ArrayType(th.StringType),
        default=list(DEFAULT_BLOCKED_IDENTIFIER_VALUES),
        description="Identifier values treated as invalid (case-insensitive) to avoid wrong "
        "profile merges, as Insider's IRM guide recommends.",
    ),
    th.Property(
        "normalize_phone_numbers",
        th.BooleanType,
        default=True,
        description="Normalise phone numbers to E.164 with the phonenumbers library. When "
        "false, values must already match ^\\+[1-9]\\d{6,14}$.",
    ),
    th.Property(
        "phone_default_region",
        th.StringType,
        description="ISO 3166-1 alpha-2 region used to read national numbers (e.g. GB). "
        "Without it, only numbers starting with + (or 00) are accepted.",
    ),
    th.Property(
        "phone_validation",
        th.StringType,
        default="valid",
        allowed_values=["valid", "possible"],
        description="valid: the number must be in an assigned range (phonenumbers metadata); "
        "possible: only its length is checked.",
    ),
    th.Property(
        "phone_rewrite_00_prefix",
        th.BooleanType,
        default=True,
        description="Rewrite a leading 00 to + before parsing (00 is the international prefix "
        "in most of the world; phonenumbers only honours it for the default region).",
    ),
    th.Property(
        "phone_extension_policy",
        th.StringType,
        default="reject",
        allowed_values=["reject", "drop"],
        description="reject: a number with an extension is invalid (E.164 cannot carry it); "
        "drop: send the number without its extension.",
    ),
    th.Property(
        "batch_size_rows",
        th.IntegerType(minimum=1, maximum=MAX_USERS_PER_REQUEST),
        default=MAX_USERS_PER_REQUEST,
        title="Batch Size (users per request)",
        description="Maximum users per upsert request (Insider's limit is 1000).",
    ),
    th.Property(
        "max_request_bytes",
        th.IntegerType(minimum=1000, maximum=MAX_REQUEST_BYTES),
        default=MAX_REQUEST_BYTES,
        description="Maximum request body size in bytes (Insider's limit is 5,000,000); "
        "larger batches are split.",
    ),
    th.Property(
        "max_concurrent_requests",
        th.IntegerType(minimum=1, maximum=MAX_CONCURRENT_REQUESTS),
        default=4,
        description="Upsert requests in flight at once (the target buffers "
        "batch_size_rows x this many records per drain).",
    ),
    th.Property(
        "request_timeout",
        th.NumberType,
        default=60,
        description="Seconds to wait for each HTTP request (connect and read).",
    ),
    th.Property(
        "max_retries",
        th.IntegerType(minimum=0, maximum=MAX_RETRIES_LIMIT),
        default=DEFAULT_MAX_RETRIES,
        description="Retries after the first attempt for 429, 5xx, 403 'Request Limit "
        "Exceeded', timeouts, dropped connections and DNS failures (retry_budget_seconds "
        "also limits them).",
    ),
    th.Property(
        "retry_budget_seconds",
        th.NumberType(minimum=0, maximum=MAX_RETRY_BUDGET_SECONDS),
        default=DEFAULT_RETRY_BUDGET_SECONDS,
        description="Time budget per request: no retry starts later than this many seconds "
        "after the first attempt (sized for a 429 storm or a short outage). A request still "
        "failing then is not delivered: the run exits 3 and the next run re-sends it.",
    ),
    th.Property(
        "backoff_base_seconds",
        th.NumberType,
        default=1,
        description="First retry delay; doubles on each retry, with jitter. A Retry-After "
        "header (up to 300 s) is honoured as a minimum.",
    ),
    th.Property(
        "backoff_max_seconds",
        th.NumberType,
        default=60,
        description="Longest exponential backoff delay.",
    ),
    th.Property(
        "max_dead_letters",
        th.IntegerType(minimum=0),
        description="Alert: exit 4 when more than this many records were dead-lettered "
        "(delivery and STATE are unchanged). Off by default.",
    ),
    th.Property(
        "max_dead_letter_percent",
        th.NumberType(minimum=0, maximum=100),
        description="Alert: exit 4 when more than this percentage (0-100) of the records "
        "received was dead-lettered. Off by default.",
    ),
    th.Property(
        "dry_run",
        th.BooleanType,
        default=False,
        description="Validate and write the request bodies that would be sent to dry_run_path "
        "(one JSON body per line); send nothing and emit no STATE.",
    ),
    th.Property(
        "preflight",
        th.BooleanType,
        default=True,
        description="Before reading any input, check partner_name, api_key and api_base_url "
        "with one read-only request (metadata/columns), and warn about mapped custom "
        "attributes Insider does not define. Runs in dry runs too; set false to skip "
        "(e.g. an offline dry run).",
    ),
    th.Property(
        "dry_run_path",
        th.StringType,
        description="Dry-run output file. Default: output/dry-run/insider-<UTC timestamp>.jsonl.",
    ),
    th.Property(
        "dead_letter_path",
        th.StringType,
        description="JSONL file for records that were skipped or rejected (appended). "
        "Default: output/dead-letters/insider-<UTC timestamp>.jsonl.",
    ),
).to_dict()


class TargetInsiderOne(Target):
    """Upserts records into Insider One as user profiles."""

    name = "target-insider-one"
    config_jsonschema = CONFIG_SCHEMA
    default_sink_class = InsiderUpsertSink
    message_reader_class = RedactingSingerReader  # never logs a line's content
    capabilities: t.ClassVar[list[CapabilitiesEnum]] = [
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.STRUCTURED_LOGGING,
        TargetCapabilities.VALIDATE_RECORDS,
    ]
    # Read by the signal handler, which the SDK installs before __init__ ends.
    _emitting = False
    _pending_signal: int | None = None

    def __init__(self, **kwargs: t.Any) -> None:
        """Create the target and validate its configuration.

        Args:
            **kwargs: Passed to :class:`singer_sdk.Target`.
        """
        super().__init__(**kwargs)
        settings = parse_settings(self.config)
        try:  # fixed values are converted once, up front: report bad ones as config errors
            UserMapper(settings, {"properties": {}})
        except InvalidValueError as exc:
            msg = f"fixed_value_mappings: {exc.message}"
            raise ConfigValidationError(msg, errors=[msg]) from None
        self.runtime = Runtime(settings, self.logger)
        known = copy.deepcopy(self.config_jsonschema)
        self.append_builtin_config(known)
        for warning in unknown_settings(self.config, known["properties"]):
            self.logger.warning("%s", warning)
            self.runtime.stats.warn(warning)
        original = str(self.config.get("partner_name") or "")
        if original.strip() != self.runtime.settings.partner_name:
            self.logger.info(
                "partner_name is sent lowercase, as Insider requires: %r",
                self.runtime.settings.partner_name,
            )

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Validate against the JSON schema without echoing the API key in any error.

        A missing ``identifier_mappings`` also gets an example of the fix.

        The SDK's messages quote the offending value (``123 is not of type 'string'``).

        Args:
            raise_errors: Raise instead of returning the errors.

        Returns:
            The errors (when not raising).

        Raises:
            ConfigValidationError: The errors, with the API key redacted.
        """
        secret = str(self._config.get("api_key") or "")

        def rewrite(errors: list[str]) -> list[str]:
            errors = [_SCHEMA_ERROR_HINTS.get(e, e) for e in errors]
            return [e.replace(secret, "***") for e in errors] if secret else errors

        try:
            return rewrite(super()._validate_config(raise_errors=raise_errors))
        except ConfigValidationError as exc:
            errors = rewrite(exc.errors)
            raise ConfigValidationError(str(exc), errors=errors, schema=exc.schema) from None

    # -- STATE: emitted from the ledger, never past an unsettled record -------------------

    @override
    def _process_state_message(self, message_dict: dict) -> None:
        """Note the STATE in the ledger (not in the SDK's ``_latest_state``).

        The SDK would emit its latest STATE after each full drain, whatever was delivered;
        this target emits a STATE only once every record before it is settled.

        Args:
            message_dict: The STATE message.
        """
        self._assert_line_requires(message_dict, requires={"value"})
        self.runtime.ledger.note_state(message_dict["value"])
        self._emit_safe_state()

    @override
    def _process_record_message(self, message_dict: dict) -> None:
        """Process a record; after a drain it triggered, emit the STATE it made safe.

        Args:
            message_dict: The RECORD message.
        """
        super()._process_record_message(message_dict)
        self._emit_safe_state()

    @override
    def _handle_max_record_age(self) -> None:
        super()._handle_max_record_age()
        self._emit_safe_state()

    def _emit_safe_state(self) -> None:
        """Write the latest STATE whose records are all settled, if there is a new one.

        A signal arriving while the line is written waits until it is out (see
        _handle_termination).
        """
        if self.runtime.settings.dry_run:
            return  # nothing was delivered: a bookmark would skip these records next time
        state = self.runtime.ledger.take_safe_state()
        if state is None:
            return
        # Taken before the flush: every dead letter of a settled record is on disk before
        # the STATE that passes it.
        self.runtime.flush_dead_letters()
        self._emitting = True
        try:
            self._write_state_message(state)
        finally:
            self._emitting = False
        if self._pending_signal is not None:
            self._terminate(self._pending_signal)

    # -- stopping ----------------------------------------------------------------------

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        """On SIGTERM/SIGINT, exit at once (128 + signal number) without draining.

        The handler runs in the main thread between two of its bytecodes, wherever it was
        (possibly holding a lock), so it takes no lock and drains nothing: draining here
        could deadlock, and could only emit STATE for records settled meanwhile. Every
        STATE already written covers only settled records; the next run re-sends the rest
        (upserts are idempotent). Only a STATE line being written is let finish first.

        Args:
            signum: Signal number.
            frame: Current frame.
        """
        if self._emitting:
            self._pending_signal = signum
            return
        self._terminate(signum)

    def _terminate(self, signum: int) -> t.NoReturn:
        signal.signal(signum, signal.SIG_IGN)  # a second signal must not interrupt the exit
        runtime: Runtime | None = getattr(self, "runtime", None)
        if runtime is not None:
            runtime.abandon(signum)
        # Exit now: waiting for the pool's threads (as sys.exit would) could take minutes
        # of timeouts and retries after the orchestrator asked us to stop.
        os._exit(128 + signum)

    def listen(self, file_input: t.IO[str] | None = None) -> None:
        """Check credentials (``preflight``), read messages; on a fatal error, log the summary.

        The start-up check runs before the first line is read, so wrong credentials or a
        wrong ``api_base_url`` stop the run before anything is read or sent.

        The summary (which also shuts the request pool down) runs here, once every sink
        has stopped, not in the sink that failed: other sinks may still be using the pool.

        Args:
            file_input: Input stream (stdin by default).
        """
        try:
            if self.runtime.settings.preflight:
                self._preflight()
            super().listen(file_input)
        except InsiderError as exc:
            self.runtime.finish(status="failed", error=exc.message)
            raise
        except InvalidInputLine as exc:  # its message never holds the line's content
            self.runtime.finish(status="failed", error=str(exc))
            raise

    def _preflight(self) -> None:
        """Credentials before data: stop before reading input if Insider refuses them."""
        for warning in check_credentials(self.runtime.settings, self.runtime.client):
            self.logger.warning("Start-up check: %s", warning)
            self.runtime.stats.warn(warning)

    def process_endofpipe(self) -> None:
        """Drain everything, emit the last safe STATE, log the summary, pick the exit code.

        Raises:
            InsiderFatalError: Records were not delivered, or the dead-letter alert fired.
        """
        super().process_endofpipe()
        self._emit_safe_state()
        counts = self.runtime.stats.as_dict()
        settings = self.runtime.settings
        code = run_exit_code(
            undelivered=counts["records_undelivered"],
            dead_lettered=counts["records_dead_lettered"],
            received=counts["records_received"],
            max_dead_letters=settings.max_dead_letters,
            max_dead_letter_percent=settings.max_dead_letter_percent,
        )
        if code is ExitCode.OK:
            self.runtime.finish(status="succeeded")
            return
        if code is ExitCode.UNDELIVERED:
            status = "incomplete"
            message = (
                f"{counts['records_undelivered']} records were not delivered (see the "
                "summary); no STATE was emitted past the first of them, so the next run "
                "re-sends them"
            )
        else:
            status = "too_many_dead_letters"
            message = (
                f"{counts['records_dead_lettered']} of {counts['records_received']} records "
                "were dead-lettered, more than max_dead_letters / max_dead_letter_percent allow "
                f"(see {settings.dead_letter_path})"
            )
        self.runtime.finish(status=status, error=message)
        raise InsiderFatalError(message, exit_code=code)

    @classmethod
    @override
    def get_singer_command(cls) -> click.Command:
        """The SDK's command plus ``--preflight`` and ``--preview N`` (see operator_cli).

        Returns:
            The click command.
        """
        command = super().get_singer_command()
        command.params.extend(operator_options(cls))
        return command

    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: t.Any = None,
        file_input: t.IO[str] | None = None,
    ) -> None:
        """Run the target; a run that stopped or left records undelivered exits non-zero.

        The message is already logged (by listen or process_endofpipe); the exit codes
        are :class:`~target_insider_one.settlement.ExitCode`.

        Args:
            about: Display package metadata and settings.
            about_format: Format for ``--about``.
            config: Config input.
            file_input: Optional input file.
        """
        try:
            super().invoke(
                about=about, about_format=about_format, config=config, file_input=file_input
            )
        except InsiderError as exc:  # already logged, with the summary
            sys.exit(getattr(exc, "exit_code", ExitCode.STOPPED))
        except InvalidInputLine:  # already logged, with the summary, by listen()
            sys.exit(ExitCode.STOPPED)


if __name__ == "__main__":
    TargetInsiderOne.cli()
