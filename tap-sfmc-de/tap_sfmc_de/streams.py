"""``DataExtensionStream``: one stream per DE, paged by :mod:`tap_sfmc_de.windows`.

The SDK's own bookmark logic (progress markers, signposts) is switched off for this
stream: the window algorithm owns ``replication_key_value`` and ``window`` in the stream
state and writes STATE at page boundaries, after the page's records were emitted.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from singer_sdk.helpers._util import utc_now
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib.catalog import REPLICATION_FULL_TABLE
from singer_sdk.streams import Stream
from typing_extensions import override

from tap_sfmc_de.config_schema import FetchMode
from tap_sfmc_de.errors import ValueConversionError
from tap_sfmc_de.full_pass_version import STATE_KEY as VERSION_KEY
from tap_sfmc_de.full_pass_version import pass_version, with_version
from tap_sfmc_de.progress import ProgressLog
from tap_sfmc_de.rowset import RowsetClient
from tap_sfmc_de.schema import DEField, build_schema, key_properties, stream_name_for_key
from tap_sfmc_de.singer_writer import SingerWriter
from tap_sfmc_de.values import (
    ConversionProblemError,
    DateColumn,
    FieldConverter,
    is_beyond_utc,
    to_text,
)
from tap_sfmc_de.windows import SyncPlan, WindowSync, identity_digest, row_identity

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context, Record

    from tap_sfmc_de.auth import TokenManager
    from tap_sfmc_de.client import HttpClient
    from tap_sfmc_de.settings import Settings

MAX_DETAILED_WARNINGS = 5
END_OF_TIME = "(end-of-time date)"  # counter key of replication-key values beyond UTC
OWNED_STATE_KEYS = ("replication_key_value", "window", "recent", "capabilities", VERSION_KEY)


class DataExtensionStream(Stream):
    """Rows of one SFMC Data Extension."""

    @override
    def __init__(
        self,
        tap: Tap,
        *,
        de_key: str,
        fields: list[DEField],
        settings: Settings,
        http: HttpClient,
        tokens: TokenManager,
    ) -> None:
        """Build the stream from the DE's field metadata.

        Args:
            tap: The tap.
            de_key: DE external key (CustomerKey).
            fields: Field metadata from SOAP.
            settings: Validated settings.
            http: Shared HTTP client.
            tokens: Shared token manager.
        """
        self.de_key = de_key
        self.fields = fields
        self.settings = settings
        self.http = http
        self.tokens = tokens
        super().__init__(tap, schema=build_schema(fields), name=stream_name_for_key(de_key))
        self.primary_keys = key_properties(fields)
        self.incremental = settings.fetch_mode == FetchMode.INCREMENTAL
        self.rk_name = (
            _canonical(fields, settings.replication_key_for(de_key)) if self.incremental else None
        )
        self.replication_key = self.rk_name
        self._converters = {
            f.name.lower(): FieldConverter(f.name, f.kind, settings.timezone) for f in fields
        }
        # Column name as REST sends it (lowercase) -> (field name, its text converter).
        self._columns = {raw: (c.name, c.from_text) for raw, c in self._converters.items()}
        self._strict = {f.name.lower() for f in fields if f.is_primary_key}
        # The replication key's column parses its values for the window, then converts
        # them for the record from that parse (DateColumn keeps the last one).
        rk_column = self._converters.get((self.rk_name or "").lower())
        self._rk_dates = (rk_column and rk_column.dates) or DateColumn(settings.timezone)
        if self.rk_name:
            self._strict.add(self.rk_name.lower())
        self._problems: Counter[str] = Counter()
        self._unknown_columns: set[str] = set()
        # Set when the sync starts (catalog and stream maps known): the writer records go
        # to directly, or None for the SDK's record path.
        self._direct_writer: SingerWriter | None = None
        self._time_extracted = ""  # per page: when its rows were read

    @property
    @override
    def emit_activate_version_messages(self) -> bool:
        """False for the SDK: it would send one at every run's start (full_pass_version.py)."""
        return False

    @override
    def generate_child_contexts(
        self, record: Record, context: Context | None
    ) -> Iterable[Context | None]:
        """No child contexts without child streams (a DE stream has none).

        The SDK would evaluate the stream map's filter for every record to sync no children.

        Args:
            record: The record.
            context: The stream's context.

        Returns:
            The child contexts.
        """
        if not self.child_streams:
            return ()
        return super().generate_child_contexts(record, context)

    @override
    def _write_record_message(self, record: Record) -> None:
        """Write the RECORD straight from the typed record when nothing reshapes it.

        The SDK's record path prunes deselected properties, conforms every value to the
        schema, runs the stream maps and builds a message object per record. Our
        converters already emit exactly the schema's types (str, int, Decimal, bool,
        None; ``conform_record_data_types`` returns them unchanged), so when every
        property is selected, no stream map or flattening is configured and the catalog's
        schema is the discovered one, that path would hand the record on as is. Otherwise
        (``stream_maps``, ``flattening_enabled``, deselected properties, a changed
        schema) the SDK's own path runs, unchanged.

        Args:
            record: A typed record from :meth:`get_records`.
        """
        if self._direct_writer is None:
            super()._write_record_message(record)
            return
        message: dict[str, Any] = {"type": "RECORD", "stream": self.name, "record": record}
        if self._stream_version is not None:
            message["version"] = self._stream_version
        message["time_extracted"] = self._time_extracted
        self._direct_writer.write_record(message)
        self.state_manager.is_flushed = False

    def _choose_record_path(self) -> None:
        writer = self._tap.message_writer
        if isinstance(writer, SingerWriter) and self._records_pass_through():
            self._direct_writer = writer
            return
        self._direct_writer = None
        self.logger.info(
            "%s: stream maps, flattening, a deselected property or a changed schema: "
            "records go through the SDK's record path",
            self.name,
        )

    def _records_pass_through(self) -> bool:
        """Whether the SDK's record path would leave our records as they are."""
        maps = self.stream_maps
        return (
            len(maps) == 1
            and type(maps[0]) is SameRecordTransform
            and not maps[0].flattening_enabled
            and maps[0].stream_alias == self.name
            and self.effective_schema["properties"] == self.schema["properties"]
            and all(self.mask.get(("properties", name), True) for name in self.schema["properties"])
        )

    # The window algorithm owns the bookmark; keep the SDK's bookkeeping out of the way.
    @override
    def _increment_stream_state(
        self, latest_record: Record, *, context: Context | None = None
    ) -> None:
        """No-op: bookmarks are advanced per completed window, not per record."""

    @override
    def get_replication_key_signpost(self, context: Context | None) -> None:
        """No signpost: the window's upper bound plays that role.

        Args:
            context: Unused.
        """
        return

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Run the window algorithm, emitting STATE after each page's records.

        Args:
            context: Unused (no partitions).

        Yields:
            Typed records.
        """
        single_pk = self.primary_keys[0] if len(self.primary_keys) == 1 else None
        plan = SyncPlan(
            incremental=self._incremental_run(),
            replication_key=self.rk_name,
            order_by=f"{single_pk} asc" if single_pk else None,
            page_size=self.settings.page_size,
            max_pages=self.settings.max_pages_per_run,
            filter_support=self.settings.filter_support,
            start_date=self.settings.start_date,
            tz=self.settings.timezone,
            clock_margin_seconds=self.settings.clock_margin_seconds,
            lookback_seconds=self.settings.lookback_seconds,
            page_concurrency=self.settings.page_concurrency,
        )
        state = self._usable_state()
        engine = WindowSync(
            rowset=RowsetClient(self.http, self.tokens, self.de_key),
            plan=plan,
            replication_value=self._replication_value,
            convert=self._convert,
            state=state,
            logger=self.logger,
        )
        versioned = not plan.incremental and self.settings.emit_activate_version_messages
        # Read by the SDK for every RECORD message's "version".
        self._stream_version = pass_version(state) if versioned else None
        progress = ProgressLog(self.logger, self.name, self.settings.max_pages_per_run)
        self._choose_record_path()
        try:
            for batch in engine.run():
                self._time_extracted = utc_now().isoformat()
                yield from batch.records
                progress.note(len(batch.records), engine.reader.total)
                if self._stream_version is not None and batch.window_complete:
                    # Before the STATE that closes the pass: a rerun after a kill sends it again.
                    self._write_activate_version_message(self._stream_version)
                if batch.state is not None and self._stream_version is not None:
                    with_version(batch.state, self._stream_version)
                if batch.state is not None:
                    self._save_state(batch.state)
        finally:
            writer = self._tap.message_writer
            if isinstance(writer, SingerWriter):  # the records a failure left in the buffer
                writer.flush()
        self._report(engine)

    def _incremental_run(self) -> bool:
        """fetch_mode, unless the catalog forces FULL_TABLE (Meltano ``replication-method``)."""
        if self.forced_replication_method == REPLICATION_FULL_TABLE and self.incremental:
            self.logger.info(
                "%s: the catalog sets replication-method FULL_TABLE; reading every row "
                "(as fetch_mode: full)",
                self.name,
            )
            return False
        return self.incremental

    def _usable_state(self) -> dict[str, Any]:
        state = dict(self.stream_state)
        previous = state.get("replication_key")
        if self.rk_name and previous and previous.lower() != self.rk_name.lower():
            self.logger.warning(
                "%s: replication key changed from %s to %s; starting this stream afresh",
                self.name, previous, self.rk_name,
            )  # fmt: skip
            return {}
        return state

    def _save_state(self, owned: Mapping[str, Any]) -> None:
        state = self.stream_state
        for key in OWNED_STATE_KEYS:
            state.pop(key, None)
        state.update(owned)
        if self.rk_name:
            state["replication_key"] = self.rk_name
        self.state_manager.is_flushed = False
        self._write_state_message()

    def _report(self, engine: WindowSync) -> None:
        s = engine.stats
        self.logger.info(
            "%s: emitted %d rows from %d data pages (+%d probe requests, %d step-backs, "
            "%d windows completed, mode=%s); skipped %d outside the window, %d with no %s, "
            "%d duplicates, %d already emitted (lookback)",
            self.name, s.emitted, s.data_pages, s.probe_requests, s.step_backs,
            s.windows_completed, s.mode or "-", s.outside_window, s.null_replication_key,
            self.rk_name or "replication key", s.duplicates, s.already_emitted,
        )  # fmt: skip
        if s.null_replication_key and self.incremental:
            self.logger.warning(
                "%d rows have an empty %s and are never emitted in incremental mode; have every "
                "writer set it, or use fetch_mode full", s.null_replication_key, self.rk_name,
            )  # fmt: skip
        end_of_time = self._problems.pop(END_OF_TIME, 0)
        if end_of_time:
            self.logger.warning(
                "%s: %d rows have a %s later than UTC can hold and were not emitted",
                self.name, end_of_time, self.rk_name,
            )  # fmt: skip
        for field_name, count in sorted(self._problems.items()):
            self.logger.warning(
                "%s: %d values of %s could not be converted and were set to null",
                self.name,
                count,
                field_name,
            )

    def _row_key(self, item: Mapping[str, Any]) -> str:
        # The key may itself be personal data (an email address): messages carry a digest
        # (the one state's "boundary" uses); the key itself is logged at DEBUG only.
        digest = identity_digest(row_identity(item))
        self.logger.debug("%s: key digest %s is row %r", self.name, digest, item.get("keys"))
        return f"key digest {digest}"

    def _replication_value(self, item: Mapping[str, Any]) -> dt.datetime | None:
        name = (self.rk_name or "").lower()
        raw = (item.get("values") or {}).get(name)
        if raw is None:
            raw = (item.get("keys") or {}).get(name)
        if not raw:
            return None
        try:
            value = self._rk_dates.parse(raw)
        except ConversionProblemError as exc:
            raise self._fatal(item, self.rk_name or name, exc) from None
        if is_beyond_utc(value):
            self._end_of_time(item)
        return value

    def _end_of_time(self, item: Mapping[str, Any]) -> None:
        # An end-of-time sentinel (12/31/9999 11:59:59 PM) lies after every window, which
        # ends at the server clock, so the row is never emitted; the bookmark is a window
        # bound, never a row's value, so it cannot be pushed to 9999. Failing instead
        # would block the whole stream until someone edits the row.
        self._problems[END_OF_TIME] += 1
        if self._problems[END_OF_TIME] <= MAX_DETAILED_WARNINGS:
            self.logger.warning(
                "%s: row [%s] field %s: a date later than UTC can hold (an end-of-time value?); "
                "the row lies after every window and is not emitted in incremental mode: set "
                "%s to the row's modification time, or use fetch_mode full",
                self.name, self._row_key(item), self.rk_name, self.rk_name,
            )  # fmt: skip

    def _fatal(
        self, item: Mapping[str, Any], field_name: str, exc: Exception
    ) -> ValueConversionError:
        return ValueConversionError(
            f"{self.name}: row [{self._row_key(item)}] field {field_name}: {exc}. This is a key "
            "or replication-key field, so the sync stops rather than emit a corrupt record: fix "
            "the value in the DE (run with TAP_SFMC_DE_LOGLEVEL=DEBUG to log which row has this "
            "key digest) or check sfmc_timezone_offset."
        )

    def _convert(self, item: Mapping[str, Any]) -> dict[str, Any]:
        # The per-value loop of every row: one lookup and one call per value (the
        # converter's own checks inlined), the rest in _convert_odd.
        record: dict[str, Any] = {}
        columns = self._columns
        for part in (item.get("keys"), item.get("values")):
            if not part:
                continue
            for raw_name, raw in part.items():
                column = columns.get(raw_name)  # REST's names are lowercase
                if column is None or raw.__class__ is not str or not raw:
                    self._convert_odd(item, record, raw_name, raw)
                    continue
                name, from_text = column
                if from_text is to_text and raw.isascii():  # most values: text, kept as is
                    record[name] = raw
                    continue
                try:
                    record[name] = from_text(raw)
                except ConversionProblemError as exc:
                    record[name] = self._bad_value(item, name, exc)
        return record

    def _convert_odd(
        self, item: Mapping[str, Any], record: dict[str, Any], raw_name: str, raw: Any
    ) -> None:
        """A value _convert's loop does not take: a column not in lowercase, NULL, not text."""
        converter = self._converters.get(raw_name) or self._converters.get(raw_name.lower())
        if converter is None:
            self._unknown(raw_name)
            return
        try:
            record[converter.name] = converter.convert(raw)
        except ConversionProblemError as exc:
            record[converter.name] = self._bad_value(item, converter.name, exc)

    def _bad_value(self, item: Mapping[str, Any], field_name: str, exc: Exception) -> None:
        """Null for a value that does not convert; a key or replication key stops the sync.

        Raises:
            ValueConversionError: For a key or replication-key field.
        """
        if field_name.lower() in self._strict:
            raise self._fatal(item, field_name, exc) from None
        self._problem(item, field_name, exc)

    def _problem(self, item: Mapping[str, Any], field_name: str, exc: Exception) -> None:
        self._problems[field_name] += 1
        if self._problems[field_name] <= MAX_DETAILED_WARNINGS:
            self.logger.warning(
                "%s: row [%s] field %s: %s; emitted as null",
                self.name,
                self._row_key(item),
                field_name,
                exc,
            )

    def _unknown(self, raw_name: str) -> None:
        if raw_name not in self._unknown_columns:
            self._unknown_columns.add(raw_name)
            self.logger.warning(
                "%s: column %r is not in the discovered schema and is dropped; refresh the catalog",
                self.name, raw_name,
            )  # fmt: skip


def _canonical(fields: list[DEField], name: str) -> str:
    """The field's own spelling of a case-insensitively configured name (used in $filter).

    Args:
        fields: The DE's fields.
        name: Configured name.

    Returns:
        The field name as SFMC defines it (or the configured name if absent).
    """
    return next((f.name for f in fields if f.name.lower() == name.lower()), name)
