"""Edge values planted by the generator (edge_values, edge_key_rows, edge_wire_garbage)."""

from __future__ import annotations

import json

import pytest
from api_sandbox import edge_values
from api_sandbox.fields import Field
from api_sandbox.generator import GeneratorParams, customers_fields, generate_rows
from hypothesis import given
from hypothesis import strategies as st

from .test_sfmc_soap import NS, call, deo_request, msg, rows_of, soap_envelope

EXTREME_WIRE = {"12/31/9999 11:59:59 PM", "1/1/0001 12:00:00 AM", "1/1/1753 12:00:00 AM"}


def all_items(rowset, key):
    body = rowset(key, pageSize=2500).json()
    return {it["keys"]["subscriberkey"]: it["values"] for it in body["items"]}


def test_edge_values_on_the_rest_wire(sandbox, rowset):
    sandbox.create_de("Edge", size=300, seed=5, params={"edge_values": 14})
    edge = sandbox.edge_rows("Edge")
    assert len(edge["values"]) == 14
    assert edge["replication_key"] == []
    items = all_items(rowset, "Edge")
    planted = [items[k] for k in edge["values"]]
    column = lambda name: {v[name] for v in planted}  # noqa: E731
    assert column("birthdate") >= EXTREME_WIRE
    assert {"2147483647", "-2147483648", "0", "-1", ""} <= column("loyaltypoints")
    assert "ctl\x00\x01\x08\x0b\x0c\x1b\x1f\x7fend" in column("firstname")
    assert "line\u2028para\u2029end" in column("firstname")
    assert " True" in column("city")
    assert edge_values.long_text(100) in column("lastname")  # the field's full length
    assert "9999999999.99" in column("lifetimevalue")  # Decimal(12, 2) at its limit
    assert not any(v["modifieddate"] in EXTREME_WIRE for v in planted)  # key untouched
    # every other row is exactly what the generator gives without edge values
    sandbox.create_de("Plain", size=300, seed=5)
    plain = all_items(rowset, "Plain")
    assert {k: v for k, v in items.items() if k not in edge["values"]} == {
        k: v for k, v in plain.items() if k not in edge["values"]
    }


def test_edge_dates_in_the_replication_key(sandbox, rowset):
    sandbox.create_de("Edge", size=300, seed=5, params={"edge_key_rows": 6})
    keys = sandbox.edge_rows("Edge")["replication_key"]
    assert len(keys) == 6
    items = all_items(rowset, "Edge")
    assert {items[k]["modifieddate"] for k in keys} == EXTREME_WIRE
    body = rowset("Edge", filter="ModifiedDate gte '9999-12-31T23:59:59'").json()
    assert sorted(it["keys"]["subscriberkey"] for it in body["items"]) == sorted(
        k for k in keys if items[k]["modifieddate"].startswith("12/31/9999")
    )
    typed = {r["SubscriberKey"]: r for r in sandbox.rows("Edge")}
    assert typed[keys[0]]["ModifiedDate"] == "9999-12-31T23:59:59-06:00"


def test_empty_replication_key_when_not_required(sandbox, rowset):
    fields = [
        {"name": "SubscriberKey", "is_primary_key": True},
        {"name": "ModifiedDate", "field_type": "Date"},
    ]
    sandbox.create_de("Opt", fields=fields, size=100, params={"edge_key_rows": 4})
    items = all_items(rowset, "Opt")
    keys = sandbox.edge_rows("Opt")["replication_key"]
    assert {items[k]["modifieddate"] for k in keys} == EXTREME_WIRE | {""}


def test_wire_garbage_in_typed_columns(sandbox, rowset):
    params = {"edge_values": 20, "edge_key_rows": 5, "edge_wire_garbage": True}
    sandbox.create_de("Junk", size=400, seed=2, params=params)
    edge = sandbox.edge_rows("Junk")
    items = all_items(rowset, "Junk")
    planted = [items[k] for k in edge["values"]]
    assert {"NaN", "1e309", "1.5"} & {v["loyaltypoints"] for v in planted}
    assert "2/30/2020 12:00:00 AM" in {v["birthdate"] for v in planted}
    assert "yes" in {v["emailoptin"] for v in planted}
    assert {"2/30/2020 12:00:00 AM", "0/0/0000 12:00:00 AM"} <= {
        items[k]["modifieddate"] for k in edge["replication_key"]
    }
    typed = sandbox.rows("Junk")  # the admin view shows raw values as sent
    assert any(r["LoyaltyPoints"] in {"NaN", "1e309", "1.5"} for r in typed)


def test_soap_sends_edge_values_and_references_xml_invalid_characters(sandbox, http, mint):
    sandbox.create_de("Edge", size=300, seed=5, params={"edge_values": 14, "edge_key_rows": 3})
    token = mint()
    props = ["SubscriberKey", "BirthDate", "LoyaltyPoints", "ModifiedDate"]
    _, root = call(sandbox, http, token, deo_request(props, name="Edge", batch=2500))
    assert msg(root).findtext("p:OverallStatus", namespaces=NS) == "OK"
    rows = {r["SubscriberKey"]: r for r in rows_of(root)}
    assert {rows[k]["BirthDate"] for k in sandbox.edge_rows("Edge")["values"]} >= EXTREME_WIRE
    raw = http.post(
        f"{sandbox.sfmc_url}/Service.asmx",
        data=soap_envelope(
            token, deo_request(["SubscriberKey", "FirstName"], name="Edge", batch=2500)
        ).encode(),
        headers={"Content-Type": "text/xml"},
        timeout=30,
    ).content
    assert b"ctl&#x0;&#x1;&#x8;&#xB;&#xC;&#x1B;&#x1F;\x7fend" in raw


def test_defaults_plant_nothing(sandbox):
    assert sandbox.edge_rows("Customers") == {"values": [], "replication_key": []}


@pytest.mark.parametrize("bad", [{"edge_values": -1}, {"edge_key_rows": -2}])
def test_negative_counts_rejected(bad):
    with pytest.raises(ValueError, match=">= 0"):
        GeneratorParams.from_json(bad)


@given(
    length=st.integers(min_value=1, max_value=5000),
    kind=st.sampled_from(["Text", "EmailAddress", "Phone", "Locale"]),
)
def test_text_catalogue_respects_max_length_and_is_json_safe(length, kind):
    field = Field("F", kind, max_length=length)
    values = edge_values.catalogue(field, wire_garbage=True)
    texts = [v for v in values if v is not None]
    assert all(len(v) <= length for v in texts)
    assert edge_values.long_text(length) in texts
    json.dumps(texts, ensure_ascii=False).encode("utf-8")  # no lone surrogates


@given(count=st.integers(min_value=0, max_value=3000), n=st.integers(min_value=0, max_value=50))
def test_offsets_are_distinct_and_in_range(count, n):
    out = edge_values.offsets(count, n)
    assert len(out) == min(n, count)
    assert all(0 <= o < count for o in out)


def test_required_columns_never_get_empty_edge_values():
    rows = list(generate_rows(customers_fields(), 50, 1, GeneratorParams(edge_key_rows=50)))
    assert all(r[-1] is not None for r in rows)


def test_demo_de_edge_values_from_the_cli(sandbox_factory):
    sb = sandbox_factory(
        rows=60,
        demo_params={"edge_values": 3, "edge_key_rows": 2},
        extra_args=["--commit-lag", "7"],
    )
    edge = sb.edge_rows("Customers")
    assert (len(edge["values"]), len(edge["replication_key"])) == (3, 2)
    assert sb.state()["config"]["commit_lag_seconds"] == 7
