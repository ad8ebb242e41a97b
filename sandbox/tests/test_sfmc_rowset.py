"""REST rowset: shape quirks, paging, continuation, filter/orderBy switches."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

US_DATE = re.compile(r"^\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}:\d{2} [AP]M$")
FIELDS = [
    {"name": "Id", "field_type": "Number", "is_primary_key": True},
    {"name": "Label", "field_type": "Text"},
    {"name": "Flag", "field_type": "Boolean"},
    {"name": "Amount", "field_type": "Decimal", "max_length": 8, "scale": 2},
    {"name": "When", "field_type": "Date"},
]


def small_de(sandbox, n=7):
    rows = [
        {
            "Id": i,
            "Label": None if i == 3 else f"row {i}",
            "Flag": i % 2 == 0,
            "Amount": f"{i}.5",
            "When": f"2024-01-{i:02d}T10:00:00",
        }
        for i in range(1, n + 1)
    ]
    sandbox.create_de("Small", fields=FIELDS, rows=rows)


def parse_us(text):
    return datetime.strptime(text, "%m/%d/%Y %I:%M:%S %p")  # noqa: DTZ007


def test_page_shape(sandbox, rowset):
    resp = rowset(pageSize=3)
    assert resp.status_code == 200
    body = resp.json()
    assert list(body) == [
        "links", "requestToken", "tokenExpireDateUtc", "customObjectId", "customObjectKey",
        "pageSize", "page", "count", "top", "items",
    ]  # fmt: skip
    assert body["count"] == 5000
    assert body["page"] == 1
    assert body["pageSize"] == 3
    assert body["top"] == 0
    assert body["customObjectKey"] == "Customers"
    token = body["requestToken"]
    assert body["links"] == {
        "self": f"/v1/customobjectdata/token/{token}/rowset?$page=1",
        "next": f"/v1/customobjectdata/token/{token}/rowset?$page=2",
    }
    assert "Z" not in body["tokenExpireDateUtc"]
    assert "+" not in body["tokenExpireDateUtc"]
    item = body["items"][0]
    assert list(item["keys"]) == ["subscriberkey"]
    assert "subscriberkey" not in item["values"]
    assert all(name == name.lower() for name in item["values"])
    assert all(isinstance(v, str) for it in body["items"] for v in it["values"].values())
    assert US_DATE.match(item["values"]["modifieddate"])


def test_value_strings(sandbox, rowset):
    small_de(sandbox)
    items = rowset("Small").json()["items"]
    by_id = {it["keys"]["id"]: it["values"] for it in items}
    assert by_id["3"]["label"] == ""
    assert by_id["2"]["flag"] == "True"
    assert by_id["1"]["flag"] == "False"
    assert by_id["1"]["amount"] == "1.50"
    assert by_id["1"]["when"] == "1/1/2024 10:00:00 AM"


def test_default_page_size_and_cap(sandbox, rowset):
    assert rowset().json()["pageSize"] == 2500
    body = rowset(pageSize=5000).json()
    assert body["pageSize"] == 2500
    assert len(body["items"]) == 2500


def test_lowercase_pagesize_and_unprefixed(sandbox, rowset, http, mint):
    token = mint()
    url = f"{sandbox.sfmc_url}/data/v1/customobjectdata/key/Customers/rowset"
    headers = {"Authorization": f"Bearer {token}"}
    assert (
        http.get(url, params={"$pagesize": 4}, headers=headers, timeout=10).json()["pageSize"] == 4
    )
    assert (
        http.get(url, params={"pageSize": 6}, headers=headers, timeout=10).json()["pageSize"] == 6
    )


def test_paging_through_continuation(sandbox, rowset):
    small_de(sandbox)
    first = rowset("Small", pageSize=3).json()
    seen = [it["keys"]["id"] for it in first["items"]]
    link = first["links"]["next"]
    pages = 1
    while link:
        body = rowset(path=link).json()
        pages += 1
        assert body["count"] == 7
        seen += [it["keys"]["id"] for it in body["items"]]
        link = body["links"].get("next")
    assert pages == 3
    assert seen == [str(i) for i in range(1, 8)]
    last = rowset(path=f"/v1/customobjectdata/token/{first['requestToken']}/rowset?$page=3").json()
    assert "next" not in last["links"]
    assert len(last["items"]) == 1


def test_past_the_end_and_empty(sandbox, rowset):
    small_de(sandbox)
    body = rowset("Small", pageSize=3, page=9).json()
    assert body["count"] == 7
    assert "items" not in body
    assert "next" not in body["links"]
    sandbox.create_de("Empty", fields=FIELDS, rows=[])
    body = rowset("Empty").json()
    assert body["count"] == 0
    assert "items" not in body
    assert list(body["links"]) == ["self"]


def test_unknown_key_and_unknown_request_token(sandbox, rowset):
    resp = rowset("Nope")
    assert resp.status_code == 404
    assert resp.json()["errorcode"] == 30003
    resp = rowset(path="/v1/customobjectdata/token/00000000-0000-0000-0000-000000000000/rowset")
    assert resp.status_code == 404


def test_key_lookup_is_by_key_not_name(sandbox, rowset):
    sandbox.create_de("ABC-123", name="Pretty Name", fields=FIELDS, rows=[])
    assert rowset("ABC-123").status_code == 200
    assert rowset("Pretty Name").status_code == 404


def test_no_primary_key(sandbox, rowset):
    sandbox.create_de("NoPk", fields=[{"name": "A"}, {"name": "B", "field_type": "Number"}], size=3)
    items = rowset("NoPk").json()["items"]
    assert all(it["keys"] == {} for it in items)
    assert set(items[0]["values"]) == {"a", "b"}


@pytest.mark.parametrize(("op", "expected"), [
    ("eq", [4]), ("ne", [1, 2, 3, 5, 6, 7]), ("neq", [1, 2, 3, 5, 6, 7]), ("gt", [5, 6, 7]),
    ("gte", [4, 5, 6, 7]), ("ge", [4, 5, 6, 7]), ("lt", [1, 2, 3]), ("lte", [1, 2, 3, 4]),
    ("le", [1, 2, 3, 4]),
])  # fmt: skip
def test_filter_operators_numbers(sandbox, rowset, op, expected):
    small_de(sandbox)
    body = rowset("Small", filter=f"Id {op} '4'").json()
    assert [int(it["keys"]["id"]) for it in body["items"]] == expected
    assert body["count"] == len(expected)


@pytest.mark.parametrize(
    "literal",
    [
        "1/5/2024 10:00:00 AM",
        "2024-01-05T10:00:00",
        "2024-01-05T16:00:00Z",
        "2024-01-05T11:00:00-05:00",
    ],
)
def test_filter_dates_typed(sandbox, rowset, literal):
    small_de(sandbox)
    body = rowset("Small", filter=f"When gte '{literal}' and Id lt '7'").json()
    assert [int(it["keys"]["id"]) for it in body["items"]] == [5, 6]


def test_bad_filter_400(sandbox, rowset):
    for bad in (
        "Nope eq '1'",
        "Id like '1'",
        "Id eq",
        "When gt 'yesterday'",
        "(Id eq '1'",
        "Id eq '1')",
        "Id eq '1' and",
        "not",
        "Id in '1'",
        "Id eq '1' xor Id eq '2'",
        "Label like 'row%'",
        "Id between '1' and '2'",
    ):
        resp = rowset(filter=bad)
        assert resp.status_code == 400, bad
        assert resp.json()["errorcode"] == 10001
        assert set(resp.json()) == {"message", "errorcode", "documentation"}


def test_filter_ignored_switch(sandbox, rowset):
    small_de(sandbox)
    sandbox.configure(filter_mode="ignored")
    body = rowset("Small", filter="Id eq '4'").json()
    assert body["count"] == 7
    assert len(body["items"]) == 7
    assert rowset("Small", filter="total garbage").status_code == 200


@pytest.mark.parametrize("switch", ["filter_mode", "orderby_mode"])
def test_rejected_switch_answers_400_only_when_the_parameter_is_sent(sandbox, rowset, switch):
    small_de(sandbox)
    sandbox.configure(**{switch: "rejected"})
    param = {"filter_mode": {"filter": "Id eq '4'"}, "orderby_mode": {"orderBy": "Id desc"}}
    resp = rowset("Small", **param[switch])
    assert resp.status_code == 400
    assert resp.json()["errorcode"] == 10001
    assert set(resp.json()) == {"message", "errorcode", "documentation"}
    spelled = {"filter_mode": "$filter", "orderby_mode": "$orderBy"}[switch]
    assert resp.json()["message"] == f"{spelled} is not supported on this endpoint"
    assert rowset("Small").json()["count"] == 7  # without it, reads work


@pytest.mark.parametrize("mode", ["honoured", "ignored"])
def test_orderby_switch(sandbox, rowset, mode):
    small_de(sandbox)
    sandbox.configure(orderby_mode=mode)
    body = rowset("Small", orderBy="When desc").json()
    ids = [int(it["keys"]["id"]) for it in body["items"]]
    assert ids == (list(range(7, 0, -1)) if mode == "honoured" else list(range(1, 8)))


def test_orderby_multi_and_continuation_keeps_query(sandbox, rowset):
    sandbox.configure(orderby_mode="honoured", filter_mode="honoured")
    first = rowset(
        pageSize=100,
        filter="ModifiedDate gt '2025-01-01T00:00:00'",
        orderBy="ModifiedDate asc, SubscriberKey asc",
    ).json()
    second = rowset(path=first["links"]["next"]).json()
    dates = [
        (parse_us(it["values"]["modifieddate"]), it["keys"]["subscriberkey"])
        for page in (first, second)
        for it in page["items"]
    ]
    assert dates == sorted(dates)
    assert all(d >= datetime(2025, 1, 1) for d, _ in dates)  # noqa: DTZ001
    assert second["count"] == first["count"]


@pytest.mark.parametrize("filter_mode", ["honoured", "ignored"])
@pytest.mark.parametrize("orderby_mode", ["honoured", "ignored"])
def test_switch_combinations_cover_all_rows(sandbox, rowset, filter_mode, orderby_mode):
    small_de(sandbox)
    sandbox.configure(filter_mode=filter_mode, orderby_mode=orderby_mode)
    body = rowset("Small", filter="Id gt '2'", orderBy="Id desc", pageSize=2500).json()
    ids = [int(it["keys"]["id"]) for it in body["items"]]
    expected = [7, 6, 5, 4, 3] if filter_mode == "honoured" else [7, 6, 5, 4, 3, 2, 1]
    if orderby_mode == "ignored":
        expected = sorted(expected)
    assert ids == expected


def test_updates_do_not_move_rows_and_default_order_is_insertion(sandbox, rowset):
    before = [it["keys"]["subscriberkey"] for it in rowset(pageSize=50).json()["items"]]
    sandbox.mutate("Customers", update=200)
    after = [it["keys"]["subscriberkey"] for it in rowset(pageSize=50).json()["items"]]
    assert before == after


def test_live_offsets_shift_without_snapshot(sandbox, rowset):
    small_de(sandbox, n=6)
    first = rowset("Small", pageSize=3).json()
    sandbox.mutate("Small", delete=3)
    second = rowset(path=first["links"]["next"]).json()
    assert second["count"] == 3
    assert "items" not in second


def test_snapshot_pins_result(sandbox, rowset):
    small_de(sandbox, n=6)
    sandbox.configure(request_token_snapshot=True)
    first = rowset("Small", pageSize=3).json()
    sandbox.mutate("Small", delete=3, insert=2)
    second = rowset(path=first["links"]["next"]).json()
    assert second["count"] == 6
    assert [it["keys"]["id"] for it in first["items"] + second["items"]] == [
        str(i) for i in range(1, 7)
    ]


def test_rest_fields_by_object_id(sandbox, rowset, http, mint):
    token = mint()
    object_id = rowset(token=token, pageSize=1).json()["customObjectId"]
    headers = {"Authorization": f"Bearer {token}"}
    resp = http.get(
        f"{sandbox.sfmc_url}/data/v1/customobjects/{object_id}/fields", headers=headers, timeout=10
    )
    assert resp.status_code == 200
    fields = resp.json()["fields"]
    assert [f["ordinal"] for f in fields] == list(range(12))
    assert fields[0]["name"] == "SubscriberKey"
    assert fields[0]["isPrimaryKey"] is True
    resp = http.get(
        f"{sandbox.sfmc_url}/data/v1/customobjects/Customers/fields", headers=headers, timeout=10
    )
    assert resp.status_code == 404


def test_expired_request_token(sandbox, rowset):
    first = rowset(pageSize=10).json()
    assert sandbox.expire_request_tokens() >= 1
    assert rowset(path=first["links"]["next"]).status_code == 404
    # restarting from the key URL with $page=N works
    assert rowset(pageSize=10, page=2).json()["page"] == 2


def test_request_token_counts_a_replaced_de_afresh(sandbox, rowset):
    fields = [{"name": "Id", "field_type": "Number", "is_primary_key": True}]
    sandbox.create_de("Swap", fields=fields, rows=[{"Id": i} for i in range(3)])
    first = rowset("Swap", pageSize=1).json()
    assert first["count"] == 3
    # same key, new DE: a cached count must not survive the replacement
    sandbox.create_de("Swap", fields=fields, rows=[{"Id": i} for i in range(5)])
    second = rowset(path=first["links"]["next"]).json()
    assert second["count"] == 5
    assert second["items"] == [{"keys": {"id": "1"}, "values": {}}]


def test_key_requests_with_one_filter_count_each_change(sandbox, rowset):
    # Counts are remembered per (table, version, filter) across request tokens.
    small_de(sandbox, n=6)
    query = {"pageSize": 2, "filter": "Id gt 1"}
    assert rowset("Small", **query).json()["count"] == 5
    assert rowset("Small", page=2, **query).json()["count"] == 5
    sandbox.mutate("Small", insert=2)
    assert rowset("Small", page=3, **query).json()["count"] == 7
    assert rowset("Small", pageSize=2, filter="Id gt 2").json()["count"] == 6
