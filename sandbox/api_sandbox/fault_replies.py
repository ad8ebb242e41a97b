"""The answer to an injected transport fault (``action: status``), in its API's shape.

An explicit ``body`` wins; a gateway status gets the HTML page a load balancer sends;
otherwise the API's own error class renders it (``errors.py``), so a faulted reply looks
like one the real API sends.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING

from api_sandbox.errors import ApiError, InsiderError, SfmcRestError, SoapFaultError
from api_sandbox.replies import HTML, TEXT, Reply, json_reply

if TYPE_CHECKING:
    from collections.abc import Callable

    from api_sandbox.faults import FaultRule

# SFMC REST errorcodes of a 429 (sfmc-api.md §5)
RATE_LIMITED = 50100
BLOCKED = 50200
# Gateways answer these with HTML, not JSON: clients must not assume a JSON body.
GATEWAY_STATUSES = frozenset(
    {
        HTTPStatus.INTERNAL_SERVER_ERROR,
        HTTPStatus.BAD_GATEWAY,
        HTTPStatus.SERVICE_UNAVAILABLE,
        HTTPStatus.GATEWAY_TIMEOUT,
    }
)
# Insider's own 500 has a documented JSON body, so only the other gateway statuses are HTML.
INSIDER_GATEWAY_STATUSES = GATEWAY_STATUSES - {HTTPStatus.INTERNAL_SERVER_ERROR}


def fault_reply(
    rule: FaultRule, error: Callable[[FaultRule], ApiError], gateway: frozenset[int]
) -> Reply:
    """The reply for a firing status rule; ``error`` and ``gateway`` come from its API."""
    headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else {}
    if isinstance(rule.body, str):
        return Reply(rule.status, rule.body.encode(), TEXT, headers)
    if rule.body is not None:
        return json_reply(rule.status, rule.body, headers)
    if rule.status in gateway:
        status = HTTPStatus(rule.status)
        text = f"<html><body><h1>{rule.status} {status.phrase}</h1></body></html>"
        return Reply(rule.status, text.encode(), HTML, headers)
    return error(rule).reply(headers)


def sfmc_rest_error(rule: FaultRule) -> SfmcRestError:
    """The generic SFMC REST body; 429s carry errorcode 50100 or 50200 (sfmc-api.md §5)."""
    code = rule.errorcode
    if code is None:
        code = RATE_LIMITED if rule.status == HTTPStatus.TOO_MANY_REQUESTS else 0
    if code == BLOCKED:
        message = "Your requests are temporarily blocked."
    elif rule.status == HTTPStatus.TOO_MANY_REQUESTS:
        message = "Rate limit exceeded"
    else:
        message = "Error"
    retry_after = rule.retry_after if code == RATE_LIMITED else None
    return SfmcRestError(rule.status, rule.message or message, code, retry_after)


def soap_error(rule: FaultRule) -> SoapFaultError:
    """A server-side SOAP Fault with the rule's status."""
    return SoapFaultError(
        "soap:Server", rule.message or "Server was unable to process request.", rule.status
    )


def insider_error(rule: FaultRule) -> InsiderError:
    """Insider's bodies for an injected status (insider-api.md §2.2)."""
    if rule.status == HTTPStatus.TOO_MANY_REQUESTS:
        return InsiderError(rule.status, {"error": rule.message or "rejected: too many requests"})
    if rule.status == HTTPStatus.FORBIDDEN:
        message = rule.message or "Request Limit Exceeded"
    else:
        message = rule.message or "The request processing has failed because of an unknown error."
    return InsiderError(rule.status, {"success": False, "message": message})
