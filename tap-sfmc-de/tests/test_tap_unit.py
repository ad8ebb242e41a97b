"""The tap in-process against requests-mock: discovery, typed records, errors, no secrets."""

import datetime as dt
import json
import logging
import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tap_sfmc_de.errors import SfmcApiError, SfmcConfigError, ValueConversionError
from tap_sfmc_de.tap import TapSfmcDe
from tap_sfmc_de.values import ConversionProblemError
from tap_sfmc_de.windows import identity_digest, row_identity
from tap_sfmc_de_testkit import (
    ACCESS_TOKEN,
    AUTH,
    CLIENT_SECRET,
    DEFAULT_FIELDS,
    PAST,
    SOAP,
    fields_xml,
    token_json,
)


def about():
    with pytest.raises(SystemExit):
        TapSfmcDe.cli.main(["--about", "--format=json"], standalone_mode=False)


def messages(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def sync(config, capsys):
    TapSfmcDe(config=config, setup_mapper=True).sync_all()
    return messages(capsys.readouterr().out)


def test_discovery_builds_one_stream_per_key(sfmc, config):
    tap = TapSfmcDe(config=config)
    catalog = tap.catalog_dict["streams"]
    assert [s["tap_stream_id"] for s in catalog] == ["de_customers"]
    entry = catalog[0]
    assert entry["key_properties"] == ["Id"]
    assert entry["replication_key"] == "ModifiedDate"
    assert list(entry["schema"]["properties"]) == [f[0] for f in DEFAULT_FIELDS]


def test_records_are_typed_and_state_is_written_per_page(sfmc, fake_de, config, capsys):
    fake_de.put("a", PAST, points="42", amount="12.50", optin="True", email="")
    fake_de.put(
        "b", PAST + dt.timedelta(hours=1), points="", amount="0.10", optin="False", email="x@y"
    )
    fake_de.put("c", PAST, points="1", amount="1", optin="1", email="")
    out = sync(config, capsys)
    records = [m["record"] for m in out if m["type"] == "RECORD"]
    assert records[0] == {
        "Id": "a",
        "ModifiedDate": "2024-05-07T21:00:00+00:00",
        "Points": 42,
        "Amount": 12.50,
        "OptIn": True,
        "Email": None,
    }
    assert records[1]["Points"] is None
    states = [m["value"] for m in out if m["type"] == "STATE"]
    bookmark = states[-1]["bookmarks"]["de_customers"]
    assert bookmark["replication_key"] == "ModifiedDate"
    assert bookmark["replication_key_value"].endswith("+00:00")
    assert "window" not in bookmark


def test_decimals_keep_their_digits(sfmc, fake_de, config, capsys):
    fake_de.put("a", PAST, amount="12345678901.23")
    out = TapSfmcDe(config=config)
    stream = out.streams["de_customers"]
    record = stream._convert({"keys": {"id": "a"}, "values": {"amount": "12345678901.23"}})
    assert record["Amount"] == Decimal("12345678901.23")
    raw = next(line for line in _sync_raw(config, capsys) if '"RECORD"' in line)
    assert '"Amount":12345678901.23' in raw


def _sync_raw(config, capsys):
    TapSfmcDe(config=config).sync_all()
    return capsys.readouterr().out.splitlines()


def test_unparsable_value_becomes_null_with_a_warning(sfmc, fake_de, config, capsys, caplog):
    fake_de.put("row-7", PAST, points="lots", amount="1")
    with caplog.at_level(logging.WARNING):
        out = sync(config, capsys)
    record = next(m["record"] for m in out if m["type"] == "RECORD")
    assert record["Points"] is None
    assert record["Amount"] == 1
    text = caplog.text
    digest = key_digest("row-7")
    assert f"row [key digest {digest}] field Points: expected a whole number; emitted as null" in (
        text
    )
    assert "lots" not in text  # raw values are never logged
    assert "row-7" not in text  # nor the key: it may be an email address


def test_unparsable_replication_key_fails_with_row_and_field(sfmc, fake_de, config, capsys):
    fake_de.put("row-9", PAST)
    fake_de.rows["row-9"]["modifieddate"] = "not a date"
    fake_de.filter_honoured = False
    with pytest.raises(ValueConversionError) as info:
        sync(config, capsys)
    message = str(info.value)
    assert f"row [key digest {key_digest('row-9')}] field ModifiedDate" in message
    assert "fix the value in the DE" in message
    assert "row-9" not in message


def key_digest(pk):
    return identity_digest(row_identity({"keys": {"id": pk}}))


WITH_VALID_UNTIL = [*DEFAULT_FIELDS, ("ValidUntil", "Date", "false", "", "0")]
END_OF_TIME = "12/31/9999 11:59:59 PM"


def test_end_of_time_in_a_date_column_is_null_with_a_warning(sfmc, fake_de, config, capsys, caplog):
    sfmc.post(f"{SOAP}Service.asmx", text=fields_xml(WITH_VALID_UNTIL))
    fake_de.put("alice@example.com", PAST, validuntil=END_OF_TIME, points="3")
    fake_de.put("bob@example.com", PAST, validuntil="1/2/2030 3:04:05 PM")
    with caplog.at_level(logging.INFO):
        out = sync(config, capsys)
    records = {m["record"]["Id"]: m["record"] for m in out if m["type"] == "RECORD"}
    assert records["alice@example.com"]["ValidUntil"] is None
    assert records["alice@example.com"]["Points"] == 3
    assert records["bob@example.com"]["ValidUntil"] == "2030-01-02T21:04:05+00:00"
    text = caplog.text
    assert f"row [key digest {key_digest('alice@example.com')}] field ValidUntil" in text
    assert "1 values of ValidUntil could not be converted" in text
    assert "alice" not in text
    assert END_OF_TIME not in text


@pytest.mark.parametrize("filter_honoured", [True, False])
def test_end_of_time_replication_key_is_skipped_with_a_warning_and_keeps_the_bookmark(
    sfmc, fake_de, config, capsys, caplog, *, filter_honoured
):
    fake_de.filter_honoured = filter_honoured
    # A budget for the whole client-side scan: with the fixture's 5 requests the run ends
    # (backlog kept) before it reaches the row, and there is nothing to warn about yet.
    config["max_pages_per_run"] = 20
    fake_de.put("a", PAST)
    fake_de.put("forever", PAST)
    fake_de.rows["forever"]["modifieddate"] = END_OF_TIME
    fake_de.put("b", PAST)
    with caplog.at_level(logging.INFO):
        out = sync(config, capsys)
    assert sorted(m["record"]["Id"] for m in out if m["type"] == "RECORD") == ["a", "b"]
    bookmark = [m for m in out if m["type"] == "STATE"][-1]["value"]["bookmarks"]["de_customers"]
    # Every date the bookmark holds comes from the server clock, never from the row's date
    # (in client mode the window may still be open after this run, so look at it too).
    window = bookmark.get("window") or {}
    dates = [bookmark.get("replication_key_value"), window.get("lower"), window.get("upper")]
    assert any(dates)
    assert all(d < "2025" for d in dates if d)
    if not filter_honoured:  # only a client-side scan sees the row at all
        text = caplog.text
        assert f"row [key digest {key_digest('forever')}] field ModifiedDate" in text
        assert "not emitted in incremental mode" in text
        assert "forever" not in text
    # and the next run is not blocked by it
    TapSfmcDe(config=config, state={"bookmarks": {"de_customers": bookmark}}).sync_all()
    assert [m for m in messages(capsys.readouterr().out) if m["type"] == "RECORD"] == []


def test_end_of_time_in_full_mode_delivers_the_row(sfmc, fake_de, config, capsys):
    config["fetch_mode"] = "full"
    fake_de.put("forever", PAST)
    fake_de.rows["forever"]["modifieddate"] = END_OF_TIME
    out = sync(config, capsys)
    records = [m["record"] for m in out if m["type"] == "RECORD"]
    assert [(r["Id"], r["ModifiedDate"]) for r in records] == [("forever", None)]


def test_end_of_time_in_the_primary_key_fails_with_the_fix(sfmc, fake_de, config, capsys):
    sfmc.post(
        f"{SOAP}Service.asmx",
        text=fields_xml(
            [("Id", "Date", "true", "", "0"), ("ModifiedDate", "Date", "false", "", "0")]
        ),
    )
    fake_de.put(END_OF_TIME, PAST)
    with pytest.raises(ValueConversionError, match="fix the value in the DE") as info:
        sync(config, capsys)
    assert "years 1-9999 in UTC" in str(info.value)
    assert END_OF_TIME not in str(info.value)


def test_missing_replication_key_fails_discovery(sfmc, config):
    sfmc.post(f"{SOAP}Service.asmx", text=fields_xml([("Id", "Text", "true", "50", "0")]))
    with pytest.raises(SfmcConfigError, match="add a Date field 'ModifiedDate'"):
        TapSfmcDe(config=config).streams  # noqa: B018


def test_replication_key_must_be_a_date(sfmc, config):
    sfmc.post(
        f"{SOAP}Service.asmx",
        text=fields_xml(
            [("Id", "Text", "true", "50", "0"), ("ModifiedDate", "Text", "false", "", "0")]
        ),
    )
    with pytest.raises(SfmcConfigError, match="is Text, not Date") as info:
        TapSfmcDe(config=config).streams  # noqa: B018
    # The field exists, so "add a Date field ModifiedDate" would be impossible advice.
    assert "add a Date field" not in str(info.value)
    assert "replication_keys_by_de" in str(info.value)


def test_full_mode_needs_no_replication_key(sfmc, fake_de, config, capsys):
    sfmc.post(f"{SOAP}Service.asmx", text=fields_xml([("Id", "Text", "true", "50", "0")]))
    config["fetch_mode"] = "full"
    fake_de.put("a", PAST)
    tap = TapSfmcDe(config=config)
    assert tap.catalog_dict["streams"][0].get("replication_key") is None


def test_unknown_key_fails_discovery_with_the_fix(sfmc, config):
    sfmc.post(f"{SOAP}Service.asmx", text=fields_xml([]))
    with pytest.raises(SfmcConfigError, match=r"external key \(CustomerKey\), not the DE name"):
        TapSfmcDe(config=config).streams  # noqa: B018


def test_soap_token_expired_remints_once(sfmc, config):
    fault = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        "<soap:Fault><faultcode>q0:Security</faultcode><faultstring>Token Expired</faultstring>"
        "</soap:Fault></soap:Body></soap:Envelope>"
    )
    soap = sfmc.post(
        f"{SOAP}Service.asmx", [{"status_code": 500, "text": fault}, {"text": fields_xml()}]
    )
    TapSfmcDe(config=config).streams  # noqa: B018
    token_calls = [r for r in sfmc.request_history if r.path == "/v2/token"]
    assert len(token_calls) == 2
    assert soap.call_count == 2


