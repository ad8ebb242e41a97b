"""target-insider-one: upserts Singer records into Insider One as user profiles."""

from __future__ import annotations

import copy
import logging
import os
import re
import signal
import sys
import typing as t

from singer_sdk import Sink, Target
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import PluginCapabilities, TargetCapabilities
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib.exceptions import InvalidInputLine
from typing_extensions import override

from target_insider_one.client import InsiderError
from target_insider_one.config_schema import CONFIG_SCHEMA
from target_insider_one.field_check import unknown_settings
from target_insider_one.garbage_collection import collect_less_often
from target_insider_one.mapping import UserMapper
from target_insider_one.operator_cli import operator_options
from target_insider_one.phone_pool import PhonePrefetch, phone_fields
from target_insider_one.preflight import check_credentials
from target_insider_one.progress import ProgressLog
from target_insider_one.reader import RedactingSingerReader
from target_insider_one.runtime import InsiderFatalError, Runtime
from target_insider_one.settings import IDENTIFIER_MAPPINGS_REQUIRED, parse_settings
from target_insider_one.settlement import ExitCode, RunStatus, run_exit_code
from target_insider_one.sinks import InsiderUpsertSink
from target_insider_one.text_numbers import numbers_from_text
from target_insider_one.values import InvalidValueError

if t.TYPE_CHECKING:
    from types import FrameType

    import click
    from singer_sdk.helpers.capabilities import CapabilitiesEnum

__all__ = ["CONFIG_SCHEMA", "TargetInsiderOne"]

_SCHEMA_ERROR_HINTS = {"'identifier_mappings' is a required property": IDENTIFIER_MAPPINGS_REQUIRED}
_REQUIRED = re.compile(r"'([a-z_]+)' is a required property")


