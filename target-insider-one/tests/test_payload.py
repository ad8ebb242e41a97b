import itertools
import json

from target_insider_one import payload
from target_insider_one.payload import build_body, plan_requests, serialize_user
from target_insider_one.text import LINE_BREAKS


def users(n: int, size: int = 10) -> list[bytes]:
    return [serialize_user({"identifiers": {"uuid": f"u{i}"}, "x": "y" * size}) for i in range(n)]


def test_body_is_exact_json():
    body = build_body(users(2), skip_hook=True)
    parsed = json.loads(body)
    assert parsed["skip_hook"] is True
    assert [u["identifiers"]["uuid"] for u in parsed["users"]] == ["u0", "u1"]


def test_serialize_is_compact_utf8():
    data = serialize_user({"attributes": {"name": "Zoë"}})
    assert data == '{"attributes":{"name":"Zoë"}}'.encode()


def test_split_by_user_count():
    plans, oversize = plan_requests(
        users(2500), skip_hook=False, max_users=1000, max_bytes=5_000_000
    )
    assert [len(p.items) for p in plans] == [1000, 1000, 500]
    assert oversize == []
    assert [i for p in plans for i in p.items] == list(range(2500))


def test_split_by_bytes_measured_exactly():
    data = users(50, size=1000)
    limit = 10_000
    plans, _ = plan_requests(data, skip_hook=False, max_users=1000, max_bytes=limit)
    assert len(plans) > 1
    for plan in plans:
        assert len(plan.body) <= limit
        assert plan.body == build_body([data[i] for i in plan.items], skip_hook=False)
    # Greedy packing: adding the next user to any request would exceed the limit.
    for current, following in itertools.pairwise(plans):
        bigger = build_body([data[i] for i in [*current.items, following.items[0]]], False)
        assert len(bigger) > limit


def test_exact_fit_at_the_limit():
    data = users(3, size=100)
    exact = len(build_body(data, skip_hook=False))
    plans, _ = plan_requests(data, skip_hook=False, max_users=1000, max_bytes=exact)
    assert len(plans) == 1
    plans, _ = plan_requests(data, skip_hook=False, max_users=1000, max_bytes=exact - 1)
    assert len(plans) == 2


def test_five_megabyte_limit_with_large_users():
    data = users(12, size=900_000)  # ~10.8 MB in total
    plans, oversize = plan_requests(data, skip_hook=False, max_users=1000, max_bytes=5_000_000)
    assert oversize == []
    assert all(len(p.body) <= 5_000_000 for p in plans)
    assert [len(p.items) for p in plans] == [5, 5, 2]


def test_oversize_user_is_reported_not_sent():
    data = [*users(1), serialize_user({"x": "y" * 6_000}), *users(1)]
    plans, oversize = plan_requests(data, skip_hook=False, max_users=1000, max_bytes=5_000)
    assert oversize == [1]
    assert [p.items for p in plans] == [[0, 2]]


def test_not_append_is_also_sent_at_the_top_level_and_counted_in_the_size():
    data = users(3)
    body = build_body(data, skip_hook=False, not_append=True)
    assert json.loads(body)["not_append"] is True
    plans, _ = plan_requests(
        data, skip_hook=False, not_append=True, max_users=1000, max_bytes=len(body)
    )
    assert [plan.body for plan in plans] == [body]
    plans, _ = plan_requests(
        data, skip_hook=False, not_append=True, max_users=1000, max_bytes=len(body) - 1
    )
    assert len(plans) == 2


def test_every_line_break_starts_with_a_byte_pair_the_quick_check_looks_for():
    leads = {payload._NEL_BYTES, payload._SEPARATOR_LEAD}
    assert all(c.encode()[:2] in leads for c in LINE_BREAKS)


def test_line_breaks_are_escaped_next_to_lookalike_bytes():
    # U+2020 (E2 80 A0) shares the separators' lead bytes; U+00C5 is C3 85, not C2 85.
    user = {"attributes": {"a": "\u2020\u00c5", "b": "x\u2029y\x85z\u2028"}}
    data = serialize_user(user)
    assert data == b'{"attributes":{"a":"\xe2\x80\xa0\xc3\x85","b":"x\\u2029y\\u0085z\\u2028"}}'
    assert json.loads(data) == user
