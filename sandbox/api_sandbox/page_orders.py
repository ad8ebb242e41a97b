"""Deep pages by rowid: a query paged past its first page has its result order kept.

sqlite answers ``ORDER BY ... LIMIT n OFFSET k`` by walking (and filtering) the first k
rows again for every page, so the 50 pages of a 125,000-row DE cost from 1 ms to 40 ms
each, as much on average as writing the page. A query asked twice at an offset above 0
(a client paging through it; a ``reshuffled`` order never repeats) gets its whole result
order computed once, and its later pages are looked up by rowid. The rows and their order
are the same: the key holds the DE's table and version, which every change bumps under
the store's lock, held by the caller.
"""

from __future__ import annotations

import json
import sqlite3
from array import array
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from api_sandbox.store import DataExtension

# Result orders kept (8 bytes a row each) and queries remembered as seen once.
_ORDERS_KEPT = 4
_SEEN_KEPT = 256


class PageOrders:
    """Result orders of the queries being paged, by (table, version, where, params, order)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._orders: dict[tuple[Any, ...], array[int]] = {}
        self._seen: set[tuple[Any, ...]] = set()
        try:
            conn.execute("SELECT value FROM json_each('[1]')").fetchall()
            self.enabled = True
        except sqlite3.OperationalError:  # an sqlite built without JSON: OFFSET it is
            self.enabled = False

    def clear(self) -> None:
        """Forget every order (the tables are gone)."""
        self._orders.clear()
        self._seen.clear()

    def page(
        self, de: DataExtension, query: tuple[str, list[Any], str], limit: int, offset: int
    ) -> list[tuple[Any, ...]] | None:
        """The page's rows, or None when the caller should run the OFFSET query.

        Args:
            de: The DE (its table and version now).
            query: The query's WHERE clause (with its leading space, or ""), its
                parameters and its ORDER BY clause.
            limit: Page size.
            offset: Rows before the page.
        """
        if not self.enabled or offset <= 0:
            return None
        where, params, order_sql = query
        table = de.table
        key = (table, de.version, where, order_sql, *params)
        ids = self._orders.get(key)
        if ids is None:
            if key not in self._seen:
                if len(self._seen) >= _SEEN_KEPT:
                    self._seen.clear()
                self._seen.add(key)
                return None
            sql = f"SELECT rowid FROM {table}{where}{order_sql}"  # noqa: S608 - internal names
            ids = array("q", (rowid for (rowid,) in self.conn.execute(sql, params)))
            if len(self._orders) >= _ORDERS_KEPT:
                self._orders.pop(next(iter(self._orders)))
            self._orders[key] = ids
        wanted = json.dumps(ids[offset : offset + limit].tolist())
        qualified = ", ".join(f"t.c{i}" for i in range(len(de.fields)))
        return self.conn.execute(
            f"SELECT {qualified} FROM json_each(?) AS j JOIN {table} AS t"  # noqa: S608
            " ON t.rowid = j.value ORDER BY j.key",
            (wanted,),
        ).fetchall()
