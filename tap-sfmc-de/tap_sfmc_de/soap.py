"""SOAP ``Retrieve`` of ``DataExtensionField``: envelope, call and parsing."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # see _parse_xml for why this is safe
from xml.sax.saxutils import escape

from tap_sfmc_de.auth import TokenManager
from tap_sfmc_de.client import HttpClient
from tap_sfmc_de.errors import SfmcApiError, TokenExpiredError
from tap_sfmc_de.schema import DEField
from tap_sfmc_de.status_policy import Endpoint, soap_token_rejected

FIELD_PROPERTIES = (
    "Name",
    "FieldType",
    "IsPrimaryKey",
    "IsRequired",
    "MaxLength",
    "Scale",
    "Ordinal",
)
MAX_CONTINUATIONS = 100


def field_retrieve_envelope(token: str, de_key: str, continue_request: str | None = None) -> str:
    """Build the SOAP 1.1 envelope that retrieves one DE's fields.

    Args:
        token: Access token (goes into the ``fueloauth`` SOAP header; never log this).
        de_key: DE external key (XML-escaped here).
        continue_request: RequestID to continue, when SFMC said MoreDataAvailable.

    Returns:
        The envelope text.
    """
    props = "".join(f"<Properties>{p}</Properties>" for p in FIELD_PROPERTIES)
    cont = (
        f"<ContinueRequest>{escape(continue_request)}</ContinueRequest>" if continue_request else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f'<s:Header><fueloauth xmlns="http://exacttarget.com">{escape(token)}</fueloauth></s:Header>'
        '<s:Body><RetrieveRequestMsg xmlns="http://exacttarget.com/wsdl/partnerAPI">'
        "<RetrieveRequest><ObjectType>DataExtensionField</ObjectType>"
        f"{props}"
        '<Filter xsi:type="SimpleFilterPart"><Property>DataExtension.CustomerKey</Property>'
        f"<SimpleOperator>equals</SimpleOperator><Value>{escape(de_key)}</Value></Filter>"
        f"{cont}</RetrieveRequest></RetrieveRequestMsg></s:Body></s:Envelope>"
    )


def _parse_xml(text: str) -> ET.Element:
    # The body comes from the authenticated SFMC host over TLS, and CPython's expat
    # (>= 2.4.1) refuses entity-expansion attacks, so ElementTree is acceptable here.
    try:
        return ET.fromstring(text)  # noqa: S314
    except ET.ParseError as exc:
        raise SfmcApiError("SFMC returned a SOAP response that is not XML") from exc


def _text(elem: ET.Element, name: str) -> str:
    child = elem.find(f"{{*}}{name}")
    return (child.text or "").strip() if child is not None and child.text else ""


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def parse_field_retrieve(text: str) -> tuple[str, str, list[DEField]]:
    """Parse a RetrieveResponseMsg for DataExtensionField.

    Args:
        text: Response XML.

    Returns:
        OverallStatus, RequestID and the fields of this batch.
    """
    root = _parse_xml(text)
    msg = next(root.iterfind(".//{*}RetrieveResponseMsg"), None)
    if msg is None:
        raise SfmcApiError("SFMC returned an unexpected SOAP response (no RetrieveResponseMsg)")
    fields = [
        DEField(
            name=_text(r, "Name"),  # SFMC names may carry stray whitespace
            field_type=_text(r, "FieldType") or "Text",
            is_primary_key=_text(r, "IsPrimaryKey").lower() == "true",
            is_required=_text(r, "IsRequired").lower() == "true",
            max_length=_int_or_none(_text(r, "MaxLength")),
            scale=_int_or_none(_text(r, "Scale")),
            ordinal=_int_or_none(_text(r, "Ordinal")) or 0,
        )
        for r in msg.iterfind(".//{*}Results")
    ]
    return _text(msg, "OverallStatus"), _text(msg, "RequestID"), [f for f in fields if f.name]


def retrieve_fields(http: HttpClient, tokens: TokenManager, de_key: str) -> list[DEField]:
    """Retrieve every field of a DE (follows MoreDataAvailable; re-mints on Token Expired).

    Args:
        http: HTTP client.
        tokens: Token manager.
        de_key: DE external key.

    Returns:
        Fields sorted by Ordinal (empty if the key is unknown).

    Raises:
        SfmcApiError: If SFMC reports an error status.
    """
    fields: list[DEField] = []
    request_id: str | None = None
    for _ in range(MAX_CONTINUATIONS):
        status, request_id, batch = _retrieve_once(http, tokens, de_key, request_id)
        fields.extend(batch)
        if status.startswith("Error") or status not in {"OK", "MoreDataAvailable"}:
            raise SfmcApiError(
                f"SOAP DataExtensionField retrieve for DE key '{de_key}' failed: {status[:200]}. "
                "If it mentions permissions, grant the package Data Extensions Read."
            )
        if status == "OK" or not request_id:
            break
    return sorted(fields, key=lambda f: f.ordinal)


def _retrieve_once(
    http: HttpClient, tokens: TokenManager, de_key: str, request_id: str | None
) -> tuple[str, str, list[DEField]]:
    def prepare() -> dict[str, object]:
        # Rebuilt per attempt so a re-minted token lands in the SOAP header too.
        token = tokens.get()
        return {
            "url": f"{token.soap_url}Service.asmx",
            "headers": {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": "Retrieve"},
            "data": field_retrieve_envelope(token.value, de_key, request_id).encode("utf-8"),
        }

    url = f"{tokens.get().soap_url}Service.asmx"
    try:
        response = http.send(
            "POST", url, kind=Endpoint.SOAP, prepare=prepare, on_remint=tokens.invalidate
        )
    except TokenExpiredError as exc:
        raise soap_token_rejected() from exc
    return parse_field_retrieve(response.text)
