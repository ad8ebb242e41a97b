"""SFMC SOAP ``POST /Service.asmx`` emulation.

Supports ``Retrieve`` of DataExtensionField and DataExtensionObject[...] with filters,
batching and ContinueRequest.

Parsing matches on local element names only, because clients differ in namespace
prefixes and SOAP versions.
"""

from __future__ import annotations

import random
import re
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from api_sandbox.config import SandboxConfig
from api_sandbox.errors import SOAP_ENVELOPE_HEAD, SoapFaultError
from api_sandbox.faults import FaultAction, FaultRule, Faults
from api_sandbox.fields import Field
from api_sandbox.filters import Comparison, Filter, FilterError, Logical, coerce
from api_sandbox.store import DataExtension, Store

_SIMPLE_OPS = {
    "equals": "=",
    "notequals": "!=",
    "greaterthan": ">",
    "lessthan": "<",
    "greaterthanorequal": ">=",
    "lessthanorequal": "<=",
    "isnull": "isnull",
    "isnotnull": "notnull",
    "between": "between",
    "in": "in",
}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in el if _local(c.tag).lower() == name.lower()), None)


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if _local(c.tag).lower() == name.lower()]


def _find(root: ET.Element, name: str) -> ET.Element | None:
    return next((e for e in root.iter() if _local(e.tag).lower() == name.lower()), None)


