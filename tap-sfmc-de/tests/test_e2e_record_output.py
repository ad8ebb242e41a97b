"""End-to-end: RECORDs written straight from the typed record mean what the SDK path writes.

The tap writes RECORD lines itself when nothing reshapes the records (singer_writer.py,
``DataExtensionStream._write_record_message``). The same edge-value DE read through the
SDK's record path (pruning, ``conform_record_data_types``, stream maps, ``RecordMessage``),
with the SDK's json writer or with stream maps configured, gives the same records.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from singer_sdk.singerlib.encoding import SimpleSingerWriter
from tap_sfmc_de.tap import TapSfmcDe
from tap_sfmc_de_testkit import run_tap

pytestmark = pytest.mark.e2e

FIELDS = [
    {"name": "SubscriberKey", "field_type": "Text", "is_primary_key": True, "max_length": 100},
    {"name": "EmailAddress", "field_type": "EmailAddress"},
    {"name": "Phone", "field_type": "Phone"},
    {"name": "Notes", "field_type": "Text", "max_length": 100_000},
    {"name": "BirthDate", "field_type": "Date"},
    {"name": "LoyaltyPoints", "field_type": "Number"},
    {"name": "LifetimeValue", "field_type": "Decimal", "max_length": 12, "scale": 2},
    {"name": "EmailOptIn", "field_type": "Boolean"},
    {"name": "ModifiedDate", "field_type": "Date", "is_required": True},
]


def typed(records):
    """Records with each value's JSON type (True is not 1), read with exact decimals."""
    return [{k: (type(v).__name__, v) for k, v in r.items()} for r in records]


def read(lines):
    messages = [json.loads(line, parse_float=Decimal) for line in lines if line.strip()]
    return [m["record"] for m in messages if m["type"] == "RECORD"]


@pytest.fixture
def edges(sandbox):
    sandbox.create_de(
        "Edges", fields=FIELDS, size=60, seed=5,
        params={"edge_values": 20, "edge_wire_garbage": True},
    )  # fmt: skip
    return sandbox.tap_config(data_extension_keys=["Edges"], filter_support="client")


def test_direct_records_are_the_sdk_json_writers_records(
    edges, tmp_path, capsysbinary, monkeypatch
):
    direct = run_tap(edges, tmp_path / "direct")
    assert direct.returncode == 0, direct.stderr[-3000:]
    monkeypatch.setattr(TapSfmcDe, "message_writer_class", SimpleSingerWriter)
    TapSfmcDe(config=edges).sync_all()
    sdk = read(capsysbinary.readouterr().out.decode("utf-8").split("\n"))
    assert len(direct.records) == 60
    assert typed(read(direct.stdout.split("\n"))) == typed(sdk)


def test_stream_maps_still_reshape_records(edges, tmp_path):
    direct = run_tap(edges, tmp_path / "direct")
    maps = {"de_edges": {"Notes": None, "Key": "SubscriberKey"}}
    mapped = run_tap({**edges, "stream_maps": maps}, tmp_path / "mapped")
    assert mapped.returncode == 0, mapped.stderr[-3000:]
    assert "records go through the SDK's record path" in mapped.stderr
    expected = [
        {**{k: v for k, v in r.items() if k != "Notes"}, "Key": r["SubscriberKey"]}
        for r in read(direct.stdout.split("\n"))
    ]
    assert typed(read(mapped.stdout.split("\n"))) == typed(expected)


def test_a_deselected_property_is_still_left_out(edges, tmp_path):
    discovered = run_tap(edges, tmp_path / "discover", args=("--discover",))
    catalog = json.loads(discovered.stdout)
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == ["properties", "Notes"]:
                meta["metadata"]["selected"] = False
    (tmp_path / "catalog.json").write_text(json.dumps(catalog), encoding="utf-8")
    run = run_tap(edges, tmp_path / "run", args=("--catalog", str(tmp_path / "catalog.json")))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "records go through the SDK's record path" in run.stderr
    assert len(run.records) == 60
    assert all("Notes" not in r and "SubscriberKey" in r for r in run.records)
