"""Deep pages looked up by rowid (page_orders.py) are the rows OFFSET paging returns."""

from __future__ import annotations

from typing import Any

from api_sandbox.app import Sandbox
from api_sandbox.config import SandboxConfig
from api_sandbox.store import DataExtension, Store
from hypothesis import given, settings
from hypothesis import strategies as st

from .test_rowset_wire import des


def _offset_page(store: Store, de: DataExtension, query: tuple[str, list[Any], str], limit, offset):
    """The OFFSET query every page ran before (the oracle)."""
    where, params, order_sql = query
    sql = f"SELECT {de.select_list} FROM {de.table}{where}{order_sql} LIMIT ? OFFSET ?"  # noqa: S608
    return store.conn.execute(sql, [*params, limit, offset]).fetchall()


@settings(max_examples=100)
@given(des(), st.integers(1, 5), st.data())
def test_pages_by_rowid_equal_offset_pages_across_changes(sandbox_de, size, data):
    app, de = sandbox_de
    store = app.store
    order = [(f, data.draw(st.booleans())) for f in data.draw(st.lists(st.sampled_from(de.fields)))]
    salt = data.draw(st.none() | st.integers(0, 2**32))
    flt = None
    query = (*store._where(de, flt), store._order(de, order, salt))
    for _ in range(data.draw(st.integers(1, 3))):
        total = store.count(de, flt)
        for _pass in range(3):  # the second sighting builds the order, the third reuses it
            for offset in range(0, total + size, size):
                got = store.select(de, flt, order, size, offset, salt=salt)
                assert got == _offset_page(store, de, query, size, offset)
        if de.pk_fields and de.pk_fields[0].field_type == "Text":
            store.mutate(de, update=1, insert=1, delete=1)
        else:
            store.mutate(de, update=1, delete=1)


def test_a_query_paged_twice_keeps_its_order_until_the_de_changes():
    app = Sandbox(SandboxConfig(), [{"key": "C", "size": 30, "seed": 3}])
    de = app.store.get("C")
    for _ in range(2):
        app.store.select(de, None, None, 10, 10)
    assert len(app.store._orders._orders) == 1
    app.store.mutate(de, delete=1)  # a new version: the kept order is not used
    assert app.store.select(de, None, None, 10, 10) == _offset_page(
        app.store, de, ("", [], " ORDER BY rowid"), 10, 10
    )