def test_stream_name_collision_is_refused(sfmc, config):
    config["data_extension_keys"] = ["My-DE", "my_de"]
    with pytest.raises(SfmcConfigError, match="both map to stream de_my_de"):
        TapSfmcDe(config=config).streams  # noqa: B018


def test_no_secrets_in_any_output(sfmc, fake_de, config, capsys, caplog):
    fake_de.put("a", PAST, points="x")
    with caplog.at_level(logging.DEBUG):
        TapSfmcDe(config=config).sync_all()
        about()
    out = capsys.readouterr()
    everything = out.out + out.err + caplog.text
    assert CLIENT_SECRET not in everything
    assert ACCESS_TOKEN not in everything
    assert "s3cr3t" not in everything


def test_about_marks_secrets(capsys):
    about()
    about_json = json.loads(capsys.readouterr().out)
    props = about_json["settings"]["properties"]
    assert props["client_secret"]["secret"] is True
    assert props["refresh_token"]["secret"] is True
    assert {"catalog", "discover", "state", "about", "stream-maps", "schema-flattening"} <= set(
        about_json["capabilities"]
    )


def test_state_from_another_replication_key_is_not_reused(sfmc, fake_de, config, capsys):
    fake_de.put("a", PAST)
    state = {
        "bookmarks": {
            "de_customers": {
                "replication_key": "JoinDate",
                "replication_key_value": "2999-01-01T00:00:00+00:00",
            }
        }
    }
    TapSfmcDe(config=config, state=state).sync_all()
    out = messages(capsys.readouterr().out)
    assert [m["record"]["Id"] for m in out if m["type"] == "RECORD"] == ["a"]
    final = [m for m in out if m["type"] == "STATE"][-1]["value"]["bookmarks"]["de_customers"]
    assert final["replication_key"] == "ModifiedDate"
    assert final["replication_key_value"] < "2999"


