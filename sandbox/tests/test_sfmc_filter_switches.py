"""Rowset switches for the unknowns of sfmc-api.md §2.3/§2.5: filter grammar, date
literals, default row order."""

from __future__ import annotations

import pytest

from .test_sfmc_rowset import small_de


def ids(body):
    return [int(it["keys"]["id"]) for it in body.get("items", [])]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("Id eq '1' or Id eq '7'", [1, 7]),
        ("Id gt '2' and Id lt '5' or Id eq '7'", [3, 4, 7]),  # and binds tighter than or
        ("Id gt '2' and (Id lt '5' or Id eq '7')", [3, 4, 7]),
        ("(Id lt '3' or Id gt '5') and Id ne '7'", [1, 2, 6]),
        ("not Id gt '2'", [1, 2]),
        ("not (Id gt '2' and Id lt '7')", [1, 2, 7]),
        ("not not Id eq '3'", [3]),
        ("((Id eq '4'))", [4]),
        ("Id ge '6' OR Id le '1'", [1, 6, 7]),
        ("NOT Id neq '5'", [5]),
    ],
)
def test_full_grammar(sandbox, rowset, expression, expected):
    small_de(sandbox)
    body = rowset("Small", filter=expression).json()
    assert ids(body) == expected
    assert body["count"] == len(expected)


@pytest.mark.parametrize("expression", ["Id eq '1' or Id eq '7'", "not Id eq '1'", "(Id eq '1')"])
def test_and_only_grammar_rejects_the_rest(sandbox, rowset, expression):
    small_de(sandbox)
    sandbox.configure(filter_grammar="and-only")
    resp = rowset("Small", filter=expression)
    assert resp.status_code == 400
    assert resp.json()["errorcode"] == 10001
    assert set(resp.json()) == {"message", "errorcode", "documentation"}
    assert ids(rowset("Small", filter="Id gt '2' and Id lt '5'").json()) == [3, 4]


def test_or_is_not_confused_with_a_quoted_value(sandbox, rowset):
    small_de(sandbox)
    body = rowset("Small", filter="Label eq 'or' or Id eq '2'").json()
    assert ids(body) == [2]


# Small's When = 2024-01-{i} 10:00:00 stored as SFMC time (UTC-6), i.e. 16:00 UTC.
DATE_CASES = {
    # literal: (ids for utc-6, ids for utc, ids for iso-only or None for 400)
    "1/5/2024 10:00:00 AM": ([5, 6, 7], [5, 6, 7], None),
    "1/5/2024 12:00:00 PM": ([6, 7], [5, 6, 7], None),
    "2024-01-05T10:00:00": ([5, 6, 7], [5, 6, 7], [5, 6, 7]),
    "2024-01-05T12:00:00": ([6, 7], [5, 6, 7], [6, 7]),
    "2024-01-05T16:00:00": ([6, 7], [5, 6, 7], [6, 7]),
    "2024-01-05T16:00:00Z": ([5, 6, 7], [5, 6, 7], [5, 6, 7]),
    "2024-01-05T11:00:00-05:00": ([5, 6, 7], [5, 6, 7], [5, 6, 7]),
    "2024-01-05T10:00:00-06:00": ([5, 6, 7], [5, 6, 7], [5, 6, 7]),
}


@pytest.mark.parametrize("mode", ["utc-6", "utc", "iso-only"])
@pytest.mark.parametrize("literal", list(DATE_CASES))
def test_date_literal_switch(sandbox, rowset, mode, literal):
    small_de(sandbox)
    sandbox.configure(filter_date_literal=mode)
    expected = DATE_CASES[literal][("utc-6", "utc", "iso-only").index(mode)]
    resp = rowset("Small", filter=f"When gte '{literal}'")
    if expected is None:
        assert resp.status_code == 400
        assert resp.json()["errorcode"] == 10001
        assert "ISO 8601" in resp.json()["message"]
    else:
        assert resp.status_code == 200, resp.text
        assert ids(resp.json()) == expected


def _keys(rowset, **params):
    first = rowset(pageSize=40, **params).json()
    keys = [it["keys"]["subscriberkey"] for it in first["items"]]
    body = rowset(path=first["links"]["next"]).json()
    return keys + [it["keys"]["subscriberkey"] for it in body["items"]]


@pytest.mark.parametrize("mode", ["insertion", "random-stable", "reshuffled"])
def test_default_order_switch(sandbox, rowset, mode):
    sandbox.configure(default_order=mode)
    once, twice = _keys(rowset), _keys(rowset)
    insertion = [f"SK{i:08d}" for i in range(80)]
    if mode == "insertion":
        assert once == twice == insertion
    elif mode == "random-stable":
        assert once == twice
        assert once != insertion
        assert len(set(once)) == 80
    else:
        assert once != twice
        assert once != insertion


@pytest.mark.parametrize("mode", ["random-stable", "reshuffled"])
def test_default_order_applies_when_orderby_is_ignored_not_when_honoured(sandbox, rowset, mode):
    small_de(sandbox)
    sandbox.configure(default_order=mode)
    assert ids(rowset("Small", orderBy="Id asc").json()) == list(range(1, 8))
    sandbox.configure(orderby_mode="ignored")
    seen = [ids(rowset("Small", orderBy="Id asc").json()) for _ in range(8)]
    assert all(sorted(s) == list(range(1, 8)) for s in seen)
    assert any(s != list(range(1, 8)) for s in seen)


def test_random_stable_order_is_a_permutation_across_pages(sandbox, rowset):
    sandbox.configure(default_order="random-stable")
    first = rowset(pageSize=2500).json()
    second = rowset(path=first["links"]["next"]).json()
    keys = [it["keys"]["subscriberkey"] for it in first["items"] + second["items"]]
    assert sorted(keys) == [f"SK{i:08d}" for i in range(5000)]
