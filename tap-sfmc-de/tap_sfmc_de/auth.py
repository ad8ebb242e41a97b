"""Access tokens: minting (JSON body), caching, re-minting, and the refresh-token store.

Tokens are cached for ``expires_in`` minus a safety margin, so steady state costs one
token request per ~17-20 minutes. SFMC refresh tokens rotate and are single-use: the
newest one lives in a 0600 file, guarded by an fcntl lock held across read, refresh and
write, and the rotated token is persisted before the access token is used.

Run ``python -m tap_sfmc_de.auth exchange --config config.json --code CODE`` (or the
``tap-sfmc-de-auth`` script) once to turn an authorization code into the first stored
refresh token.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tap_sfmc_de.client import HttpClient, json_body
from tap_sfmc_de.config_schema import AuthFlow
from tap_sfmc_de.errors import SfmcApiError, SfmcAuthError, SfmcConfigError
from tap_sfmc_de.settings import Settings, validate_base_url
from tap_sfmc_de.status_policy import CREDENTIALS_HINT, REAUTHORIZE_HINT, Endpoint, token_error

__all__ = ["CREDENTIALS_HINT", "REAUTHORIZE_HINT", "RefreshTokenStore", "TokenManager", "main"]

LOGGER = logging.getLogger("tap-sfmc-de.auth")
EXPIRY_MARGIN_SECONDS = 60.0
DEFAULT_EXPIRES_IN = 1079.0


@dataclass
class AccessToken:
    """A minted token and the instance URLs it is valid for."""

    value: str = field(repr=False)
    rest_url: str
    soap_url: str
    expires_at: float  # time.monotonic() deadline, margin already applied
    scope: str = ""


class RefreshTokenStore:
    """The newest refresh token in a JSON file with 0600 permissions, plus a lock file."""

    def __init__(self, path: str | Path) -> None:
        """Remember the path.

        Args:
            path: File that holds the token.
        """
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock so two processes never refresh the same token.

        Yields:
            Nothing; the lock is held inside the block.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def read(self) -> str | None:
        """Return the stored refresh token, if any.

        Returns:
            The token or None.

        Raises:
            SfmcConfigError: If the file exists but is not a token store.
        """
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise SfmcConfigError(f"Token store {self.path} is unreadable or not JSON.") from exc
        token = data.get("refresh_token") if isinstance(data, dict) else None
        return str(token) if token else None

    def write(self, refresh_token: str) -> None:
        """Atomically replace the stored token (0600), fsynced before returning.

        Args:
            refresh_token: The newest refresh token.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"refresh_token": refresh_token, "updated_at": time.time()}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(0o600)
        tmp.replace(self.path)