def test_bookmark_state_resumes_without_repeating(sfmc, fake_de, config, capsys):
    fake_de.put("a", PAST)
    first = sync(config, capsys)
    state = [m for m in first if m["type"] == "STATE"][-1]["value"]
    TapSfmcDe(config=config, state=state).sync_all()
    again = messages(capsys.readouterr().out)
    assert [m for m in again if m["type"] == "RECORD"] == []


def test_soap_error_status_is_reported(sfmc, config):
    xml = fields_xml().replace(
        "<OverallStatus>OK</OverallStatus>",
        "<OverallStatus>Error: API Permission Failed</OverallStatus>",
    )
    sfmc.post(f"{SOAP}Service.asmx", text=xml)
    with pytest.raises(SfmcApiError, match="API Permission Failed"):
        TapSfmcDe(config=config).streams  # noqa: B018


def test_rowset_without_count_fails_loudly(sfmc, config, capsys):
    sfmc.get(re.compile(r".*/rowset.*"), json={"items": [{"keys": {"id": "a"}, "values": {}}]})
    with pytest.raises(SfmcApiError, match="no integer 'count'"):
        sync(config, capsys)


def test_token_without_data_extensions_read_fails_discovery(sfmc, config):
    sfmc.post(f"{AUTH}v2/token", json=token_json(scope="offline list_and_subscribers_read"))
    with pytest.raises(SfmcApiError, match="data_extensions_read"):
        TapSfmcDe(config=config).streams  # noqa: B018


