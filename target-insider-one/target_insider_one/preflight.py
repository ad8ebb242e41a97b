"""Credentials before data: one read-only request at start-up, before any input is read.

``POST /api/user/v3/metadata/columns`` with ``{"table": "contacts"}`` is the credential
test Insider's own n8n node uses (it changes no data and lists the account's attributes,
custom ones as ``c_<name>``). The endpoint is undocumented, so only clear answers stop the
run (insider-api.md §4):

- the status policy's FAIL_FAST (401, 403 other than "Request Limit Exceeded", 400
  "Partner is invalid."): the credentials are wrong: :class:`InsiderAuthError`, naming the
  settings to fix;
- no connection at all (DNS failure, refused, TLS error): :class:`InsiderConfigError`
  naming ``api_base_url``.

Anything else (timeouts, 404, 429, 5xx, an unexpected body) means "check unavailable": it
is logged as a warning and the run goes on, so a change on Insider's side never stops every
run. A 2xx list of columns is also used to warn about mapped custom attributes the account
does not define (Insider probably drops those silently).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests

from target_insider_one.client import (
    InsiderAuthError,
    InsiderClient,
    InsiderConfigError,
    error_message,
)
from target_insider_one.status_policy import Verdict, startup_credentials_hint, verdict

if TYPE_CHECKING:
    from target_insider_one.settings import Settings

COLUMNS_PATH = "/api/user/v3/metadata/columns"
MAX_TIMEOUT_SECONDS = 30.0
_NOT_CHECKED = (
    "credentials and custom attributes not checked, continuing (upserts report their own errors)"
)


def _unreachable_message(settings: Settings, exc: requests.RequestException) -> str:
    text = str(exc)
    if "NameResolution" in text or "Name or service not known" in text or "getaddrinfo" in text:
        why = "its host name does not resolve (DNS)"
    elif isinstance(exc, requests.exceptions.SSLError):
        why = "the TLS handshake failed"
    elif isinstance(exc, requests.ConnectionError):
        why = "the connection failed"
    else:
        why = f"the request could not be sent ({type(exc).__name__})"
    return (
        f"Cannot reach Insider at api_base_url {settings.api_base_url!r}: {why}. Check "
        "api_base_url (default https://unification.useinsider.com), DNS, proxy and firewall "
        "settings. Nothing was sent."
    )


def check_credentials(settings: Settings, client: InsiderClient) -> list[str]:
    """Run the start-up check.

    Args:
        settings: Target settings.
        client: The HTTP client (its headers carry the credentials).

    Returns:
        Warnings to log and show in the summary (check unavailable, custom attributes the
        account does not define).
    """
    columns, unavailable = read_columns(settings, client)
    if columns is None:
        return [unavailable]
    return missing_custom_attributes(settings, set(columns))


def read_columns(settings: Settings, client: InsiderClient) -> tuple[dict[str, str] | None, str]:
    """The account's attribute columns (``key -> type``), with the credentials checked.

    Args:
        settings: Target settings.
        client: The HTTP client (its headers carry the credentials).

    Returns:
        The columns and "", or None and why the check is unavailable.

    Raises:
        InsiderAuthError: The credentials were rejected.
        InsiderConfigError: Insider cannot be reached at ``api_base_url``.
    """
    url = settings.api_base_url + COLUMNS_PATH
    timeout = min(settings.request_timeout, MAX_TIMEOUT_SECONDS)
    try:
        response = client.post_once(url, {"table": "contacts"}, timeout=timeout)
    except requests.Timeout:
        return None, f"the credential check timed out after {timeout:g}s; {_NOT_CHECKED}"
    except requests.RequestException as exc:
        raise InsiderConfigError(_unreachable_message(settings, exc)) from None
    status = response.status_code
    message = error_message(response)
    outcome = verdict(status, message)
    if outcome is Verdict.FAIL_FAST:
        hint = startup_credentials_hint(status, message, settings.partner_name)
        raise InsiderAuthError(hint, status)
    if outcome is not Verdict.DELIVERED:
        return (
            None,
            f"the credential check (metadata/columns) answered HTTP {status}; {_NOT_CHECKED}",
        )
    columns = _columns(response)
    if columns is None:
        return None, (
            f"the credential check (metadata/columns) returned an unexpected body; {_NOT_CHECKED}"
        )
    return columns, ""


def _columns(response: requests.Response) -> dict[str, str] | None:
    try:
        body: Any = response.json()
    except ValueError:
        return None
    if not isinstance(body, list):
        return None
    return {
        str(c["key"]): str(c.get("type") or "") for c in body if isinstance(c, dict) and "key" in c
    }


def missing_custom_attributes(settings: Settings, keys: set[str]) -> list[str]:
    """Warnings for mapped custom attributes the account does not list.

    Args:
        settings: Target settings.
        keys: Column keys from ``metadata/columns`` (custom attributes are ``c_<name>``).

    Returns:
        One warning per missing custom attribute.
    """
    mapped = [t for _, t in settings.attributes] + [t for t, _ in settings.fixed_values]
    return [
        f"custom attribute {target.name!r} is not defined in Insider (metadata/columns has "
        f"no 'c_{target.name}'): Insider probably drops it silently; create it in InOne "
        "(Attributes) with a matching type, or fix the mapping"
        for target in mapped
        if target.custom and f"c_{target.name}" not in keys
    ]
