"""REST ``customobjectdata/key/{key}/rowset`` pages.

Pages are always addressed by ``$page`` on the key URL (never through ``requestToken``
continuation links) so a cursor can step back and resume in a later run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tap_sfmc_de.auth import AccessToken, TokenManager
from tap_sfmc_de.client import HttpClient, build_query, json_body, response_date
from tap_sfmc_de.concurrency_gate import ConcurrencyGate
from tap_sfmc_de.errors import SfmcApiError, TokenExpiredError
from tap_sfmc_de.status_policy import SCOPE_HINT, Endpoint, rest_token_rejected, rowset_error

__all__ = ["SCOPE_HINT", "RowsetClient", "RowsetPage"]


@dataclass
class RowsetPage:
    """One response of the rowset endpoint."""

    count: int
    items: list[dict[str, Any]]
    has_next: bool
    server_time: dt.datetime | None


class RowsetClient:
    """Reads rowset pages of one DE."""

    def __init__(self, http: HttpClient, tokens: TokenManager, de_key: str) -> None:
        """Set up.

        Args:
            http: HTTP client.
            tokens: Token manager.
            de_key: DE external key (CustomerKey).
        """
        self.http = http
        self.tokens = tokens
        self.de_key = de_key

    @property
    def gate(self) -> ConcurrencyGate:
        """The HTTP client's gate on REST requests in flight (shared by every stream)."""
        return self.http.gate

    def fetch(
        self,
        *,
        page: int,
        page_size: int,
        filter_expr: str | None = None,
        order_by: str | None = None,
        before_resend: Callable[[], None] | None = None,
    ) -> RowsetPage:
        """Fetch one page.

        Args:
            page: 1-based page number.
            page_size: Rows per page (at most 2500).
            filter_expr: ``$filter`` expression, if any.
            order_by: ``$orderBy`` expression, if any.
            before_resend: Called before the request is sent again (a retry or the resend
                after a re-mint); it may raise to stop (the run's budget is spent).

        Returns:
            The page.
        """
        params: dict[str, Any] = {"$page": page, "$pageSize": page_size}
        if filter_expr:
            params["$filter"] = filter_expr
        if order_by:
            params["$orderBy"] = order_by
        path = f"data/v1/customobjectdata/key/{quote(self.de_key, safe='')}/rowset?"
        query = build_query(params)

        sent: list[AccessToken] = []  # the token of the latest attempt

        def prepare() -> dict[str, Any]:
            if sent and before_resend is not None:  # every attempt reaches SFMC: pay for it
                before_resend()
            token = self.tokens.get()
            sent[:] = [token]
            return {
                "url": f"{token.rest_url}{path}{query}",
                "headers": {"Authorization": f"Bearer {token.value}"},
            }

        def remint() -> None:  # only the rejected token: another thread may have a new one
            self.tokens.invalidate(sent[0] if sent else None)

        url = f"{self.tokens.get().rest_url}{path}{query}"
        try:
            response = self.http.send(
                "GET", url, kind=Endpoint.REST, prepare=prepare, on_remint=remint
            )
        except TokenExpiredError:
            raise rest_token_rejected() from None
        except SfmcApiError as exc:
            raise rowset_error(exc, self.de_key) from None
        return self._parse(json_body(response), response_date(response))

    @staticmethod
    def _parse(body: dict[str, Any], server_time: dt.datetime | None) -> RowsetPage:
        items = body.get("items") or []  # absent, not [], when there are no rows
        links = body.get("links") or {}
        count = body.get("count")
        if not isinstance(count, int) or isinstance(count, bool):
            # Paging, shift protection and completion all rest on count: never guess it.
            raise SfmcApiError("SFMC rowset response has no integer 'count'; cannot page safely")
        return RowsetPage(
            count=count,
            items=items if isinstance(items, list) else [],
            has_next=bool(isinstance(links, dict) and links.get("next")),
            server_time=server_time,
        )