def test_catalog_full_table_is_honoured_like_fetch_mode_full(sfmc, fake_de, config, capsys):
    """Meltano ``metadata: {de_customers: {replication-method: FULL_TABLE}}`` lands here."""
    fake_de.put("a", PAST)
    first = sync(config, capsys)
    state = [m for m in first if m["type"] == "STATE"][-1]["value"]
    catalog = TapSfmcDe(config=config).catalog_dict
    # What Meltano's catalog rules write (meltano.core.plugin.singer.catalog.MetadataRule):
    # the key as given on the breadcrumb [] metadata, underscored on the stream itself.
    catalog["streams"][0]["replication_method"] = "FULL_TABLE"
    for entry in catalog["streams"][0]["metadata"]:
        if entry["breadcrumb"] == []:
            entry["metadata"]["replication-method"] = "FULL_TABLE"
    for _ in range(2):  # every run reads every row again, whatever the bookmark says
        TapSfmcDe(config=config, catalog=catalog, state=state).sync_all()
        out = messages(capsys.readouterr().out)
        assert [m["record"]["Id"] for m in out if m["type"] == "RECORD"] == ["a"]
        state = [m for m in out if m["type"] == "STATE"][-1]["value"]
    assert not any("2998" in (r["filter"] or "") for r in fake_de.requests[-2:])


# --- _convert's per-value fast path gives what each column's converter gives -------------
HOSTILE_TEXT = (
    st.text(max_size=12)
    | st.text(st.sampled_from(["a", "\u00e9", "\ud800", "\udfff", "\x00", "\x85", "\u2028"]))
    | st.from_regex(r"-?[0-9\u0660-\u0669]{1,45}(\.[0-9]{0,40})?(e-?[0-9]{1,9})?", fullmatch=True)
    | st.builds(
        "{}/{}/{} {}:{:02d}:{:02d} {}M".format,
        st.integers(0, 13),
        st.integers(0, 32),
        st.sampled_from([1, 9999, 2024, 10000]),
        st.integers(0, 13),
        st.integers(0, 60),
        st.integers(0, 60),
        st.sampled_from("APX"),
    )
    | st.sampled_from(["", "True", "no", "NaN", "1e999999999", "12/31/9999 11:59:59 PM"])
)
RAW_VALUE = HOSTILE_TEXT | st.none() | st.integers() | st.booleans()
COLUMN = st.sampled_from(["points", "amount", "optin", "email", "Points", "EMAIL", "unknown"])


def general_convert(stream, item):
    """The reference: each column's FieldConverter.convert, as _convert did value by value."""
    record = {}
    for part in ("keys", "values"):
        for raw_name, raw in (item.get(part) or {}).items():
            converter = stream._converters.get(raw_name.lower())
            if converter is None:
                continue
            try:
                record[converter.name] = converter.convert(raw)
            except ConversionProblemError:
                if converter.name.lower() in stream._strict:
                    raise ValueConversionError(converter.name) from None
                record[converter.name] = None
    return record


def outcome(convert, stream, item):
    try:
        return "ok", convert(item)
    except ValueConversionError:
        return "stopped", None


def test_the_convert_fast_path_equals_each_columns_converter(sfmc, config):
    stream = TapSfmcDe(config=config).streams["de_customers"]

    @given(
        key=HOSTILE_TEXT,
        modified=HOSTILE_TEXT,
        values=st.lists(st.tuples(COLUMN, RAW_VALUE), max_size=6),
    )
    @settings(max_examples=200)
    def check(key, modified, values):
        item = {"keys": {"id": key}, "values": {"modifieddate": modified, **dict(values)}}
        expected = outcome(lambda i: general_convert(stream, i), stream, item)
        got = outcome(stream._convert, stream, item)
        assert got == expected
        if got[0] == "ok":  # same keys in the same order, same types (True is not 1)
            assert [(k, type(v)) for k, v in got[1].items()] == [
                (k, type(v)) for k, v in expected[1].items()
            ]

    check()
