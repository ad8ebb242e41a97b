"""One exception per error shape the emulated APIs answer with, each rendering itself.

Models raise these; ``server.Handler`` turns any of them into its reply in one place
(as moto's ``RESTError`` subclasses carry their code and body). Injected faults render
through the same classes, so a faulted answer has the API's real error shape.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from xml.sax.saxutils import escape

from api_sandbox._compat import override
from api_sandbox.replies import Reply, json_reply, xml_reply

DOC_URL = (
    "https://developer.salesforce.com/docs/atlas.en-us.mc-apis.meta/mc-apis/error-handling.htm"
)
OAUTH_ERROR_URI = "https://developer.salesforce.com/docs"
SOAP_ENVELOPE_HEAD = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
    'xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing">'
)


class ApiError(Exception):
    """An error answer: the status plus the body in its API's shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    def reply(self, headers: dict[str, str] | None = None) -> Reply:
        """The HTTP answer for this error."""
        raise NotImplementedError


class SfmcRestError(ApiError):
    """SFMC REST's generic body: ``message``, ``errorcode``, ``documentation`` (sfmc-api.md §5)."""

    def __init__(
        self, status: int, message: str, errorcode: int = 0, retry_after: int | None = None
    ) -> None:
        super().__init__(status, message)
        self.body: dict[str, Any] = {
            "message": message,
            "errorcode": errorcode,
            "documentation": DOC_URL,
        }
        if retry_after is not None:  # rate-limit bodies (errorcode 50100) carry it
            self.body["retryAfter"] = retry_after

    @override
    def reply(self, headers: dict[str, str] | None = None) -> Reply:
        """JSON body."""
        return json_reply(self.status, self.body, headers)


def not_authorized() -> SfmcRestError:
    """Missing, unknown or expired bearer token."""
    return SfmcRestError(HTTPStatus.UNAUTHORIZED, "Not Authorized", 0)


def forbidden() -> SfmcRestError:
    """The token lacks the scope the endpoint needs."""
    return SfmcRestError(
        HTTPStatus.FORBIDDEN, "Insufficient privileges to complete this action.", 20000
    )


def not_found(message: str = "Not Found") -> SfmcRestError:
    """An unknown DE, request token or path below a REST route (errorcode 30003)."""
    return SfmcRestError(HTTPStatus.NOT_FOUND, message, 30003)


class OAuthError(ApiError):
    """``POST /v2/token`` failure: ``error``, ``error_description``, ``error_uri``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(status, description)
        self.body = {"error": error, "error_description": description, "error_uri": OAUTH_ERROR_URI}

    @override
    def reply(self, headers: dict[str, str] | None = None) -> Reply:
        """JSON body; a rate-limited token request is told to wait a minute."""
        if headers is None and self.status == HTTPStatus.TOO_MANY_REQUESTS:
            headers = {"Retry-After": "60"}
        return json_reply(self.status, self.body, headers)


def soap_fault_envelope(code: str, message: str) -> str:
    """A SOAP 1.1 Fault envelope."""
    return (
        f"{SOAP_ENVELOPE_HEAD}<soap:Body><soap:Fault>"
        f'<faultcode xmlns:q0="http://exacttarget.com">{escape(code)}</faultcode>'
        f"<faultstring>{escape(message)}</faultstring>"
        "</soap:Fault></soap:Body></soap:Envelope>"
    )


class SoapFaultError(ApiError):
    """A SOAP Fault (HTTP 500 unless an injected fault says otherwise)."""

    def __init__(
        self, code: str, message: str, status: int = HTTPStatus.INTERNAL_SERVER_ERROR
    ) -> None:
        super().__init__(status, message)
        self.code = code

    @override
    def reply(self, headers: dict[str, str] | None = None) -> Reply:
        """XML Fault envelope."""
        return xml_reply(self.status, soap_fault_envelope(self.code, str(self)), headers)


class InsiderError(ApiError):
    """An Insider request-level rejection with its JSON body (insider-api.md §2.2)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, str(body))
        self.body = body

    @override
    def reply(self, headers: dict[str, str] | None = None) -> Reply:
        """JSON body."""
        return json_reply(self.status, self.body, headers)


class AdminError(ApiError):
    """An admin (``/_sandbox/``) request the sandbox refuses: ``{"error": message}``."""

    @override
    def reply(self, headers: dict[str, str] | None = None) -> Reply:
        """JSON body."""
        return json_reply(self.status, {"error": str(self)}, headers)
