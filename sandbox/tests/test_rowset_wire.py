"""Rowset reply bytes: the text-spliced rendering equals json.dumps of the per-row dicts.

Pages are rendered from each column's JSON text (``Field.wire_json``, ``item_texts``)
instead of building a dict per row for ``json.dumps``; the bytes on the wire must not
change. ``_reference_items`` is the rendering this replaced, kept verbatim as the oracle.
"""

from __future__ import annotations

import json
from typing import Any

from api_sandbox import sfmc_time
from api_sandbox.app import Sandbox
from api_sandbox.config import SandboxConfig
from api_sandbox.faults import FaultRule
from api_sandbox.fields import FIELD_TYPES, RAW_PREFIX, TEXT_TYPES, Field
from api_sandbox.sfmc_rowset import Page, item_texts
from api_sandbox.store import DataExtension
from hypothesis import given, settings
from hypothesis import strategies as st

# Text sqlite can hold (no lone surrogates) with what JSON must escape or keep as is.
TEXT = st.text(
    st.characters(blacklist_categories=["Cs"]) | st.sampled_from('"\\%\x00\x1f\x7f\u2028😀'),
    max_size=12,
)
NAMES = st.text(st.characters(blacklist_categories=["Cs"]) | st.sampled_from('%"\\sS'), min_size=1)
YEAR_1, YEAR_9999 = sfmc_time.parse_datetime("0001-01-01"), sfmc_time.parse_datetime("9999-12-31")


def _reference_items(de: DataExtension, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """The per-row dicts pages were dumped from before (the oracle)."""
    plan = [(i, f.name.lower(), f.is_primary_key, f.to_wire) for i, f in enumerate(de.fields)]
    keys_plan = [(i, n, w) for i, n, pk, w in plan if pk]
    vals_plan = [(i, n, w) for i, n, pk, w in plan if not pk]
    return [
        {
            "keys": {n: w(row[i]) for i, n, w in keys_plan},
            "values": {n: w(row[i]) for i, n, w in vals_plan},
        }
        for row in rows
    ]


def _dumped(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


@st.composite
def fields(draw: st.DrawFn) -> list[Field]:
    names = draw(st.lists(NAMES, min_size=1, max_size=6, unique_by=str.lower))
    out = []
    for n, name in enumerate(names):
        kind = draw(st.sampled_from(FIELD_TYPES))
        scale = draw(st.integers(0, 4)) if kind == "Decimal" else None
        pk = n == 0 and kind in {"Text", "Number"} and draw(st.booleans())
        out.append(
            Field(name, kind, is_primary_key=pk, scale=scale, max_length=18 if scale else None)
        )
    return out


def stored_value(draw: st.DrawFn, f: Field) -> Any:
    """Any value a stored column can hold, raw values planted in typed columns included."""
    kind = f.field_type
    if kind in TEXT_TYPES:
        return draw(st.none() | TEXT)
    raw = st.builds(lambda t: RAW_PREFIX + t, TEXT)
    typed = {
        "Number": st.integers(-(2**63), 2**63 - 1),
        "Boolean": st.sampled_from([0, 1]),
        "Date": st.integers(YEAR_1, YEAR_9999),
        "Decimal": st.integers(-(10**18) + 1, 10**18 - 1),
    }[kind]
    return draw(st.none() | typed | raw)


@st.composite
def des(draw: st.DrawFn) -> tuple[Sandbox, DataExtension]:
    """A sandbox holding one DE: explicit stored rows, or generated ones with edge values."""
    defs = draw(fields())
    app = Sandbox(SandboxConfig(), [])
    spec: dict[str, Any] = {"key": "Wire", "fields": [f.to_json() for f in defs]}
    if draw(st.booleans()):
        params = {"edge_values": draw(st.integers(0, 20)), "edge_wire_garbage": draw(st.booleans())}
        de = app.store.create_from_spec(
            {**spec, "size": draw(st.integers(0, 40)), "params": params}
        )
        return app, de
    de = app.store.create_from_spec({**spec, "rows": []})
    rows = [
        tuple(i if f.is_primary_key else stored_value(draw, f) for f in de.fields)
        for i in range(draw(st.integers(0, 12)))
    ]
    marks = ",".join("?" for _ in de.fields)
    app.store.conn.executemany(f"INSERT INTO {de.table} VALUES ({marks})", rows)  # noqa: S608
    return app, de


@settings(max_examples=150)
@given(des(), st.integers(1, 7), st.data())
def test_every_page_is_json_dumps_of_the_old_items(sandbox_de, size, data):
    app, de = sandbox_de
    query = {"$pageSize": str(size)}
    f = data.draw(st.sampled_from(de.fields))
    if f.name.split() == [f.name] and "," not in f.name and data.draw(st.booleans()):
        query["$orderBy"] = f"{f.name} {data.draw(st.sampled_from(['asc', 'desc']))}"
    first = app.rowset.by_key(de.key, query)
    tok = app.rowset.tokens[first.body["requestToken"]]
    pages = -(-first.body["count"] // size) + 1  # one past the end too
    for number in range(1, pages + 1):
        page = app.rowset.by_token(tok.token, {"$page": str(number)})
        rows = app.store.select(de, tok.flt, tok.order, size, (number - 1) * size)
        expected = {**page.body, "items": _reference_items(de, rows)} if rows else page.body
        assert page.wire() == _dumped(expected)


@settings(max_examples=100)
@given(des(), st.sampled_from(["empty_page", "long_page", "count_jump"]), st.data())
def test_distorted_pages_are_json_dumps_of_the_old_items(sandbox_de, action, data):
    app, de = sandbox_de
    page = app.rowset.by_key(de.key, {"$pageSize": "3"})
    rule = FaultRule(
        "rowset",
        action=action,
        empty_items=data.draw(st.sampled_from(["absent", "empty"])),
        extra_rows=data.draw(st.integers(1, 4)),
        count_delta=data.draw(st.integers(-3, 3)),
    )
    lied = app.rowset.distort(page, rule)
    # The old distort on dicts: the envelope's changes are the same code, the items were dicts.
    items = _reference_items(de, app.store.select(de, None, None, 3, 0)) or None
    if action == "empty_page":
        items = [] if rule.empty_items == "empty" else None
    elif action == "long_page":
        extra = app.rowset._neighbour_rows(page.body, rule.extra_rows)
        if extra:
            items = [*(items or []), *_reference_items(de, extra)]
    assert lied.wire() == _dumped(lied.body if items is None else {**lied.body, "items": items})


@given(st.dictionaries(TEXT, TEXT | st.integers(), min_size=1), st.none() | st.lists(TEXT))
def test_page_wire_splices_items_into_the_envelope(body, values):
    items = None if values is None else [json.dumps(v, ensure_ascii=False) for v in values]
    expected = body if values is None else {**body, "items": values}
    assert Page(body, items).wire() == _dumped(expected)


def test_a_percent_in_a_field_name_is_not_a_template_slot():
    app = Sandbox(SandboxConfig(), [])
    de = app.store.create_from_spec(
        {
            "key": "P",
            "fields": [{"name": "100%s", "is_primary_key": True}, {"name": "%d%%"}],
            "rows": [{"100%s": "a", "%d%%": "b"}],
        }
    )
    rows = app.store.select(de, None, None, 10, 0)
    assert [json.loads(t) for t in item_texts(de, rows)] == _reference_items(de, rows)
