"""End-to-end: ``--preflight`` and ``--preview N`` of the real CLI against the sandbox."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
EXIT_OK, EXIT_FAIL, EXIT_WARN_ONLY = 0, 1, 10
MAPPING = {
    "identifier_mappings": [
        {"type": "email", "field": "EmailAddress"},
        {"type": "phone_number", "field": "Phone"},
    ],
    "attribute_mappings": {
        "FirstName": "name",
        "City": "city",
        "LoyaltyPoints": "loyalty_points",
        "SubscriberKey": "sfmc_subscriber_key",
    },
    "fixed_value_mappings": {"data_source": "sfmc"},
    "phone_default_region": "GB",
}


def _write(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def preflight(config: dict[str, Any], workdir: Path) -> subprocess.CompletedProcess[str]:
    config_path = _write(workdir / "target.json", config)
    proc = subprocess.run(
        [str(BIN / "target-insider-one"), "--config", str(config_path), "--preflight"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert sorted(p.name for p in workdir.iterdir()) == ["target.json"]  # nothing written
    return proc


def line(stdout: str, subject: str) -> str:
    """A check's text: its first line and the wrapped lines under it."""
    lines = stdout.splitlines()
    start = next(i for i, text in enumerate(lines) if text.startswith(subject + " "))
    following = []
    for text in lines[start + 1 :]:
        if not text.startswith(" "):
            break
        following.append(text.strip())
    return " ".join([lines[start], *following])


def test_a_sound_config_is_all_ok_with_one_read_only_request(sandbox, tmp_path):
    proc = preflight(sandbox.target_config(**MAPPING), tmp_path)
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr[-2000:]
    assert "accepted by Insider" in line(proc.stdout, "credentials")
    known = line(proc.stdout, "custom attributes")
    for name in ("data_source", "loyalty_points", "sfmc_subscriber_key"):
        assert name in known
    identifiers = line(proc.stdout, "identifiers")
    assert "email <- EmailAddress, phone_number <- Phone" in identifiers
    assert "phone_default_region GB" in identifiers
    assert [r["endpoint"] for r in sandbox.requests(None)] == ["columns"]
    assert sandbox.profiles() == []
    assert len(proc.stdout.splitlines()) <= 25


def test_a_wrong_api_key_fails_naming_the_setting_without_echoing_it(sandbox, tmp_path):
    wrong = "not-the-key-8d7c6b5a"
    proc = preflight(sandbox.target_config(**MAPPING, api_key=wrong), tmp_path)
    assert proc.returncode == EXIT_FAIL
    credentials = line(proc.stdout, "credentials")
    assert credentials.split()[1] == "FAIL"
    assert "Insider rejected the credentials" in credentials
    assert "fix: partner_name (TARGET_INSIDER_ONE_PARTNER_NAME" in credentials
    assert "Unified Customer Database (UCD)" in credentials
    assert wrong not in proc.stdout + proc.stderr
    assert sandbox.requests("upsert") == []


