"""REST ``GET /data/v1/customobjectdata/{key/<key>|token/<t>}/rowset``.

Reproduces the observed quirks (sfmc-api.md §2): lowercased names, keys/values split,
all-string values, ``count`` = total matches, ``links.next`` only when another page
exists, ``items`` absent on empty pages, and continuation through ``requestToken``.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from api_sandbox import sfmc_time
from api_sandbox.config import QueryMode, SandboxConfig
from api_sandbox.errors import SfmcRestError, not_found
from api_sandbox.faults import EmptyItems, FaultAction, FaultRule
from api_sandbox.filters import (
    DateLiteral,
    Filter,
    FilterError,
    Grammar,
    parse_rest_filter,
    parse_rest_order,
)
from api_sandbox.store import DataExtension, Order, Store

# errorcode of a 400 for a bad $filter, $orderBy or paging parameter
BAD_QUERY = 10001


@dataclass
class RequestToken:
    """The query behind a ``requestToken``: continuation pages re-use it."""

    token: str
    de_key: str
    flt: Filter | None
    order: Order | None
    page_size: int
    expires_at: float
    snapshot: str | None = None


@dataclass(frozen=True)
class Page:
    """A rendered rowset page: its envelope and the JSON text of each item.

    Items are kept as text because rendering them is the sandbox's hot path (see
    ``item_texts``); ``wire`` splices them into the envelope's JSON.
    """

    body: dict[str, Any]  # every field but "items", in wire order
    items: list[str] | None  # None: the page has no "items" key (SFMC omits it when empty)

    def wire(self) -> bytes:
        """The reply body: ``json.dumps(..., ensure_ascii=False)`` of the whole page, in UTF-8."""
        head = json.dumps(self.body, ensure_ascii=False)
        if self.items is None:
            return head.encode("utf-8")
        # The envelope is never empty, so it ends in "}" after its last field.
        return f'{head[:-1]}, "items": [{", ".join(self.items)}]}}'.encode()


class Rowset:
    """Rowset endpoint state (request tokens) and page rendering."""

    def __init__(self, config: SandboxConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self._lock = threading.Lock()
        self.tokens: dict[str, RequestToken] = {}

    def reset(self) -> None:
        """Forget request tokens and their snapshots."""
        with self._lock:
            tokens, self.tokens = self.tokens, {}
        for tok in tokens.values():
            if tok.snapshot:
                self.store.drop_snapshot(tok.snapshot)

    def expire_all(self) -> int:
        """Make every request token expired now (continuation URLs then 404)."""
        with self._lock:
            for tok in self.tokens.values():
                tok.expires_at = 0
            return len(self.tokens)

    def _sweep(self) -> None:
        now = time.time()
        with self._lock:
            dead = [t for t in self.tokens.values() if t.expires_at <= now]
            for tok in dead:
                del self.tokens[tok.token]
        for tok in dead:
            if tok.snapshot:
                self.store.drop_snapshot(tok.snapshot)

    def _params(self, query: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in query.items():
            lname = name.lower()
            if lname.startswith("$"):
                out[lname[1:]] = value
            elif self.config.accept_unprefixed_params:
                # Observed: the endpoint also reads names without "$" (§2.2).
                out.setdefault(lname, value)
        return out

    def _page_args(self, params: dict[str, str], default_size: int) -> tuple[int, int]:
        try:
            page = int(params.get("page", "1"))
            size = int(params.get("pagesize", str(default_size)))
        except ValueError:
            raise FilterError("$page and $pageSize must be integers") from None
        if page < 1 or size < 1:
            raise FilterError("$page and $pageSize must be positive")
        # Above the maximum: capped silently. Real behaviour is unknown (§2.2, §8 q2).
        return page, min(size, self.config.max_page_size)

    def _query_part(self, params: dict[str, str], name: str, mode: str, de: DataExtension) -> Any:
        """Parse ``$filter``/``$orderBy`` as the switch says: honoured, ignored or rejected.

        Raises:
            FilterError: for a bad expression when honoured, or any when rejected.
        """
        text = params.get(name)
        if not text or mode == QueryMode.IGNORED:
            return None
        if mode == QueryMode.REJECTED:  # the third reading of "rowset cannot filter" (§2.5)
            spelled = "$filter" if name == "filter" else "$orderBy"
            raise FilterError(f"{spelled} is not supported on this endpoint")
        if name == "filter":
            return parse_rest_filter(
                text,
                de.by_lower,
                grammar=Grammar(self.config.filter_grammar),
                date_literal=DateLiteral(self.config.filter_date_literal),
            )
        return parse_rest_order(text, de.by_lower)

    def by_key(self, key: str, query: dict[str, str]) -> Page:
        """First request: ``/key/{key}/rowset``; the page body (its DE is ``customObjectKey``).

        Raises:
            SfmcRestError: 404 for an unknown key, 400 for a bad query.
        """
        de = self.store.get(key)
        if de is None:
            raise not_found(f"Data extension with key '{key}' was not found.")
        params = self._params(query)
        try:
            page, size = self._page_args(params, self.config.default_page_size)
            flt = self._query_part(params, "filter", self.config.filter_mode, de)
            order = self._query_part(params, "orderby", self.config.orderby_mode, de)
        except FilterError as exc:
            raise SfmcRestError(HTTPStatus.BAD_REQUEST, str(exc), BAD_QUERY) from None
        self._sweep()
        tok = RequestToken(
            token=str(uuid.uuid4()),
            de_key=de.key,
            flt=flt,
            order=order,
            page_size=size,
            expires_at=time.time() + self.config.request_token_lifetime_seconds,
        )
        if self.config.request_token_snapshot:
            salt = self.store.order_salt(self.config.default_order, de)
            tok.snapshot = self.store.snapshot(de, flt, order, salt)
        with self._lock:
            self.tokens[tok.token] = tok
        return self._render(de, tok, page, size)

    def by_token(self, token: str, query: dict[str, str]) -> Page:
        """Continuation: ``/token/{requestToken}/rowset?$page=N``; the page body.

        Raises:
            SfmcRestError: 404 for an unknown or expired token, 400 for bad paging.
        """
        with self._lock:
            tok = self.tokens.get(token)
        # An expired or unknown request token's real response is unknown (§2.3); 404.
        if tok is None or tok.expires_at <= time.time():
            raise not_found("Request token was not found or has expired.")
        de = self.store.get(tok.de_key)
        if de is None:
            raise not_found("Data extension was not found.")
        try:
            page, size = self._page_args(self._params(query), tok.page_size)
        except FilterError as exc:
            raise SfmcRestError(HTTPStatus.BAD_REQUEST, str(exc), BAD_QUERY) from None
        return self._render(de, tok, page, size)

    def distort(self, page: Page, rule: FaultRule) -> Page:
        """Make a rendered page lie as a content fault rule says (faults.py).

        ``empty_page`` drops the items but keeps ``count`` and promises a next page;
        ``count_jump`` shifts ``count`` on this response only; ``long_page`` appends the
        rows that follow the page (or, on the last page, repeats the rows before it).
        """
        body = dict(page.body)
        items = page.items
        if rule.action == FaultAction.EMPTY_PAGE:
            items = [] if rule.empty_items == EmptyItems.EMPTY else None
            links = dict(body["links"])
            links.setdefault("next", links["self"].rsplit("=", 1)[0] + f"={body['page'] + 1}")
            body["links"] = links
        elif rule.action == FaultAction.COUNT_JUMP:
            body["count"] = max(0, body["count"] + rule.count_delta)
        elif rule.action == FaultAction.LONG_PAGE:
            extra = self._neighbour_rows(body, rule.extra_rows)
            if extra:
                de = self.store.get(body["customObjectKey"])
                if de is not None:
                    items = [*(items or []), *item_texts(de, extra)]
        return dataclasses.replace(page, body=body, items=items)

    def _neighbour_rows(self, body: dict[str, Any], n: int) -> list[tuple[Any, ...]]:
        with self._lock:
            tok = self.tokens.get(body["requestToken"])
        de = self.store.get(body["customObjectKey"])
        if tok is None or de is None:
            return []
        end = body["page"] * body["pageSize"]
        begin = max(0, end - body["pageSize"] - n)
        after = self._rows(de, tok, n, end)
        return after or self._rows(de, tok, min(n, end - body["pageSize"] - begin), begin)

    def _rows(
        self, de: DataExtension, tok: RequestToken, limit: int, offset: int
    ) -> list[tuple[Any, ...]]:
        if limit <= 0:
            return []
        if tok.snapshot:
            return self.store.snapshot_page(tok.snapshot, limit, offset)
        salt = self.store.order_salt(self.config.default_order, de)
        return self.store.select(de, tok.flt, tok.order, limit, offset, salt=salt)

    def _render(self, de: DataExtension, tok: RequestToken, page: int, size: int) -> Page:
        offset = (page - 1) * size
        if tok.snapshot:
            count = self.store.snapshot_count(tok.snapshot)
            rows = self.store.snapshot_page(tok.snapshot, size, offset) if offset < count else []
        else:
            # One page is one moment: a change committed between its count and its rows
            # (a live scenario fired by another page's response) would make the page lie
            # about itself, which no server with one query per page does.
            with self.store.lock:
                count = self.store.count(de, tok.flt)
                salt = self.store.order_salt(self.config.default_order, de)
                rows = (
                    self.store.select(de, tok.flt, tok.order, size, offset, salt=salt)
                    if offset < count
                    else []
                )
        base = f"/v1/customobjectdata/token/{tok.token}/rowset?$page="
        links = {"self": f"{base}{page}"}
        if page * size < count:
            links["next"] = f"{base}{page + 1}"
        body: dict[str, Any] = {
            "links": links,
            "requestToken": tok.token,
            "tokenExpireDateUtc": sfmc_time.utc_naive_iso(tok.expires_at - time.time()),
            "customObjectId": de.object_id,
            "customObjectKey": de.key,
            "pageSize": size,
            "page": page,
            "count": count,
            "top": 0,
        }
        return Page(body, item_texts(de, rows) if rows else None)


def item_texts(de: DataExtension, rows: list[tuple[Any, ...]]) -> list[str]:
    """Each row's JSON text: ``{"keys": {...}, "values": {...}}``, lowercased names, string values.

    Byte for byte what ``json.dumps`` wrote for the per-row dicts this replaced, at a
    fraction of the CPU (the sandbox shares its cores with the plugins it serves): each
    column is converted in one pass (``Field.wire_json``) and each row fills a template.
    """
    keys = [i for i, f in enumerate(de.fields) if f.is_primary_key]
    values = [i for i, f in enumerate(de.fields) if not f.is_primary_key]
    template = f'{{"keys": {{{_members(de, keys)}}}, "values": {{{_members(de, values)}}}}}'
    columns = list(zip(*rows, strict=True))
    if not columns:  # a DE without fields: every row is the bare template
        return [template] * len(rows)
    texts = [de.fields[i].wire_json(columns[i]) for i in keys + values]
    return [template % cells for cells in zip(*texts, strict=True)]


def _members(de: DataExtension, positions: list[int]) -> str:
    """``"name": %s, ...`` for these fields: a %-template (a "%" in a name is escaped)."""
    names = (json.dumps(de.fields[i].name.lower(), ensure_ascii=False) for i in positions)
    return ", ".join(f"{name.replace('%', '%%')}: %s" for name in names)
