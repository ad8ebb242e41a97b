"""Shared fixtures for the tap's unit tests."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests_mock as rm

sys.path.insert(0, str(Path(__file__).parent))

from tap_sfmc_de_testkit import (
    AUTH,
    CLIENT_SECRET,
    REST,
    SOAP,
    SUBDOMAIN,
    FakeDE,
    fields_xml,
    rowset_json,
    token_json,
)


@pytest.fixture
def config() -> dict[str, Any]:
    return {
        "client_id": "cid",
        "client_secret": CLIENT_SECRET,
        "subdomain": SUBDOMAIN,
        "auth_base_url": AUTH,
        "data_extension_keys": ["Customers"],
        "page_size": 2,
        "max_pages_per_run": 5,
        "backoff_base_seconds": 0,
        "backoff_max_seconds": 0,
    }


@pytest.fixture
def fake_de() -> FakeDE:
    return FakeDE()


@pytest.fixture
def sfmc(fake_de: FakeDE) -> Any:
    """requests-mock wired to a FakeDE: token, SOAP fields and rowset."""
    with rm.Mocker() as mocker:
        mocker.post(f"{AUTH}v2/token", json=token_json())
        mocker.post(f"{SOAP}Service.asmx", text=fields_xml())

        def rowset(request: Any, context: Any) -> dict[str, Any]:
            query = dict(parse_qsl(urlsplit(request.url).query))
            page = fake_de.fetch(
                page=int(query["$page"]),
                page_size=int(query["$pageSize"]),
                filter_expr=query.get("$filter"),
                order_by=query.get("$orderBy"),
            )
            context.headers["Date"] = page.server_time.strftime("%a, %d %b %Y %H:%M:%S GMT")
            return rowset_json(page, int(query["$page"]))

        mocker.get(
            re.compile(rf"{REST}data/v1/customobjectdata/key/Customers/rowset.*"), json=rowset
        )
        yield mocker