def _text(el: ET.Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(value: str) -> str:
    """Escape a value; characters XML 1.0 cannot carry become character references.

    What SFMC does with them is unknown (a .NET writer either refuses or writes a
    reference); a reference keeps the guess visible: strict parsers reject it.
    """
    return _XML_INVALID.sub(lambda m: f"&#x{ord(m[0]):X};", escape(value))


def _response(status: str, request_id: str, results: list[str]) -> str:
    return (
        f"{SOAP_ENVELOPE_HEAD}<soap:Header>"
        "<wsa:Action>RetrieveResponse</wsa:Action>"
        f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>"
        "<wsa:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>"
        "</soap:Header><soap:Body>"
        '<RetrieveResponseMsg xmlns="http://exacttarget.com/wsdl/partnerAPI">'
        f"<OverallStatus>{escape(status)}</OverallStatus>"
        f"<RequestID>{request_id}</RequestID>"
        f"{''.join(results)}"
        "</RetrieveResponseMsg></soap:Body></soap:Envelope>"
    )


@dataclass
class Continuation:
    """Server-side cursor behind a RequestID."""

    de_key: str
    props: list[Field]
    flt: Filter | None
    batch: int
    offset: int
    snapshot: str | None = None
    batches: int = 0  # batches served so far (the "page" content faults target)


@dataclass
class SoapRequest:
    """The parts of a Retrieve call the sandbox cares about."""

    token: str
    object_type: str
    properties: list[str]
    filter_el: ET.Element | None
    batch_size: int | None
    continue_id: str


def parse_request(raw: bytes) -> SoapRequest:
    """Extract the fueloauth token and the RetrieveRequest.

    Raises:
        SoapFaultError: when the envelope is not a parseable Retrieve.
    """
    try:
        root = ET.fromstring(raw)  # noqa: S314 - local sandbox traffic only
    except ET.ParseError as exc:
        raise SoapFaultError("soap:Client", f"Invalid XML: {exc}") from exc
    req = _find(root, "RetrieveRequest")
    if req is None:
        raise SoapFaultError("soap:Client", "Only Retrieve is emulated by the sandbox.")
    options = _child(req, "Options")
    batch_el = _child(options, "BatchSize") if options is not None else None
    batch = None
    if _text(batch_el):
        try:
            batch = int(_text(batch_el))
        except ValueError:
            raise SoapFaultError("soap:Client", "BatchSize must be an integer") from None
    return SoapRequest(
        token=_text(_find(root, "fueloauth")),
        object_type=_text(_child(req, "ObjectType")),
        properties=[_text(p) for p in _children(req, "Properties") if _text(p)],
        filter_el=_child(req, "Filter"),
        batch_size=batch,
        continue_id=_text(_child(req, "ContinueRequest")),
    )


class Soap:
    """Retrieve handling; continuation cursors live here."""

    def __init__(
        self,
        config: SandboxConfig,
        store: Store,
        faults: Faults | None = None,
        on_fault: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.faults = faults
        self.on_fault = on_fault
        self._lock = threading.Lock()
        self.cursors: dict[str, Continuation] = {}

    def reset(self) -> None:
        """Forget cursors and their snapshots."""
        with self._lock:
            cursors, self.cursors = self.cursors, {}
        for cur in cursors.values():
            if cur.snapshot:
                self.store.drop_snapshot(cur.snapshot)

    def retrieve(self, req: SoapRequest, *, has_scope: bool) -> tuple[str, str | None, int]:
        """Answer a Retrieve. Returns (xml, DE key served or None, rows returned)."""
        request_id = str(uuid.uuid4())
        if req.continue_id:
            return self._continue(req.continue_id)
        if not has_scope:
            return _response("OK", request_id, []), None, 0  # observed: 0 rows, no error
        otype = req.object_type
        if otype == "DataExtensionField":
            return self._fields(req, request_id), None, 0
        if otype.startswith("DataExtensionObject[") and otype.endswith("]"):
            return self._rows(req, otype[len("DataExtensionObject[") : -1], request_id)
        status = f"Error: Unable to find a handler for object type: {otype}"
        return _response(status, request_id, []), None, 0

    # -- DataExtensionField ----------------------------------------------------------
    def _fields(self, req: SoapRequest, request_id: str) -> str:
        key = None
        if req.filter_el is not None:
            prop = _text(_child(req.filter_el, "Property"))
            if prop.lower() != "dataextension.customerkey":
                msg = f"Error: Filter property {prop} is not supported by the sandbox"
                return _response(msg, request_id, [])
            key = _text(_child(req.filter_el, "Value"))
        des = [self.store.get(key)] if key is not None else list(self.store.des.values())
        wanted = {p.lower() for p in req.properties}
        results = []
        for de in des:
            if de is None:
                continue
            fields = list(enumerate(de.fields))
            random.Random(f"fields:{de.key}").shuffle(fields)  # real results are unsorted
            results.extend(self._field_xml(de, ordinal, f, wanted) for ordinal, f in fields)
        return _response("OK", request_id, results)

    @staticmethod
    def _field_xml(de: DataExtension, ordinal: int, f: Field, wanted: set[str]) -> str:
        props: list[tuple[str, str | None]] = [
            ("ObjectID", str(uuid.uuid5(uuid.NAMESPACE_URL, f"{de.key}.{f.name}"))),
            ("CustomerKey", f"[{de.key}].[{f.name}]"),
            ("Name", f.name),
            ("DefaultValue", f.default_value),
            # Number (and Date/Boolean) carry no MaxLength; Decimal's is its precision.
            (
                "MaxLength",
                None if f.field_type in {"Number", "Date", "Boolean"} else str(f.max_length),
            ),
            ("IsRequired", "true" if f.is_required else "false"),
            ("Ordinal", str(ordinal)),
            ("IsPrimaryKey", "true" if f.is_primary_key else "false"),
            ("FieldType", f.field_type),
            ("Scale", str(f.scale or 0)),
        ]
        body = "".join(
            f"<{n}>{escape(v)}</{n}>"
            for n, v in props
            if v is not None and (not wanted or n.lower() in wanted)
        )
        de_part = f"<DataExtension><CustomerKey>{escape(de.key)}</CustomerKey></DataExtension>"
        return (
            f'<Results xsi:type="DataExtensionField"><PartnerKey xsi:nil="true" />'
            f"{body}{de_part}</Results>"
        )

    # -- DataExtensionObject ---------------------------------------------------------
    def _rows(self, req: SoapRequest, name: str, request_id: str) -> tuple[str, str | None, int]:
        # Both the CustomerKey and the Name are accepted in the brackets (§2.6); key wins.
        de = self.store.get(name, by_name=True)
        if de is None:
            # Exact real message unknown.
            return (
                _response(f"Error: Data extension '{name}' does not exist.", request_id, []),
                None,
                0,
            )
        if any(p == "*" for p in req.properties) or not req.properties:
            return _response("OK", request_id, []), de.key, 0  # wildcard: OK with 0 rows
        lookup = de.by_lower
        unknown = [p for p in req.properties if p.lower() not in lookup]
        if unknown:
            status = (
                f"Error: The Request Property(s) {', '.join(unknown)} do not match with the "
                "fields of DataExtensionObject retrieve"
            )
            return _response(status, request_id, []), None, 0
        props = [lookup[p.lower()] for p in req.properties]
        try:
            flt = self._filter(req.filter_el, de) if req.filter_el is not None else None
        except FilterError as exc:
            return _response(f"Error: {exc}", request_id, []), None, 0
        batch = min(
            req.batch_size or self.config.soap_max_batch_size, self.config.soap_max_batch_size
        )
        batch = max(batch, 1)
        cur = Continuation(de.key, props, flt, batch, 0)
        if self.config.request_token_snapshot:
            salt = self.store.order_salt(self.config.default_order, de)
            cur.snapshot = self.store.snapshot(de, flt, None, salt)
        with self._lock:
            self.cursors[request_id] = cur
        return self._page(request_id, cur, de)

    def _continue(self, request_id: str) -> tuple[str, str | None, int]:
        with self._lock:
            cur = self.cursors.get(request_id)
        de = self.store.get(cur.de_key) if cur else None
        if cur is None or de is None:
            status = "Error: The RequestID sent through ContinueRequest does not exist."
            return _response(status, request_id, []), None, 0
        return self._page(request_id, cur, de)

    def _content_fault(self, cur: Continuation) -> FaultRule | None:
        cur.batches += 1
        rule = self.faults.check_content("soap_rows", cur.batches) if self.faults else None
        if rule is not None and self.on_fault is not None:
            self.on_fault("soap_rows")
        return rule

    def _select(self, cur: Continuation, de: DataExtension, limit: int) -> list[tuple[Any, ...]]:
        if cur.snapshot:
            return self.store.snapshot_page(cur.snapshot, limit, cur.offset)
        salt = self.store.order_salt(self.config.default_order, de)
        return self.store.select(de, cur.flt, None, limit, cur.offset, salt=salt)

    def _page(self, request_id: str, cur: Continuation, de: DataExtension) -> tuple[str, str, int]:
        rule = self._content_fault(cur)
        extra = rule.extra_rows if rule is not None and rule.action == FaultAction.LONG_PAGE else 0
        rows = self._select(cur, de, cur.batch + extra + 1)
        more = len(rows) > cur.batch
        if rule is not None and rule.action == FaultAction.EMPTY_PAGE:
            # MoreDataAvailable with no Results; the cursor does not move.
            return _response("MoreDataAvailable", request_id, []), de.key, 0
        # A long batch carries the next batch's first rows, which come again next time.
        rows = rows[: cur.batch + extra]
        cur.offset += min(len(rows), cur.batch)
        positions = [(de.fields.index(f), f) for f in cur.props]
        results = [
            '<Results xsi:type="DataExtensionObject"><PartnerKey xsi:nil="true" />'
            '<ObjectID xsi:nil="true" /><Type>DataExtensionObject</Type><Properties>'
            + "".join(
                f"<Property><Name>{escape(f.name)}</Name><Value>{_xml_text(f.to_wire(row[i]))}</Value></Property>"
                for i, f in positions
            )
            + "</Properties></Results>"
            for row in rows
        ]
        if not more:
            with self._lock:
                self.cursors.pop(request_id, None)
            if cur.snapshot:
                self.store.drop_snapshot(cur.snapshot)
        return (
            _response("MoreDataAvailable" if more else "OK", request_id, results),
            de.key,
            len(rows),
        )

    def _filter(self, el: ET.Element, de: DataExtension) -> Filter:
        if _child(el, "LeftOperand") is not None:
            op = _text(_child(el, "LogicalOperator")).upper()
            if op not in {"AND", "OR"}:
                raise FilterError(f"LogicalOperator {op!r} is not valid")
            left, right = _child(el, "LeftOperand"), _child(el, "RightOperand")
            if right is None or left is None:
                raise FilterError("ComplexFilterPart needs LeftOperand and RightOperand")
            return Logical(op, [self._filter(left, de), self._filter(right, de)])
        prop = _text(_child(el, "Property"))
        column = de.by_lower.get(prop.lower())
        if column is None:
            raise FilterError(f"Invalid column name '{prop}'")
        op_name = _text(_child(el, "SimpleOperator"))
        op = _SIMPLE_OPS.get(op_name.lower())
        if op is None:
            # "like" is documented as unsupported for DataExtensionObject.
            raise FilterError(
                f"SimpleOperator {op_name!r} is not supported for DataExtensionObject"
            )
        raw = [_text(v) for v in _children(el, "DateValue") + _children(el, "Value")]
        values: list[Any] = [coerce(column, v) for v in raw]
        if op in {"isnull", "notnull"}:
            values = []
        elif op == "between" and len(values) != 2:  # noqa: PLR2004
            raise FilterError("between needs two values")
        elif not values:
            raise FilterError(f"no Value for {prop}")
        return Comparison(column, op, values)
