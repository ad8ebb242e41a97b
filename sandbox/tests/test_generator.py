"""Deterministic generator: same seed same rows, realistic messiness, bulk blocks."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

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


def e164_owners(data):
    """Every E.164 number a row's phone could normalise to (GB, US or TR default region,
    00 read as +, extensions dropped), mapped to the indexes of the rows that give it.

    The "short" and "letters" shapes are left out: they repeat by design and can never
    become an identifier (too few digits for Insider; letters are rejected).
    """
    phonenumbers = pytest.importorskip("phonenumbers")
    owners = defaultdict(set)
    for index, row in enumerate(data):
        raw = row["Phone"]
        if raw is None:
            continue
        number_part = raw.split(" ext. ")[0]
        if len(re.sub(r"\D", "", number_part)) < 7 or re.search(r"[A-Za-z]", number_part):
            continue
        raw = re.sub(r"^00\s*", "+", raw)
        for region in ("GB", "US", "TR"):
            try:
                number = phonenumbers.parse(raw, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_possible_number(number):
                owners[phonenumbers.format_number(number, 0)].add(index)
    return owners


def test_identifiers_are_unique_per_row_by_construction():
    data = rows(10_000, shared_phone_rate=0.0)
    emails = [r["EmailAddress"] for r in data if r["EmailAddress"]]
    assert len(emails) == len(set(emails)), "bad emails too embed the row index"
    owners = e164_owners(data)
    assert len(owners) > 7000  # every shape but short/letters/null, in several regions
    assert all(len(rows_) == 1 for rows_ in owners.values())


def test_shared_phones_are_a_small_explicit_share_of_neighbours():
    data = rows(10_000)  # default shared_phone_rate=0.01
    shared = [i for i in range(1, len(data)) if data[i]["Phone"] == data[i - 1]["Phone"]]
    assert 50 < len(shared) < 150
    owners = e164_owners(data)
    merged = [sorted(rows_) for rows_ in owners.values() if len(rows_) > 1]
    assert merged
    # every merge comes from a run of consecutive rows that copied their neighbour
    assert all(r[-1] - r[0] == len(r) - 1 for r in merged)
    assert all(i in shared for r in merged for i in r[1:])


def test_phone_shapes_keep_their_rates():
    data = rows(20_000)
    phones = [r["Phone"] for r in data]
    share = Counter()
    for p in phones:
        if p is None:
            share["null"] += 1
        elif p.startswith("00 44"):
            share["double_zero"] += 1
        elif p.startswith("+49 (0)"):
            share["intl_spaced"] += 1
        elif p.startswith("+"):
            share["e164"] += 1
        elif p.startswith("020 "):
            share["gb_national"] += 1
        elif p.startswith("(202)"):
            share["us_national"] += 1
        elif "ext." in p:
            share["extension"] += 1
        elif p.startswith("0532 "):
            share["tr_national"] += 1
        elif p.isdigit():
            share["short"] += 1
        else:
            share["letters"] += 1
    expected = {"e164": 40, "gb_national": 12, "us_national": 10, "intl_spaced": 8,
                "double_zero": 8, "extension": 6, "tr_national": 4, "short": 4, "letters": 3,
                "null": 5}  # fmt: skip
    for kind, weight in expected.items():
        assert abs(share[kind] / len(phones) - weight / 100) < 0.01, kind


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
