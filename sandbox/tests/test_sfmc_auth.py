"""Token endpoint: grants, errors, scopes, refresh rotation, expiry."""

from __future__ import annotations

import time

import pytest

CREDS = {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}


def post_token(sandbox, http, body, **kwargs):
    return http.post(f"{sandbox.sfmc_url}/v2/token", json=body, timeout=10, **kwargs)


def test_client_credentials_shape(sandbox, http):
    resp = post_token(
        sandbox, http, {"grant_type": "client_credentials", **CREDS, "account_id": 100001}
    )
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "scope",
        "soap_instance_url",
        "rest_instance_url",
    }
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 1079
    assert body["rest_instance_url"] == sandbox.sfmc_url + "/"
    assert body["soap_instance_url"] == sandbox.sfmc_url + "/"
    assert "data_extensions_read" in body["scope"].split()
    assert "refresh_token" not in body
    assert len(body["access_token"]) > 40
    assert "Date" in resp.headers


def test_account_id_string_and_omitted(sandbox, http):
    for extra in ({"account_id": "100001"}, {}):
        resp = post_token(sandbox, http, {"grant_type": "client_credentials", **CREDS, **extra})
        assert resp.status_code == 200
    resp = post_token(
        sandbox, http, {"grant_type": "client_credentials", **CREDS, "account_id": 999}
    )
    assert resp.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"grant_type": "client_credentials", "client_id": "nope", "client_secret": "x"},
        {
            "grant_type": "client_credentials",
            "client_id": "sandbox-client-id",
            "client_secret": "bad",
        },
    ],
)
def test_bad_client(sandbox, http, body):
    resp = post_token(sandbox, http, body)
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"
    assert set(resp.json()) == {"error", "error_description", "error_uri"}


def test_unknown_grant_and_form_body(sandbox, http):
    resp = post_token(sandbox, http, {"grant_type": "password", **CREDS})
    assert resp.status_code == 400
    assert resp.json()["error"] == "unsupported_grant_type"
    resp = http.post(
        f"{sandbox.sfmc_url}/v2/token",
        data={"grant_type": "client_credentials", **CREDS},
        timeout=10,
    )
    assert resp.status_code == 400
    sandbox.configure(accept_form_token_body=True)
    resp = http.post(
        f"{sandbox.sfmc_url}/v2/token",
        data={"grant_type": "client_credentials", **CREDS},
        timeout=10,
    )
    assert resp.status_code == 200


def test_scope_narrowing(sandbox, http):
    base = {"grant_type": "client_credentials", **CREDS}
    assert post_token(sandbox, http, {**base, "scope": "offline"}).json()["scope"] == "offline"
    assert post_token(sandbox, http, {**base, "scope": ""}).json()["scope"] == ""
    resp = post_token(sandbox, http, {**base, "scope": "email_send"})
    assert resp.status_code == 400


def test_auth_code_and_refresh_rotation(sandbox, http):
    resp = post_token(
        sandbox,
        http,
        {
            "grant_type": "authorization_code",
            "code": "sandbox-auth-code",
            "redirect_uri": "http://127.0.0.1/callback",
            **CREDS,
        },
    )
    assert resp.status_code == 200
    first = resp.json()["refresh_token"]
    resp = post_token(
        sandbox, http, {"grant_type": "refresh_token", "refresh_token": first, **CREDS}
    )
    assert resp.status_code == 200
    second = resp.json()["refresh_token"]
    assert second != first
    replay = post_token(
        sandbox, http, {"grant_type": "refresh_token", "refresh_token": first, **CREDS}
    )
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    again = post_token(
        sandbox, http, {"grant_type": "refresh_token", "refresh_token": second, **CREDS}
    )
    assert again.status_code == 200
    bad_code = post_token(
        sandbox,
        http,
        {
            "grant_type": "authorization_code",
            "code": "x",
            "redirect_uri": "http://127.0.0.1/callback",
            **CREDS,
        },
    )
    assert bad_code.status_code == 400


def test_missing_read_scope_gives_403_before_key(sandbox, mint, rowset):
    token = mint(scope="offline")
    resp = rowset(key="DoesNotExist", token=token)
    assert resp.status_code == 403
    assert resp.json()["errorcode"] == 20000
    assert resp.json()["message"] == "Insufficient privileges to complete this action."
    sandbox.configure(granted_scopes=["offline"])
    resp = rowset(token=mint())
    assert resp.status_code == 403


def test_bad_and_expired_bearer(sandbox, mint, rowset):
    resp = rowset(token="not-a-token")
    assert resp.status_code == 401
    assert resp.json() == {
        "message": "Not Authorized",
        "errorcode": 0,
        "documentation": resp.json()["documentation"],
    }
    token = mint()
    assert rowset(token=token, pageSize=1).status_code == 200
    assert sandbox.expire_tokens() >= 1
    assert rowset(token=token, pageSize=1).status_code == 401


def test_short_token_lifetime(sandbox, mint, rowset):
    sandbox.configure(token_lifetime_seconds=1)
    token = mint()
    assert rowset(token=token, pageSize=1).status_code == 200
    time.sleep(1.2)
    assert rowset(token=token, pageSize=1).status_code == 401


def test_token_rate_limit(sandbox, http):
    sandbox.configure(token_rate_limit_per_minute=2)
    codes = [
        post_token(sandbox, http, {"grant_type": "client_credentials", **CREDS}).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]
