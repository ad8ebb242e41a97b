"""SFMC ``POST /v2/token`` and bearer-token checks.

Tokens are opaque random strings (``secrets``), kept in memory with their expiry,
scopes and MID. Refresh tokens rotate and are single use: replaying one gives
``invalid_grant`` (assumed from the v1 docs; no recorded v2 body exists).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from api_sandbox.config import SandboxConfig
from api_sandbox.errors import OAuthError


class GrantType(StrEnum):
    """The OAuth grants the sandbox emulates (JWT bearer is not)."""

    AUTHORIZATION_CODE = "authorization_code"
    REFRESH_TOKEN = "refresh_token"  # noqa: S105 - a grant name, not a secret
    CLIENT_CREDENTIALS = "client_credentials"


GRANTS = tuple(g.value for g in GrantType)


def _grant_type(body: dict[str, Any]) -> GrantType:
    """The request's grant type.

    Raises:
        OAuthError: for a grant the endpoint does not support.
    """
    grant_type = body.get("grant_type")
    if grant_type not in GRANTS:
        raise OAuthError(
            HTTPStatus.BAD_REQUEST,
            "unsupported_grant_type",
            "Use one of the supported grant types: authorization_code, refresh_token, "
            "client_credentials, urn:ietf:params:oauth:grant-type:jwt-bearer.",
        )
    return GrantType(grant_type)


@dataclass
class AccessToken:
    """What the sandbox remembers about an issued access token."""

    scopes: frozenset[str]
    mid: str
    expires_at: float


@dataclass
class RefreshToken:
    """A refresh token; single use."""

    scopes: frozenset[str]
    mid: str
    expires_at: float


class Auth:
    """Token minting and validation."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, RefreshToken] = {}
        self.used_refresh: set[str] = set()
        self.minted = 0
        self._recent: deque[float] = deque()

    def reset(self) -> None:
        """Forget every token."""
        with self._lock:
            self.access.clear()
            self.refresh.clear()
            self.used_refresh.clear()
            self.minted = 0
            self._recent.clear()

    def expire_all(self) -> int:
        """Make every issued access token expired now; returns how many."""
        with self._lock:
            for tok in self.access.values():
                tok.expires_at = 0
            return len(self.access)

    # -- validation ------------------------------------------------------------------
    def check(self, token: str | None) -> AccessToken | None:
        """The live token record, or None when missing, unknown or expired."""
        if not token:
            return None
        with self._lock:
            tok = self.access.get(token)
        if tok is None or tok.expires_at <= time.time():
            return None
        return tok

    # -- token endpoint --------------------------------------------------------------
    def parse_body(self, content_type: str, raw: bytes) -> dict[str, Any]:
        """Decode the token request body.

        Raises:
            OAuthError: on a body the endpoint would reject.
        """
        if "application/x-www-form-urlencoded" in content_type:
            # Whether the real endpoint accepts form bodies is unconfirmed (§1.3).
            if not self.config.accept_form_token_body:
                raise OAuthError(
                    HTTPStatus.BAD_REQUEST, "invalid_request", "Request body must be JSON."
                )
            return {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            raise OAuthError(
                HTTPStatus.BAD_REQUEST, "invalid_request", "Request body is not valid JSON."
            ) from None
        if not isinstance(body, dict):
            raise OAuthError(
                HTTPStatus.BAD_REQUEST, "invalid_request", "Request body must be a JSON object."
            )
        return body

    def _rate_limited(self) -> bool:
        limit = self.config.token_rate_limit_per_minute
        if not limit:
            return False
        now = time.time()
        with self._lock:
            while self._recent and self._recent[0] < now - 60:
                self._recent.popleft()
            if len(self._recent) >= limit:
                return True
            self._recent.append(now)
        return False

    def grant(self, body: dict[str, Any], base_url: str) -> dict[str, Any]:
        """Handle one token request and return the success body.

        Raises:
            OAuthError: for every OAuth failure.
        """
        grant_type = _grant_type(body)
        self._check_client(body)
        scopes = self._narrow(self._grantable_scopes(grant_type, body), body)
        if self._rate_limited():
            raise OAuthError(
                HTTPStatus.TOO_MANY_REQUESTS, "rate_limited", "Too many token requests."
            )
        return self._mint(grant_type, scopes, base_url)

    def _check_client(self, body: dict[str, Any]) -> None:
        """Client id and secret, and the MID when one is sent."""
        cfg = self.config
        if body.get("client_id") != cfg.client_id or body.get("client_secret") != cfg.client_secret:
            raise OAuthError(
                HTTPStatus.UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed. Make sure that the client ID and client secret "
                "are valid and that the package is installed and enabled.",
            )
        account = body.get("account_id")
        if account not in (None, "") and str(account) != cfg.account_id:
            # Real body undocumented (§1.6): only the 401 status is known.
            raise OAuthError(
                HTTPStatus.UNAUTHORIZED,
                "invalid_client",
                "The integration is not enabled for this account_id.",
            )

    def _grantable_scopes(self, grant_type: GrantType, body: dict[str, Any]) -> frozenset[str]:
        """The scopes this grant may carry: the package's, or the refresh token's."""
        cfg = self.config
        if grant_type == GrantType.REFRESH_TOKEN:
            return self._consume_refresh(str(body.get("refresh_token") or ""))
        if grant_type == GrantType.AUTHORIZATION_CODE and (
            body.get("code") != cfg.auth_code or body.get("redirect_uri") != cfg.redirect_uri
        ):
            raise OAuthError(
                HTTPStatus.BAD_REQUEST,
                "invalid_grant",
                "The authorization code or redirect_uri is invalid.",
            )
        return frozenset(cfg.granted_scopes)

    def _mint(self, grant_type: GrantType, scopes: frozenset[str], base_url: str) -> dict[str, Any]:
        """Issue an access token (and a refresh token, except for s2s) and build the reply."""
        cfg = self.config
        access = secrets.token_urlsafe(48)
        now = time.time()
        reply: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": cfg.token_lifetime_seconds,
            "scope": " ".join(sorted(scopes)),
            "soap_instance_url": base_url + "/",
            "rest_instance_url": base_url + "/",
        }
        with self._lock:
            self.access[access] = AccessToken(
                scopes, cfg.account_id, now + cfg.token_lifetime_seconds
            )
            self.minted += 1
            if grant_type != GrantType.CLIENT_CREDENTIALS:  # s2s never gets a refresh token (§1.2)
                refresh = secrets.token_urlsafe(48)
                self.refresh[refresh] = RefreshToken(
                    scopes, cfg.account_id, now + cfg.refresh_token_lifetime_seconds
                )
                reply["refresh_token"] = refresh
        return reply

    def _consume_refresh(self, token: str) -> frozenset[str]:
        with self._lock:
            record = self.refresh.pop(token, None)
            if record is not None:
                self.used_refresh.add(token)
        if record is None or record.expires_at <= time.time():
            raise OAuthError(
                HTTPStatus.BAD_REQUEST,
                "invalid_grant",
                "The refresh token is invalid or was already used.",
            )
        return record.scopes

    @staticmethod
    def _narrow(available: frozenset[str], body: dict[str, Any]) -> frozenset[str]:
        if "scope" not in body or body["scope"] is None:
            return available  # omitted: every scope of the package / refresh token
        asked = frozenset(str(body["scope"]).split())  # "" -> no scopes at all (documented)
        extra = asked - available
        if extra:
            # Documented as "must be a subset"; the exact error is not recorded.
            raise OAuthError(
                HTTPStatus.BAD_REQUEST,
                "invalid_scope",
                f"Scopes not granted: {' '.join(sorted(extra))}",
            )
        return asked