def _where_to_set(error: str) -> str:
    """A missing setting's message, with the environment variable that sets it."""
    missing = _REQUIRED.fullmatch(error)
    if missing is None:
        return error
    name = missing.group(1)
    variable = f"TARGET_INSIDER_ONE_{name.upper()}"
    return f"{error}: set {variable} (environment or .env), or {name} in meltano.yml"


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

    @override
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
        self.phones = PhonePrefetch(settings.phone, phone_fields(settings))
        self._plain_sinks: dict[str, Sink] = {}
        self._progress = ProgressLog(self.logger, self.runtime.stats)
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

    @override
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
        numbers_from_text(self._config, self.config_jsonschema["properties"])

        def rewrite(errors: list[str]) -> list[str]:
            errors = [_SCHEMA_ERROR_HINTS.get(e) or _where_to_set(e) for e in errors]
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
        this target emits a STATE only once every record before it is settled. A STATE
        behind records held for the phone worker is held in line with them (no drain).

        Args:
            message_dict: The STATE message.
        """
        self._assert_line_requires(message_dict, requires={"value"})
        self._process_ready(self.phones.add(message_dict))

    def _note_state(self, message_dict: dict) -> None:
        """Note a STATE after the records before it, without waiting for any delivery.

        The STATE it makes safe goes out after the record whose processing finds it
        settled (or at the end), and the main thread keeps reading meanwhile. An earlier
        STATE that became safe goes out before this one is noted.
        """
        self._emit_safe_state()
        self.runtime.ledger.note_state(message_dict["value"])
        self._emit_safe_state()

    @override
    def _process_record_message(self, message_dict: dict) -> None:
        """Process a record, or hold it while the phone worker normalises its chunk.

        Args:
            message_dict: The RECORD message.
        """
        self._process_ready(self.phones.add(message_dict))

    def _process_ready(self, messages: list[dict]) -> None:
        """Process RECORD and STATE messages released by the phone prefetch, in order."""
        for message in messages:
            if message.get("type") == "STATE":
                self._note_state(message)
            else:
                self._process_one_record(message)

    def _process_one_record(self, message_dict: dict) -> None:
        """Process a record; after a drain it triggered, emit the STATE it made safe."""
        sink = self._plain_sink(message_dict)
        if sink is None:
            super()._process_record_message(message_dict)
        else:
            self._process_plain_record(sink, message_dict["record"])
        self._emit_safe_state()
        self._progress.tick()

    def _plain_sink(self, message_dict: dict) -> Sink | None:
        """The sink of a record the SDK would pass through unchanged, else None.

        That is the common case: no stream map or flattening for the stream, no ``_sdc``
        metadata to add, a dict record for an existing sink. Anything else (and every
        error, e.g. a record for a stream without a SCHEMA) goes the SDK's own way.
        """
        stream = message_dict.get("stream")
        maps = self.mapper.stream_maps.get(stream) if isinstance(stream, str) else None
        if not maps or len(maps) != 1 or type(message_dict.get("record")) is not dict:
            return None
        stream_map = maps[0]
        if type(stream_map) is not SameRecordTransform or stream_map.stream_alias != stream:
            return None
        sink = self._sinks_active.get(stream)
        if sink is None or sink is not self._plain_sinks.get(stream):
            if sink is None or not _is_plain(sink, stream_map):
                return None
            self._plain_sinks[stream] = sink
        return sink

    def _process_plain_record(self, sink: Sink, record: dict) -> None:
        """The SDK's record handling (``Target._process_record_message``) for a plain sink.

        Same steps, without the per-record map loop, copy and no-op hooks, which were a
        fifth of the target's CPU time. ``test_sdk_seams`` fails if the SDK's steps change.
        """
        context = sink._get_context(record)
        sink._remove_sdc_metadata_from_record(record)
        sink._validate_and_parse(record)
        sink._singer_validate_message(record)
        sink.tally_record_read()
        sink.process_record(record, context)
        sink.record_counter_metric.increment()
        if sink.is_full:
            self.logger.info(
                "Target sink for '%s' is full. Current size is '%s'. Draining...",
                sink.stream_name,
                sink.current_size,
            )
            self.drain_one(sink)
        # The SDK's _handle_max_record_age without its call when nothing is old enough (the
        # caller emits the safe STATE after every record anyway).
        if self._max_record_age_in_minutes > self._MAX_RECORD_AGE_IN_MINUTES:
            self._handle_max_record_age()

    def _process_held_records(self) -> None:
        """Process the messages held for the phone worker: any other message comes after."""
        self._process_ready(self.phones.drain())

    @override
    def _process_schema_message(self, message_dict: dict) -> None:
        self._process_held_records()
        super()._process_schema_message(message_dict)

    @override
    def _process_activate_version_message(self, message_dict: dict) -> None:
        self._process_held_records()
        super()._process_activate_version_message(message_dict)

    @override
    def _process_batch_message(self, message_dict: dict) -> None:
        """Stop the run at a BATCH message: this target does not take them.

        The SDK would read the BATCH's files and hand their records to ``process_batch``
        outside the record path: never mapped, counted, opened in the ledger or sent, while
        the STATE after them went out. The target does not advertise the ``batch``
        capability, so a tap should not send one; if it does, the run stops before any
        later STATE (the records before it are delivered or re-sent next run as usual).

        Raises:
            InsiderFatalError: Always.
        """
        self._process_held_records()
        stream = message_dict.get("stream")
        raise InsiderFatalError(
            f"A BATCH message arrived for stream {stream!r}, and target-insider-one takes "
            "records only as RECORD messages (it does not advertise the 'batch' capability): "
            "remove the tap's batch_config so it sends RECORD messages. Nothing in the batch "
            "was sent and no STATE after it was emitted.",
            exit_code=ExitCode.STOPPED,
        )

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

    @override
    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
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

    @override
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
            self.runtime.finish(status=RunStatus.FAILED, error=exc.message)
            raise
        except InvalidInputLine as exc:  # its message never holds the line's content
            self.runtime.finish(status=RunStatus.FAILED, error=str(exc))
            raise
        finally:
            self.phones.close()

    def _preflight(self) -> None:
        """Credentials before data: stop before reading input if Insider refuses them."""
        for warning in check_credentials(self.runtime.settings, self.runtime.client):
            self.logger.warning("Start-up check: %s", warning)
            self.runtime.stats.warn(warning)

    @override
    def process_endofpipe(self) -> None:
        """Drain everything, emit the last safe STATE, log the summary, pick the exit code.

        Raises:
            InsiderFatalError: Records were not delivered, or the dead-letter alert fired.
        """
        self._process_held_records()
        self.phones.close()
        super().process_endofpipe()
        self.runtime.wait_for_delivery()
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
            self.runtime.finish(status=RunStatus.SUCCEEDED)
            return
        if code is ExitCode.UNDELIVERED:
            status = RunStatus.INCOMPLETE
            message = (
                f"{counts['records_undelivered']} records were not delivered (see the "
                "summary); no STATE was emitted past the first of them, so the next run "
                "re-sends them"
            )
        else:
            status = RunStatus.TOO_MANY_DEAD_LETTERS
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
    @override
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
        collect_less_often()
        try:
            super().invoke(
                about=about, about_format=about_format, config=config, file_input=file_input
            )
        except InsiderError as exc:  # already logged, with the summary
            sys.exit(getattr(exc, "exit_code", ExitCode.STOPPED))
        except InvalidInputLine:  # already logged, with the summary, by listen()
            sys.exit(ExitCode.STOPPED)


def _is_plain(sink: Sink, stream_map: SameRecordTransform) -> bool:
    """Whether the SDK would only validate and hand over this sink's records."""
    return (
        not stream_map.flattening_enabled
        and not sink.include_sdc_metadata_properties
        and type(sink).preprocess_record is Sink.preprocess_record
        and type(sink)._after_process_record is Sink._after_process_record
        and not sink.logger.isEnabledFor(logging.DEBUG)  # the SDK logs each record at DEBUG
    )


if __name__ == "__main__":
    TargetInsiderOne.cli()
