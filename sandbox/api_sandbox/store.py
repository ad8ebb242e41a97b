"""In-memory Data Extensions backed by sqlite.

SQL strings are built from internal table names (``de_N``) and positional column names
(``cN``) only; user values always travel as parameters, hence the file-wide S608 waiver.

sqlite gives filtering, ordering and LIMIT/OFFSET paging for free and copes with a
million rows. Default order is ``rowid`` (insertion order): an UPDATE keeps a row's
rowid, so updates never move rows, while inserts append and deletes shift offsets,
which is exactly what makes offset paging over a live table harsh.
"""

# ruff: noqa: S608
from __future__ import annotations

import contextlib
import itertools
import random
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from api_sandbox import edge_values, sfmc_time
from api_sandbox.config import DefaultOrder
from api_sandbox.fields import Field
from api_sandbox.filters import Filter, compile_sql
from api_sandbox.generator import (
    NUMBER_KEY_GAP,
    GeneratorParams,
    customers_fields,
    generate_rows,
)
from api_sandbox.page_orders import PageOrders

Order = list[tuple[Field, bool]]
# A shuffled order is ``(rowid * A + salt) mod P``: with P prime above any rowid this is
# a permutation (no ties), computed in SQL, and a new salt gives a new order.
_SHUFFLE_A = 2_654_435_761
_SHUFFLE_P = 4_294_967_311
_STABLE_ON_UPDATE = frozenset({"firstname", "lastname", "birthdate"})
# Counts remembered per (table, version, filter): a client paging by key URL asks the same
# count on every page, a full scan each time. Forgotten all at once when this many are held.
_COUNTS_KEPT = 256


def _change_record(stamped: int, lag_seconds: int, trigger: str) -> dict[str, Any]:
    """An empty change: committed now, rows stamped ``lag_seconds`` earlier."""
    return {
        "at": sfmc_time.format_iso(stamped + lag_seconds),
        "stamped": sfmc_time.format_iso(stamped),
        "lag_seconds": lag_seconds,
        "trigger": trigger,
        "updated": [],
        "inserted": [],
        "deleted": [],
    }


class StoreError(ValueError):
    """Invalid DE definition or rows (admin API answers 400)."""


