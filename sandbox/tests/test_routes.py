"""The routes tables are the one list of endpoints: fault targets and admin routing follow them."""

from __future__ import annotations

import pytest
from api_sandbox import admin, routes
from api_sandbox.faults import FaultError, Faults


def _route_names() -> list[str]:
    return [route.endpoint for api in routes.APIS for route in api.routes]


def test_fault_endpoints_are_the_routes_names_their_aliases_and_the_wildcard():
    # The names the README and every test's fault rules use, in the documented order.
    assert routes.FAULT_ENDPOINTS == (
        "token", "rowset", "fields", "soap", "soap_rows", "upsert", "columns", "*",
    )  # fmt: skip
    assert set(_route_names()) < set(routes.FAULT_ENDPOINTS)


@pytest.mark.parametrize("endpoint", _route_names())
def test_every_route_is_a_fault_target(endpoint):
    faults = Faults(routes.FAULT_ENDPOINTS)
    faults.add([{"endpoint": endpoint, "status": 503}])
    assert faults.check(endpoint) is not None


def test_a_name_without_a_route_is_no_fault_target():
    with pytest.raises(FaultError, match="endpoint must be one of"):
        Faults(routes.FAULT_ENDPOINTS).add([{"endpoint": "rowsets", "status": 503}])


@pytest.mark.parametrize(
    ("role", "method", "path", "endpoint"),
    [
        ("sfmc", "POST", "/v2/token", "token"),
        ("sfmc", "POST", "/V2/Token/", "token"),
        ("sfmc", "GET", "/data/v1/customobjectdata/key/Customers/rowset", "rowset"),
        ("sfmc", "GET", "/data/v1/customobjects/abc/fields", "fields"),
        ("sfmc", "POST", "/Service.asmx", "soap"),
        ("insider", "POST", "/api/user/v1/upsert", "upsert"),
        ("insider", "POST", "/api/user/v3/metadata/columns", "columns"),
    ],
)
def test_each_server_matches_only_its_own_routes(role, method, path, endpoint):
    found = routes.match(role, method, path)
    assert found is not None
    assert found[1].endpoint == endpoint
    other = "insider" if role == "sfmc" else "sfmc"
    assert routes.match(other, method, path) is None
    assert routes.match(role, "PUT", path) is None


ADMIN_ANSWERS = [
    (
        ("GET", "/_sandbox/nothing-here"),
        (404, {"error": "no admin route GET /_sandbox/nothing-here"}),
    ),
    (("GET", "/_sandbox/des/NoSuch/rows"), (404, {"error": "no DE with key 'NoSuch'"})),
    (("POST", "/_sandbox/des/Customers"), (404, {"error": "no admin route POST for DE Customers"})),
    (("DELETE", "/_sandbox/faults"), (200, [])),
    (("POST", "/_sandbox/des/Customers/mutate"), (400, {"error": "unknown mutate keys ['x']"})),
]


@pytest.mark.parametrize(("call", "answer"), ADMIN_ANSWERS)
def test_admin_routes_answer_as_documented(sandbox, http, call, answer):
    method, path = call
    resp = http.request(method, f"{sandbox.insider_url}{path}", json={"x": 1}, timeout=10)
    assert (resp.status_code, resp.json()) == answer


def test_admin_state_is_served_on_both_ports_with_the_role(sandbox, http):
    for url, role in ((sandbox.sfmc_url, "sfmc"), (sandbox.insider_url, "insider")):
        state = http.get(f"{url}/_sandbox/state", timeout=10).json()
        assert state["role"] == role
        assert "counters" in state
    assert len(admin.ADMIN_ROUTES) > 10
