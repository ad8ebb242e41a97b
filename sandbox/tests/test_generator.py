"""Deterministic generator: same seed same rows, realistic messiness, bulk blocks."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from api_sandbox.filters import parse_rest_filter, parse_rest_order
from api_sandbox.generator import GeneratorParams, customers_fields, generate_rows
from api_sandbox.store import Store

FIELDS = customers_fields()
NAMES = [f.name for f in FIELDS]


def rows(n, seed=42, **params):
    return [
        dict(zip(NAMES, r, strict=True))
        for r in generate_rows(FIELDS, n, seed, GeneratorParams(**params))
    ]


def test_deterministic_and_seed_sensitive():
    assert rows(500) == rows(500)
    assert rows(500) != rows(500, seed=43)
    # a prefix of a bigger DE equals the smaller DE, except for bulk-block placement
    assert [r["SubscriberKey"] for r in rows(50)] == [f"SK{i:08d}" for i in range(50)]


def test_messy_values():
    data = rows(20_000)
    emails = [r["EmailAddress"] for r in data]
    assert any(e is None for e in emails)
    bad = [e for e in emails if e and not re.match(r"^.+@.+\..+$", e)]
    assert 0.01 < len(bad) / len(emails) < 0.06
    phones = [r["Phone"] for r in data if r["Phone"]]
    assert any(p.startswith("+") for p in phones)
    assert any(p.startswith("00") for p in phones)
    assert any("(" in p for p in phones)
    assert any("ext" in p for p in phones)
    assert any(re.search(r"[A-Za-z]", p) and "ext" not in p for p in phones)
    names = {r["FirstName"] for r in data} | {r["LastName"] for r in data}
    assert {"Zoë", "Łukasz", "Şahin"} <= names
    assert any(r["BirthDate"] is None for r in data)
    assert all(len(r["Country"]) == 2 for r in data if r["Country"])
    assert {r["EmailOptIn"] for r in data} == {0, 1, None}


def test_bulk_blocks_share_one_modified_date():
    data = rows(20_000, bulk_block_size=3000, bulk_blocks=2)
    counts = Counter(r["ModifiedDate"] for r in data)
    top = counts.most_common(2)
    assert [c for _, c in top] == [3000, 3000]


def test_small_demo_has_one_bulk_block():
    counts = Counter(r["ModifiedDate"] for r in rows(5000))
    assert counts.most_common(1)[0][1] == 2000


def test_modified_range_param():
    data = rows(
        1000,
        modified_start="2020-01-01T00:00:00",
        modified_end="2020-01-02T00:00:00",
        bulk_blocks=0,
    )
    lo, hi = min(r["ModifiedDate"] for r in data), max(r["ModifiedDate"] for r in data)
    assert hi - lo <= 86400


@pytest.mark.slow
def test_one_million_rows_load_and_page():
    store = Store()
    de = store.create_from_spec({"key": "Customers", "size": 1_000_000, "seed": 42})
    assert store.count(de, None) == 1_000_000
    last = store.select(de, None, None, 2500, 997_500)
    assert len(last) == 2500
    assert last[-1][0] == "SK00999999"
    flt = parse_rest_filter("ModifiedDate gte '2025-01-01T00:00:00'", de.by_lower)
    order = parse_rest_order("ModifiedDate asc, SubscriberKey asc", de.by_lower)
    page = store.select(de, flt, order, 2500, 100_000)
    assert len(page) == 2500
    assert [r[11] for r in page] == sorted(r[11] for r in page)