class TokenManager:
    """Mints and caches access tokens for one tap run (shared by all streams)."""

    def __init__(
        self,
        settings: Settings,
        http: HttpClient,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Set up.

        Args:
            settings: Validated settings.
            http: HTTP client with the shared error policy.
            clock: Monotonic clock (injectable for tests).
        """
        self.settings = settings
        self.http = http
        self.clock = clock
        self.store = RefreshTokenStore(settings.token_store_path)
        self._token: AccessToken | None = None
        self.minted = 0
        # Pages are fetched on several threads: one mint (and one refresh-token rotation)
        # at a time, and a thread that waited here finds the token the other one minted.
        self._lock = threading.RLock()

    @property
    def token_url(self) -> str:
        """The v2 token endpoint."""
        return f"{self.settings.auth_base_url}v2/token"

    def get(self) -> AccessToken:
        """Return a cached token, minting one if none is valid.

        Returns:
            A token valid for at least the safety margin.
        """
        with self._lock:
            if self._token is None or self.clock() >= self._token.expires_at:
                self._token = self._mint()
            return self._token

    def invalidate(self, rejected: AccessToken | None = None) -> None:
        """Forget the cached token (after a 401 or SOAP Token Expired).

        Args:
            rejected: The token the failed request carried; when another thread already
                replaced it, the newer token is kept (two 401s mint once).
        """
        with self._lock:
            if rejected is not None and self._token is not rejected:
                return
            LOGGER.info("Access token rejected; minting a new one")
            self._token = None

    def _base_body(self, grant_type: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "grant_type": grant_type,
            "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret,
        }
        if self.settings.scopes:
            body["scope"] = self.settings.scopes
        if self.settings.account_id:
            body["account_id"] = int(self.settings.account_id)
        return body

    def _mint(self) -> AccessToken:
        if self.settings.auth_flow == AuthFlow.REFRESH_TOKEN:
            return self._mint_with_refresh_token()
        return self._parse(self._post(self._base_body("client_credentials")))

    def _mint_with_refresh_token(self) -> AccessToken:
        with self.store.locked():
            refresh = self.store.read() or self.settings.refresh_token
            if not refresh:
                raise SfmcAuthError(
                    f"auth_flow is refresh_token but there is no refresh token: {REAUTHORIZE_HINT}"
                    f" once (token store: {self.store.path}), or set refresh_token."
                )
            body = self._base_body("refresh_token")
            body["refresh_token"] = refresh
            payload = self._post(body)
            rotated = payload.get("refresh_token")
            if rotated:
                self.store.write(str(rotated))  # persist before the access token is used
            else:
                LOGGER.warning("Token response carried no new refresh token; keeping the old one")
            return self._parse(payload)

    def exchange_code(self, code: str, redirect_uri: str) -> None:
        """Exchange an authorization code and store the first refresh token.

        Args:
            code: Authorization code from the redirect.
            redirect_uri: The redirect URI registered on the package (not URL-encoded).

        Raises:
            SfmcAuthError: If the response has no refresh token.
        """
        body = self._base_body("authorization_code")
        body.update({"code": code, "redirect_uri": redirect_uri})
        with self.store.locked():
            payload = self._post(body)
            rotated = payload.get("refresh_token")
            if not rotated:
                raise SfmcAuthError(
                    "The token response had no refresh_token: enable the 'offline' scope on the "
                    "Web App package and request it."
                )
            self.store.write(str(rotated))

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        self.minted += 1
        try:
            response = self.http.send(
                "POST",
                self.token_url,
                kind=Endpoint.TOKEN,
                prepare=lambda: {"json": body},
            )
        except SfmcApiError as exc:
            raise token_error(exc, body["grant_type"]) from None
        return json_body(response)

    def _parse(self, payload: dict[str, Any]) -> AccessToken:
        value = payload.get("access_token")
        if not value:
            raise SfmcAuthError("The token response had no access_token.")
        expires_in = float(payload.get("expires_in") or DEFAULT_EXPIRES_IN)
        rest = (
            payload.get("rest_instance_url")
            or f"https://{self.settings.subdomain}.rest.marketingcloudapis.com/"
        )
        soap = (
            payload.get("soap_instance_url")
            or f"https://{self.settings.subdomain}.soap.marketingcloudapis.com/"
        )
        return AccessToken(
            value=str(value),
            rest_url=validate_base_url(_with_scheme(str(rest)), "rest_instance_url"),
            soap_url=validate_base_url(_with_scheme(str(soap)), "soap_instance_url"),
            # 60 s early for real (~20 min) tokens; a tenth of the lifetime for short ones.
            expires_at=self.clock() + expires_in - min(EXPIRY_MARGIN_SECONDS, expires_in / 10),
            scope=str(payload.get("scope") or ""),
        )


def _with_scheme(url: str) -> str:
    # Documentation examples show bare hosts; real responses carry https://.../
    return url if "://" in url else f"https://{url}"


def authorize_url(settings: Settings, redirect_uri: str) -> str:
    """The URL a user opens once to grant the Web App access.

    Args:
        settings: Validated settings.
        redirect_uri: Redirect URI registered on the package.

    Returns:
        The authorize URL.
    """
    query = {
        "response_type": "code",
        "client_id": settings.client_id,
        "redirect_uri": redirect_uri,
    }
    if settings.scopes:
        query["scope"] = settings.scopes
    if settings.account_id:
        query["account_id"] = settings.account_id
    return f"{settings.auth_base_url}v2/authorize?{urlencode(query)}"


def _redirect_uri(given: str | None, settings: Settings) -> str:
    redirect = given or settings.redirect_uri
    if not redirect:
        raise SfmcConfigError("Pass --redirect-uri or set redirect_uri.")
    return redirect


def main(argv: list[str] | None = None) -> int:
    """CLI: ``authorize-url`` prints the consent URL; ``exchange`` stores the first token.

    Args:
        argv: Arguments (defaults to sys.argv).

    Returns:
        Exit code.
    """
    parser = argparse.ArgumentParser(prog="tap-sfmc-de-auth", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("authorize-url", "exchange"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--config", required=True, help="tap config JSON file")
        cmd.add_argument("--redirect-uri", help="defaults to the redirect_uri setting")
        if name == "exchange":
            cmd.add_argument("--code", required=True, help="code from the redirect URL")
    args = parser.parse_args(argv)
    try:
        config = json.loads(Path(args.config).read_text(encoding="utf-8"))
        settings = Settings.from_config(config)
        redirect = _redirect_uri(args.redirect_uri, settings)
        if args.command == "authorize-url":
            sys.stdout.write(authorize_url(settings, redirect) + "\n")
            return 0
        TokenManager(settings, HttpClient(settings.retry)).exchange_code(args.code, redirect)
    except (SfmcConfigError, SfmcApiError, OSError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stdout.write(f"Refresh token stored in {settings.token_store_path} (mode 0600).\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
