"""A request is counted before its reply leaves, so a client never reads stale counters."""

from __future__ import annotations

import threading

import pytest
import requests
from api_sandbox.app import Sandbox
from api_sandbox.config import SandboxConfig
from api_sandbox.server import Handler, SandboxServer

CREDS = {
    "grant_type": "client_credentials",
    "client_id": "sandbox-client-id",
    "client_secret": "sandbox-client-secret",
}


@pytest.fixture
def counted_at_reply(monkeypatch):
    """An in-process SFMC server; records the token counter at the moment each reply is sent."""
    app = Sandbox(SandboxConfig(), [])
    seen: list[int] = []
    send_reply = Handler.send_reply

    def spy(self, reply):
        seen.append(app.requests["token"])
        send_reply(self, reply)

    monkeypatch.setattr(Handler, "send_reply", spy)
    server = SandboxServer(0, "sfmc", app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, server.url, seen
    server.shutdown()
    server.server_close()


def test_a_request_is_counted_before_its_reply_is_sent(counted_at_reply):
    _app, url, seen = counted_at_reply
    reply = requests.post(f"{url}/v2/token", json=CREDS, timeout=10)
    assert reply.status_code == 200
    assert seen == [1]  # the counter already held this request when its reply was written


def test_a_faulted_request_is_counted_before_its_reply_is_sent(counted_at_reply):
    app, url, seen = counted_at_reply
    app.faults.add([{"endpoint": "token", "status": 503}])
    reply = requests.post(f"{url}/v2/token", json=CREDS, timeout=10)
    assert reply.status_code == 503
    assert seen == [1]
