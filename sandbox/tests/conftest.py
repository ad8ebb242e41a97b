"""Helpers shared by the sandbox's own tests (fixtures come from the pytest plugin)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from api_sandbox.testing import SandboxProcess

CREDS = {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}


@pytest.fixture
def http() -> requests.Session:
    with requests.Session() as session:
        yield session


@pytest.fixture
def mint(sandbox: SandboxProcess, http: requests.Session) -> Callable[..., str]:
    """Mint a client_credentials token (extra body fields allowed)."""

    def _mint(**extra: Any) -> str:
        resp = http.post(
            f"{sandbox.sfmc_url}/v2/token",
            json={"grant_type": "client_credentials", **CREDS, **extra},
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
        return resp.json()["access_token"]

    return _mint


@pytest.fixture
def rowset(
    sandbox: SandboxProcess, http: requests.Session, mint: Callable[..., str]
) -> Callable[..., requests.Response]:
    """GET a rowset URL (key form by default) with a fresh token unless one is given."""
    cache: dict[str, str] = {}

    def _get(
        key: str = "Customers", token: str | None = None, path: str | None = None, **params: Any
    ) -> requests.Response:
        if token is None:
            token = cache.setdefault("t", mint())
        url = (
            f"{sandbox.sfmc_url}/data{path}"
            if path
            else (f"{sandbox.sfmc_url}/data/v1/customobjectdata/key/{key}/rowset")
        )
        query = {f"${k}": v for k, v in params.items()}
        return http.get(url, params=query, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    return _get