def test_an_unreachable_api_base_url_fails(sandbox, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free_port = sock.getsockname()[1]
    config = sandbox.target_config(**MAPPING, api_base_url=f"http://127.0.0.1:{free_port}")
    proc = preflight(config, tmp_path)
    assert proc.returncode == EXIT_FAIL
    assert "Cannot reach Insider at api_base_url" in line(proc.stdout, "credentials")


def test_an_unknown_custom_attribute_fails_with_the_fix(sandbox, tmp_path):
    mapping = {**MAPPING, "attribute_mappings": {**MAPPING["attribute_mappings"], "Tier": "tier"}}
    proc = preflight(sandbox.target_config(**mapping), tmp_path)
    assert proc.returncode == EXIT_FAIL
    unknown = line(proc.stdout, "custom.tier")
    assert unknown.split()[1] == "FAIL"
    assert "custom attribute 'tier' (from field 'Tier') is not defined" in unknown
    assert "fix: create it in InOne" in unknown
    sandbox.configure(
        insider_custom_attributes=["tier", "data_source", "loyalty_points", "sfmc_subscriber_key"]
    )
    again = preflight(sandbox.target_config(**mapping), tmp_path / "defined")
    assert again.returncode == EXIT_OK, again.stdout


def test_dry_run_on_is_a_warning_and_an_invalid_config_fails(sandbox, tmp_path):
    proc = preflight(sandbox.target_config(**MAPPING, dry_run=True), tmp_path / "dry")
    assert proc.returncode == EXIT_WARN_ONLY, proc.stdout
    assert "set dry_run false to go live" in line(proc.stdout, "dry_run")
    invalid = preflight(sandbox.target_config(), tmp_path / "invalid")  # no identifier_mappings
    assert invalid.returncode == EXIT_FAIL
    assert "identifier_mappings" in line(invalid.stdout, "config")


# -- preview -------------------------------------------------------------------------

PREVIEW_ROWS = [
    {"Id": "A1", "EmailAddress": "alice.smith@example.com", "Phone": "07911 123456",
     "FirstName": "Alice", "ModifiedDate": "2024-05-01T10:00:00"},
    {"Id": "B2", "EmailAddress": "not-an-email", "Phone": "12",
     "FirstName": "Bobby", "ModifiedDate": "2024-05-01T10:00:01"},
    {"Id": "C3", "EmailAddress": "carol.jones@example.org", "Phone": None,
     "FirstName": "Carol", "ModifiedDate": "2024-05-01T10:00:02"},
]  # fmt: skip
PREVIEW_FIELDS = [
    {"name": "Id", "is_primary_key": True},
    {"name": "EmailAddress", "field_type": "EmailAddress"},
    {"name": "Phone", "field_type": "Phone"},
    {"name": "FirstName"},
    {"name": "ModifiedDate", "field_type": "Date"},
]
PREVIEW_MAPPING = {
    "identifier_mappings": MAPPING["identifier_mappings"],
    "attribute_mappings": {"FirstName": "name"},
    "phone_default_region": "GB",
}


def preview(sandbox: Any, tmp_path: Path, *args: str, rows: int = 10) -> str:
    """The real tap piped into ``target-insider-one --preview``; asserts nothing was sent."""
    tap_config = _write(
        tmp_path / "tap.json",
        sandbox.tap_config(data_extension_keys=["Preview"], page_size=10, max_pages_per_run=5),
    )
    target_config = _write(tmp_path / "target.json", sandbox.target_config(**PREVIEW_MAPPING))
    with subprocess.Popen(
        [str(BIN / "tap-sfmc-de"), "--config", str(tap_config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    ) as tap:
        proc = subprocess.run(
            [str(BIN / "target-insider-one"), "--config", str(target_config),
             "--preview", str(rows), *args],
            stdin=tap.stdout,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=tmp_path,
        )  # fmt: skip
        assert tap.stdout is not None
        tap.stdout.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert not [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]  # no STATE
    # Measured at Insider: the credential check only; no upsert, no profile.
    assert [r["endpoint"] for r in sandbox.requests(None)] == ["columns"]
    assert sandbox.profiles() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tap.json", "target.json"]
    return proc.stdout


def test_preview_masks_values_and_shows_payloads_and_dead_letter_reasons(sandbox, tmp_path):
    sandbox.create_de("Preview", fields=PREVIEW_FIELDS, rows=PREVIEW_ROWS)
    out = preview(sandbox, tmp_path)
    assert "3 record(s) of de_preview" in out
    assert "values masked (--show-pii shows them)" in out
    for row in PREVIEW_ROWS:
        for value in ("EmailAddress", "FirstName"):
            assert row[value] not in out
    assert "07911 123456" not in out
    assert "+447911123456" not in out
    lines = out.splitlines()
    first_send = lines[2]
    assert first_send.strip().startswith("send")
    sent = json.loads(first_send.split("send", 1)[1])
    assert sent["identifiers"] == {"email": "a•••h@•••.com", "phone_number": "+•••6"}
    assert sent["attributes"] == {"name": "A•••e"}
    assert lines[4].strip().startswith("dead")  # B2: no valid identifier
    assert "2 would be sent, 1 dead-lettered" in out


def test_preview_shows_values_when_asked(sandbox, tmp_path):
    sandbox.create_de("Preview", fields=PREVIEW_FIELDS, rows=PREVIEW_ROWS)
    out = preview(sandbox, tmp_path, "--show-pii")
    assert "alice.smith@example.com" in out
    assert '"phone_number":"+447911123456"' in out
    assert "values shown" in out


def test_preview_reads_only_the_first_n_records(sandbox, tmp_path):
    sandbox.create_de("Preview", size=200, seed=5)
    out = preview(sandbox, tmp_path, rows=4)
    assert "4 record(s) of de_preview" in out
    assert [ln for ln in out.splitlines() if ln.startswith("#")][-1].startswith("#4 ")
