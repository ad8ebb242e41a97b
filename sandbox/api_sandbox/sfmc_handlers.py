"""Thin SFMC handlers: read the request, call the model, return its reply.

Each takes a ``routes.Request`` and returns a ``Reply``; every refusal is a typed error
from ``errors.py`` (raised here or by the model) that the server renders.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING

from api_sandbox import sfmc_fields
from api_sandbox.errors import SoapFaultError, forbidden, not_authorized, not_found
from api_sandbox.replies import Reply, ok, xml_reply
from api_sandbox.sfmc_soap import parse_request

if TYPE_CHECKING:
    from api_sandbox.routes import Request
    from api_sandbox.sfmc_rowset import Page

READ_SCOPE = "data_extensions_read"


# -- auth -------------------------------------------------------------------------------
def token(req: Request) -> Reply:
    """``POST /v2/token``."""
    auth = req.app.auth
    body = auth.parse_body(req.header("Content-Type") or "", req.body)
    return ok(auth.grant(body, req.base_url))


def _require_read_scope(req: Request) -> None:
    """A live bearer token with ``data_extensions_read`` (checked before the key is resolved)."""
    tok = req.app.auth.check(req.bearer())
    if tok is None:
        raise not_authorized()
    if READ_SCOPE not in tok.scopes:
        raise forbidden()


# -- REST -------------------------------------------------------------------------------
def rowset(req: Request) -> Reply:
    """``GET /data/v1/customobjectdata/{key/<key>|token/<t>}/rowset``."""
    _require_read_scope(req)
    app = req.app
    page = _rowset_page(req)
    rule = app.faults.check_content("rowset", page.body["page"])
    if rule is not None:
        app.fault_fired("rowset")
        page = app.rowset.distort(page, rule)
    reply = Reply(HTTPStatus.OK, page.wire())
    # The page content is already fixed; scenario changes are applied before the bytes
    # leave, so the client's next request always sees them (no race).
    app.page_served(page.body["customObjectKey"], page.body["page"], len(page.items or ()))
    return reply


def _rowset_page(req: Request) -> Page:
    parts = req.rest.strip("/").split("/")
    if len(parts) == 3 and parts[2].lower() == "rowset":  # noqa: PLR2004 - {kind}/{id}/rowset
        kind, ident = parts[0].lower(), parts[1]
        if kind == "key":
            return req.app.rowset.by_key(ident, req.query)
        if kind == "token":
            return req.app.rowset.by_token(ident, req.query)
    raise not_found()


def rowset_read_kind(req: Request) -> str:
    """Which row read this is, for the request budget: ``rest_key`` or ``rest_token``."""
    return "rest_token" if req.rest.strip("/").lower().startswith("token/") else "rest_key"


def fields(req: Request) -> Reply:
    """Optional REST schema read: ``/data/v1/customobjects/{guid}/fields`` (by id, not key)."""
    _require_read_scope(req)
    parts = req.rest.strip("/").split("/")
    if len(parts) == 2 and parts[1].lower() == "fields":  # noqa: PLR2004 - {guid}/fields
        de = sfmc_fields.find(req.app.store, parts[0])
        if de is not None:
            return ok(sfmc_fields.rest_fields(de))
    raise not_found()


# -- SOAP -------------------------------------------------------------------------------
def soap(req: Request) -> Reply:
    """``POST /Service.asmx``: Retrieve only."""
    app = req.app
    soap_req = parse_request(req.body)
    tok = app.auth.check(soap_req.token)
    if tok is None:
        raise SoapFaultError("q0:Security", "Token Expired")
    xml, de_key, rows = app.soap.retrieve(soap_req, has_scope=READ_SCOPE in tok.scopes)
    if de_key is not None and rows:
        app.soap_rows_served(de_key, rows)
    return xml_reply(HTTPStatus.OK, xml)


def soap_read_kind(req: Request) -> str | None:
    """``soap`` (row retrieve or ContinueRequest: only row retrieves are paged), ``soap_fields``."""
    try:
        soap_req = parse_request(req.body)
    except SoapFaultError:
        return None
    if soap_req.continue_id or soap_req.object_type.startswith("DataExtensionObject"):
        return "soap"
    if soap_req.object_type == "DataExtensionField":
        return "soap_fields"
    return None
