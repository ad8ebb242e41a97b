import itertools
import json

from target_insider_one.payload import build_body, plan_requests, serialize_user


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
