"""Token minting, caching, re-minting and the refresh-token store."""

import fcntl
import json
import os
import stat
import threading

import pytest
import requests
from tap_sfmc_de.auth import RefreshTokenStore, TokenManager, authorize_url, main
from tap_sfmc_de.client import HttpClient
from tap_sfmc_de.errors import SfmcAuthError, SfmcConfigError
from tap_sfmc_de.settings import Settings
from tap_sfmc_de_testkit import AUTH, CLIENT_SECRET, token_json

TOKEN_URL = f"{AUTH}v2/token"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def manager(config, clock=None):
    settings = Settings.from_config(config)
    http = HttpClient(settings.retry, sleep=lambda _: None)
    return TokenManager(settings, http, clock=clock or Clock())


def test_client_credentials_json_body_and_caching(requests_mock, config):
    config["account_id"] = "100001"
    config["scopes"] = "data_extensions_read"
    mock = requests_mock.post(TOKEN_URL, json=token_json())
    clock = Clock()
    tokens = manager(config, clock)
    first = tokens.get()
    clock.now += 1000  # 1079 s lifetime minus a 60 s margin: still valid
    assert tokens.get() is first
    assert mock.call_count == 1
    body = mock.last_request.json()
    assert body == {
        "grant_type": "client_credentials",
        "client_id": "cid",
        "client_secret": CLIENT_SECRET,
        "scope": "data_extensions_read",
        "account_id": 100001,
    }
    assert mock.last_request.headers["Content-Type"] == "application/json"
    clock.now += 30  # now inside the margin: re-mint
    tokens.get()
    assert mock.call_count == 2
    assert first.rest_url == "https://rest.example.test/"
    assert "access-token" not in repr(first)


def test_instance_urls_are_normalised_and_validated(requests_mock, config):
    requests_mock.post(TOKEN_URL, json=token_json(rest_instance_url="mcx.rest.example.test"))
    assert manager(config).get().rest_url == "https://mcx.rest.example.test/"
    requests_mock.post(TOKEN_URL, json=token_json(rest_instance_url="http://evil.example/"))
    with pytest.raises(SfmcConfigError, match="rest_instance_url must use https"):
        manager(config).get()


def test_invalidate_forces_a_new_token(requests_mock, config):
    mock = requests_mock.post(TOKEN_URL, json=token_json())
    tokens = manager(config)
    tokens.get()
    tokens.invalidate()
    tokens.get()
    assert mock.call_count == 2


def test_invalid_client_message(requests_mock, config):
    requests_mock.post(
        TOKEN_URL,
        status_code=401,
        json={"error": "invalid_client", "error_description": "Client authentication failed."},
    )
    with pytest.raises(SfmcAuthError) as info:
        manager(config).get()
    text = str(info.value)
    assert "check client_id/client_secret" in text
    assert "enabled for this business unit" in text
    assert "account_id" in text
    assert CLIENT_SECRET not in text


def test_unreachable_auth_host_names_the_settings(requests_mock, config):
    config["max_retries"] = 0
    requests_mock.post(TOKEN_URL, exc=requests.ConnectionError("Name or service not known"))
    with pytest.raises(SfmcAuthError, match=r"check subdomain \(or auth_base_url\)"):
        manager(config).get()


def test_token_429_is_retried(requests_mock, config):
    mock = requests_mock.post(
        TOKEN_URL, [{"status_code": 429, "headers": {"Retry-After": "0"}}, {"json": token_json()}]
    )
    manager(config).get()
    assert mock.call_count == 2


def refresh_config(config, tmp_path):
    config.update(
        auth_flow="refresh_token",
        refresh_token="seed-rt",
        token_store_path=str(tmp_path / "secrets" / "rt.json"),
    )
    return config


def test_refresh_token_rotation_is_persisted_before_use(requests_mock, config, tmp_path):
    refresh_config(config, tmp_path)
    store_path = tmp_path / "secrets" / "rt.json"
    seen_on_disk = []

    def respond(request, context):
        body = request.json()
        seen_on_disk.append(store_path.exists() and json.loads(store_path.read_text()))
        n = len(seen_on_disk)
        return token_json(refresh_token=f"rt-{n}", access_token=f"at-{n}") | {
            "_req": body["refresh_token"]
        }

    mock = requests_mock.post(TOKEN_URL, json=respond)
    tokens = manager(config)
    assert tokens.get().value == "at-1"
    assert mock.last_request.json()["refresh_token"] == "seed-rt"
    assert json.loads(store_path.read_text())["refresh_token"] == "rt-1"
    assert stat.S_IMODE(store_path.stat().st_mode) == 0o600
    tokens.invalidate()
    tokens.get()
    assert mock.last_request.json()["refresh_token"] == "rt-1"  # store wins over the seed
    assert json.loads(store_path.read_text())["refresh_token"] == "rt-2"


def test_rejected_refresh_token_explains_the_fix(requests_mock, config, tmp_path):
    refresh_config(config, tmp_path)
    requests_mock.post(TOKEN_URL, status_code=400, json={"error": "invalid_grant"})
    with pytest.raises(SfmcAuthError, match=r"tap_sfmc_de\.auth authorize-url") as info:
        manager(config).get()
    assert "tap_sfmc_de.auth exchange --config" in str(info.value)


def test_missing_refresh_token_explains_the_fix(config, tmp_path):
    refresh_config(config, tmp_path)
    config.pop("refresh_token")
    with pytest.raises(SfmcAuthError, match="exchange --config"):
        manager(config).get()


def test_store_lock_serialises_refreshes(tmp_path):
    store = RefreshTokenStore(tmp_path / "rt.json")
    events = []

    def other():
        with store.locked():
            events.append("b-in")

    with store.locked():
        events.append("a-in")
        waiter = threading.Thread(target=other)
        waiter.start()
        # Observable, no sleeping: while held, nobody else can take the lock.
        probe = os.open(store.lock_path, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(probe)
        events.append("a-out")
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert events == ["a-in", "a-out", "b-in"]


def test_exchange_cli_writes_the_store_and_prints_no_secret(
    requests_mock, config, tmp_path, capsys
):
    refresh_config(config, tmp_path)
    config["redirect_uri"] = "https://app.example.test/callback"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    mock = requests_mock.post(TOKEN_URL, json=token_json(refresh_token="first-rt"))
    assert main(["exchange", "--config", str(path), "--code", "the-code"]) == 0
    body = mock.last_request.json()
    assert body["grant_type"] == "authorization_code"
    assert body["code"] == "the-code"
    assert body["redirect_uri"] == "https://app.example.test/callback"
    out = capsys.readouterr()
    assert "first-rt" not in out.out + out.err
    assert CLIENT_SECRET not in out.out + out.err
    assert json.loads((tmp_path / "secrets" / "rt.json").read_text())["refresh_token"] == "first-rt"


def test_authorize_url(config):
    settings = Settings.from_config(config)
    url = authorize_url(settings, "https://app.example.test/cb")
    assert url.startswith(f"{AUTH}v2/authorize?response_type=code&client_id=cid")
    assert CLIENT_SECRET not in url