@dataclass
class DataExtension:
    """One DE: its definition plus bookkeeping for generated inserts and changes."""

    key: str
    name: str
    fields: list[Field]
    table: str
    seed: int = 1
    params: GeneratorParams = field(default_factory=GeneratorParams)
    next_index: int = 0
    mutations: int = 0
    version: int = 0  # bumped on every change; lets pages reuse a cached count
    changes: list[dict[str, Any]] = field(default_factory=list)
    # Keys of generated rows holding edge values: {"values": [...], "replication_key": [...]}
    edge_rows: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def object_id(self) -> str:
        """Stable GUID, like ``customObjectId``."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox-de:{self.key}"))

    @property
    def by_lower(self) -> dict[str, Field]:
        """Fields by lowercased name (REST is case-insensitive)."""
        return {f.name.lower(): f for f in self.fields}

    @property
    def pk_fields(self) -> list[Field]:
        """Primary-key fields in definition order."""
        return [f for f in self.fields if f.is_primary_key]

    @property
    def modified_field(self) -> Field | None:
        """The column the sandbox stamps on change (``ModifiedDate`` if present)."""
        f = self.by_lower.get("modifieddate")
        return f if f is not None and f.field_type == "Date" else None

    def column_sql(self, f: Field) -> str:
        """Sqlite column name for a field (names are positional, not user-supplied)."""
        return f"c{self.fields.index(f)}"

    @property
    def select_list(self) -> str:
        """All columns in definition order."""
        return ", ".join(f"c{i}" for i in range(len(self.fields)))

    def describe(self) -> dict[str, Any]:
        """Admin JSON summary."""
        return {
            "key": self.key,
            "name": self.name,
            "object_id": self.object_id,
            "fields": [f.to_json() for f in self.fields],
        }


class Store:
    """All DEs in one in-memory sqlite database, guarded by one lock."""

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self.lock = threading.RLock()
        self.des: dict[str, DataExtension] = {}
        self._table_ids = itertools.count(1)
        self._counts: dict[tuple[Any, ...], int] = {}
        self._orders = PageOrders(self.conn)

    # -- definitions -------------------------------------------------------------
    def get(self, key: str, *, by_name: bool = False) -> DataExtension | None:
        """Find a DE by external key (case-insensitive), optionally also by name."""
        with self.lock:
            de = self.des.get(key.lower())
            if de is None and by_name:
                de = next((d for d in self.des.values() if d.name.lower() == key.lower()), None)
            return de

    def create_from_spec(self, spec: dict[str, Any]) -> DataExtension:
        """Create or replace a DE from an admin/config spec.

        Spec keys: ``key`` (required), ``name`` (defaults to key), ``fields`` (list; default
        the Customers definition), ``rows`` (explicit rows, list of objects) or
        ``size``/``seed``/``params`` for generated rows.

        Raises:
            StoreError: on an invalid spec.
        """
        de = self._new_de(spec)
        explicit = spec.get("rows") is not None
        with self.lock:
            self.drop(de.key)
            cols = ", ".join(f"c{i} {f.sql_type}" for i, f in enumerate(de.fields))
            self.conn.execute(f"CREATE TABLE {de.table} ({cols})")
            if explicit:
                rows = [self._row_from_json(de, r) for r in spec["rows"]]
                de.next_index = len(rows)
            else:
                size = int(spec.get("size", 0))
                rows = generate_rows(de.fields, size, de.seed, de.params)
                de.next_index = size
            marks = ",".join("?" for _ in de.fields)
            with self._transaction("cannot load rows", drop_table=de.table):
                self.conn.executemany(f"INSERT INTO {de.table} VALUES ({marks})", rows)
            self._index(de)
            if not explicit:
                de.edge_rows = self._edge_keys(de, size)
            self.des[de.key.lower()] = de
        return de

    def _new_de(self, spec: dict[str, Any]) -> DataExtension:
        """The definition a spec describes (no table yet).

        Raises:
            StoreError: on missing or invalid keys, or field names that clash.
        """
        try:
            key = str(spec["key"])
            fields = (
                [Field.from_json(f) for f in spec["fields"]]
                if spec.get("fields")
                else customers_fields()
            )
            params = GeneratorParams.from_json(spec.get("params"))
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"invalid DE spec: {exc}") from exc
        lowered = [f.name.lower() for f in fields]
        if len(set(lowered)) != len(lowered):
            raise StoreError("field names must be unique case-insensitively")
        return DataExtension(
            key=key,
            name=str(spec.get("name") or key),
            fields=fields,
            table=f"de_{next(self._table_ids)}",
            seed=int(spec.get("seed", 1)),
            params=params,
        )

    @contextlib.contextmanager
    def _transaction(self, failure: str, drop_table: str | None = None) -> Iterator[None]:
        """BEGIN ... COMMIT; on any error ROLLBACK (and drop a half-loaded table).

        The connection is shared: it must never be left mid-transaction.

        Raises:
            StoreError: for a sqlite error, prefixed with ``failure``.
        """
        self.conn.execute("BEGIN")
        try:
            yield
        except BaseException as exc:
            self.conn.execute("ROLLBACK")
            if drop_table is not None:
                self.conn.execute(f"DROP TABLE {drop_table}")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"{failure}: {exc}") from exc
            raise
        self.conn.execute("COMMIT")

    def _index(self, de: DataExtension) -> None:
        pks = [de.column_sql(f) for f in de.pk_fields]
        if pks:
            try:
                self.conn.execute(
                    f"CREATE UNIQUE INDEX {de.table}_pk ON {de.table} ({', '.join(pks)})"
                )
            except sqlite3.IntegrityError as exc:
                self.conn.execute(f"DROP TABLE {de.table}")
                raise StoreError(f"duplicate primary key: {exc}") from exc
        for f in de.fields:
            if f.field_type == "Date":
                # Incremental reads filter and sort on (date, primary key); the composite
                # index keeps deep OFFSET pages over a million rows fast.
                col = de.column_sql(f)
                cols = ", ".join([col, *pks])
                self.conn.execute(f"CREATE INDEX {de.table}_{col} ON {de.table} ({cols})")

    def _edge_keys(self, de: DataExtension, size: int) -> dict[str, list[Any]]:
        """Keys of the rows the generator planted edge values in.

        A fresh table's rowids are 1..n in generation order.
        """
        out: dict[str, list[Any]] = {}
        for name, n, phase in (
            ("values", de.params.edge_values, 0.0),
            ("replication_key", de.params.edge_key_rows if de.modified_field else 0, 0.5),
        ):
            out[name] = []
            for offset in edge_values.offsets(size, n, phase=phase):
                row = self.conn.execute(
                    f"SELECT {de.select_list} FROM {de.table} WHERE rowid = ?", (offset + 1,)
                ).fetchone()
                out[name].append(self.pk_of(de, row, offset + 1))
        return out

    def _row_from_json(self, de: DataExtension, row: dict[str, Any]) -> tuple[Any, ...]:
        lowered = {str(k).lower(): v for k, v in row.items()}
        unknown = set(lowered) - set(de.by_lower)
        if unknown:
            raise StoreError(f"unknown columns {sorted(unknown)}")
        try:
            return tuple(f.to_stored(lowered.get(f.name.lower())) for f in de.fields)
        except ValueError as exc:
            raise StoreError(str(exc)) from exc

    def drop(self, key: str) -> bool:
        """Remove a DE; returns whether it existed."""
        with self.lock:
            de = self.des.pop(key.lower(), None)
            if de is None:
                return False
            self.conn.execute(f"DROP TABLE IF EXISTS {de.table}")
            return True

    def clear(self) -> None:
        """Remove every DE and snapshot."""
        with self.lock:
            self._counts.clear()
            self._orders.clear()
            for key in list(self.des):
                self.drop(key)
            for (name,) in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'"
            ).fetchall():
                self.conn.execute(f"DROP TABLE {name}")

    # -- queries -----------------------------------------------------------------
    @staticmethod
    def _where(de: DataExtension, flt: Filter | None) -> tuple[str, list[Any]]:
        if flt is None:
            return "", []
        sql, params = compile_sql(flt, de.column_sql)
        return f" WHERE {sql}", params

    @staticmethod
    def order_salt(mode: str, de: DataExtension) -> int | None:
        """Salt for the ``default_order`` switch: None keeps insertion (rowid) order.

        ``random-stable`` derives it from the DE, so every request sees the same shuffle;
        ``reshuffled`` draws a new one per call, so every request (and page) differs.
        """
        if mode == DefaultOrder.RANDOM_STABLE:
            return random.Random(f"order:{de.key}:{de.seed}").randrange(_SHUFFLE_P)
        if mode == DefaultOrder.RESHUFFLED:
            return random.randrange(_SHUFFLE_P)
        return None

    @staticmethod
    def _order(de: DataExtension, order: Order | None, salt: int | None = None) -> str:
        terms = [f"{de.column_sql(f)} {'DESC' if desc else 'ASC'}" for f, desc in order or []]
        if salt is not None:
            # Breaks $orderBy ties too: SQL Server gives no order among equal keys either.
            terms.append(f"((rowid * {_SHUFFLE_A} + {int(salt)}) % {_SHUFFLE_P})")
        # rowid breaks ties so paging is deterministic; absent an order it *is* the order.
        return " ORDER BY " + ", ".join([*terms, "rowid"])

    def count(self, de: DataExtension, flt: Filter | None) -> int:
        """Number of rows matching ``flt``.

        Every change bumps ``de.version`` under this lock and a replaced DE gets a new
        table, so a count remembered for (table, version, filter) is the count now.
        """
        where, params = self._where(de, flt)
        key = (de.table, de.version, where, *params)
        with self.lock:
            count = self._counts.get(key)
            if count is None:
                sql = f"SELECT count(*) FROM {de.table}{where}"
                count = self.conn.execute(sql, params).fetchone()[0]
                if len(self._counts) >= _COUNTS_KEPT:
                    self._counts.clear()
                self._counts[key] = count
            return count

    def select(
        self,
        de: DataExtension,
        flt: Filter | None,
        order: Order | None,
        limit: int,
        offset: int,
        *,
        salt: int | None = None,
    ) -> list[tuple[Any, ...]]:
        """One page of stored rows (``salt``: see ``order_salt``)."""
        where, params = self._where(de, flt)
        order_sql = self._order(de, order, salt)
        sql = f"SELECT {de.select_list} FROM {de.table}{where}{order_sql} LIMIT ? OFFSET ?"
        with self.lock:
            query = (where, params, order_sql)
            rows = self._orders.page(de, query, limit, offset)
            if rows is not None:
                return rows
            return self.conn.execute(sql, [*params, limit, offset]).fetchall()

    def snapshot(
        self, de: DataExtension, flt: Filter | None, order: Order | None, salt: int | None = None
    ) -> str:
        """Copy the current result set into a table; returns its name."""
        where, params = self._where(de, flt)
        name = f"snap_{next(self._table_ids)}"
        with self.lock:
            self.conn.execute(
                f"CREATE TABLE {name} AS SELECT {de.select_list} FROM {de.table}{where}"
                f"{self._order(de, order, salt)}",
                params,
            )
        return name

    def snapshot_count(self, name: str) -> int:
        """Rows in a snapshot table."""
        with self.lock:
            return self.conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]

    def snapshot_page(self, name: str, limit: int, offset: int) -> list[tuple[Any, ...]]:
        """One page of a snapshot (its rowids are 1..n in result order)."""
        with self.lock:
            return self.conn.execute(
                f"SELECT * FROM {name} WHERE rowid > ? AND rowid <= ? ORDER BY rowid",
                (offset, offset + limit),
            ).fetchall()

    def drop_snapshot(self, name: str) -> None:
        """Forget a snapshot table."""
        with self.lock:
            self.conn.execute(f"DROP TABLE IF EXISTS {name}")

    def typed_rows(self, de: DataExtension, limit: int | None, offset: int) -> list[dict[str, Any]]:
        """Rows in insertion order as JSON-friendly typed values."""
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {de.select_list} FROM {de.table} ORDER BY rowid LIMIT ? OFFSET ?",
                (-1 if limit is None else limit, offset),
            ).fetchall()
        return [{f.name: f.to_typed(v) for f, v in zip(de.fields, r, strict=True)} for r in rows]

    # -- live changes --------------------------------------------------------------
    def pk_of(self, de: DataExtension, row: tuple[Any, ...], rowid: int) -> Any:
        """Primary key as the tap would see it (wire string, dict for compound keys)."""
        pks = de.pk_fields
        if not pks:
            return {"_rowid": rowid}
        values = {f.name: f.to_wire(row[de.fields.index(f)]) for f in pks}
        return next(iter(values.values())) if len(values) == 1 else values

    def mutate(
        self,
        de: DataExtension,
        update: int = 0,
        insert: int = 0,
        delete: int = 0,
        *,
        trigger: str = "admin",
        lag_seconds: int = 0,
    ) -> dict[str, Any]:
        """Update, insert and delete rows now; returns (and records) the change.

        Rows to update/delete are picked deterministically from the DE's seed and its
        mutation counter. Updated and inserted rows get ModifiedDate = sandbox now minus
        ``lag_seconds``: a writer that stamped its rows when it started and commits them
        only now (Automation Studio SQL activities and imports).
        """
        if lag_seconds < 0:
            raise StoreError("lag_seconds must be >= 0")
        with self.lock:
            de.mutations += 1
            rng = random.Random(f"{de.seed}:mutate:{de.mutations}")
            now = sfmc_time.now_system_seconds() - lag_seconds
            rowids = [r for (r,) in self.conn.execute(f"SELECT rowid FROM {de.table}")]
            picked = rng.sample(rowids, min(len(rowids), update + delete))
            to_update, to_delete = picked[:update], picked[update : update + delete]
            change = _change_record(now, lag_seconds, trigger)
            fresh = generate_rows(
                de.fields,
                len(to_update),
                de.seed,
                de.params,
                start_index=de.mutations,
                stream="update",
            )
            with self._transaction("mutation failed"):
                self._apply_updates(de, to_update, fresh, now, change)
                self._apply_deletes(de, to_delete, change)
                self._apply_inserts(de, insert, now, change)
                de.version += 1
            de.changes.append(change)
            return change

    def _apply_updates(
        self,
        de: DataExtension,
        rowids: list[int],
        fresh: Iterator[tuple[Any, ...]],
        now: int,
        change: dict[str, Any],
    ) -> None:
        # Identity-like columns stay: a real update rarely rewrites someone's email or
        # name, and rewriting them would merge unrelated profiles downstream.
        keep = {
            i
            for i, f in enumerate(de.fields)
            if f.is_primary_key
            or f.field_type in {"EmailAddress", "Phone"}
            or f.name.lower() in _STABLE_ON_UPDATE
        }
        mod = de.modified_field
        for rowid, new in zip(rowids, fresh, strict=True):
            old = self.conn.execute(
                f"SELECT {de.select_list} FROM {de.table} WHERE rowid = ?", (rowid,)
            ).fetchone()
            values = [o if i in keep else n for i, (o, n) in enumerate(zip(old, new, strict=True))]
            if mod is not None:
                values[de.fields.index(mod)] = now
            sets = ", ".join(f"c{i} = ?" for i in range(len(values)))
            self.conn.execute(f"UPDATE {de.table} SET {sets} WHERE rowid = ?", [*values, rowid])
            change["updated"].append(self.pk_of(de, tuple(values), rowid))

    def _mid_table_key(self, de: DataExtension, values: list[Any], attempt: int) -> None:
        """Give an insert a key that sorts right after a random existing key.

        Text keys get a ``.n`` suffix (``SK00000005.1`` sorts between ``SK00000005`` and
        ``SK00000006``); Number keys take a free value in the gaps the generator leaves
        (``insert_keys: mid`` spaces base keys ``NUMBER_KEY_GAP`` apart).
        """
        pk = next((f for f in de.pk_fields if f.field_type in {"Text", "Number"}), None)
        if pk is None:
            return
        col = de.column_sql(pk)
        rng = random.Random(f"{de.seed}:mid:{de.next_index}:{attempt}")
        total = self.conn.execute(f"SELECT count(*) FROM {de.table}").fetchone()[0]
        if total == 0:
            return
        (existing,) = self.conn.execute(
            f"SELECT {col} FROM {de.table} ORDER BY rowid LIMIT 1 OFFSET ?",
            (rng.randrange(total),),
        ).fetchone()
        pos = de.fields.index(pk)
        if pk.field_type == "Number":
            values[pos] = int(existing) + rng.randrange(1, NUMBER_KEY_GAP)
        else:
            values[pos] = f"{existing}.{de.next_index}"

    def _apply_deletes(self, de: DataExtension, rowids: list[int], change: dict[str, Any]) -> None:
        for rowid in rowids:
            old = self.conn.execute(
                f"SELECT {de.select_list} FROM {de.table} WHERE rowid = ?", (rowid,)
            ).fetchone()
            self.conn.execute(f"DELETE FROM {de.table} WHERE rowid = ?", (rowid,))
            change["deleted"].append(self.pk_of(de, old, rowid))

    def _apply_inserts(
        self, de: DataExtension, count: int, now: int, change: dict[str, Any]
    ) -> None:
        """Insert generated rows, skipping generator indexes whose key already exists."""
        marks = ",".join("?" for _ in de.fields)
        mod = de.modified_field
        inserted = 0
        attempts = 0
        while inserted < count:
            attempts += 1
            if attempts > count + 10_000:
                raise sqlite3.IntegrityError("cannot find free primary keys for inserts")
            (new,) = generate_rows(
                de.fields, 1, de.seed, de.params, start_index=de.next_index, stream="insert"
            )
            de.next_index += 1
            values = list(new)
            if de.params.insert_keys == "mid":
                self._mid_table_key(de, values, attempts)
            if mod is not None:
                values[de.fields.index(mod)] = now
            try:
                cur = self.conn.execute(f"INSERT INTO {de.table} VALUES ({marks})", values)
            except sqlite3.IntegrityError:
                continue  # key taken (explicit rows may use the generator's key pattern)
            change["inserted"].append(self.pk_of(de, tuple(values), cur.lastrowid or 0))
            inserted += 1
