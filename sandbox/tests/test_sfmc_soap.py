"""SOAP Retrieve: DataExtensionField, DataExtensionObject filters/paging, faults."""

from __future__ import annotations

import xml.etree.ElementTree as ET

NS = {
    "p": "http://exacttarget.com/wsdl/partnerAPI",
    "soap": "http://schemas.xmlsoap.org/soap/envelope/",
}
FIELD_PROPS = "".join(
    f"<Properties>{p}</Properties>"
    for p in ("Name", "FieldType", "IsPrimaryKey", "IsRequired", "MaxLength", "Scale", "Ordinal")
)


def soap_envelope(token: str, request_xml: str, prefix: str = "s") -> str:
    return (
        f'<{prefix}:Envelope xmlns:{prefix}="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f'<{prefix}:Header><fueloauth xmlns="http://exacttarget.com">{token}</fueloauth></{prefix}:Header>'
        f'<{prefix}:Body><RetrieveRequestMsg xmlns="http://exacttarget.com/wsdl/partnerAPI">'
        f"{request_xml}</RetrieveRequestMsg></{prefix}:Body></{prefix}:Envelope>"
    )


def call(sandbox, http, token, request_xml, prefix="s"):
    resp = http.post(
        f"{sandbox.sfmc_url}/Service.asmx",
        data=soap_envelope(token, request_xml, prefix).encode(),
        headers={"Content-Type": "text/xml", "SOAPAction": "Retrieve"},
        timeout=30,
    )
    return resp, ET.fromstring(resp.content)  # noqa: S314 - our own sandbox's reply


def msg(root):
    return root.find(".//p:RetrieveResponseMsg", NS)


def rows_of(root):
    out = []
    for result in msg(root).findall("p:Results", NS):
        props = result.findall("p:Properties/p:Property", NS)
        out.append(
            {
                p.findtext("p:Name", namespaces=NS): p.findtext("p:Value", namespaces=NS)
                for p in props
            }
        )
    return out


def deo_request(props, name="Customers", filter_xml="", batch=None, cont=None):
    options = f"<Options><BatchSize>{batch}</BatchSize></Options>" if batch else ""
    props_xml = "".join(f"<Properties>{p}</Properties>" for p in props)
    cont_xml = f"<ContinueRequest>{cont}</ContinueRequest>" if cont else ""
    return (
        f"<RetrieveRequest>{cont_xml}<ObjectType>DataExtensionObject[{name}]</ObjectType>"
        f"{props_xml}{filter_xml}{options}</RetrieveRequest>"
    )


def simple(prop, op, value, tag="Value"):
    return (
        f'<Filter xsi:type="SimpleFilterPart"><Property>{prop}</Property>'
        f"<SimpleOperator>{op}</SimpleOperator><{tag}>{value}</{tag}></Filter>"
    )


def test_field_retrieve(sandbox, http, mint):
    request = (
        "<RetrieveRequest><ObjectType>DataExtensionField</ObjectType>"
        f"{FIELD_PROPS}"
        '<Filter xsi:type="SimpleFilterPart"><Property>DataExtension.CustomerKey</Property>'
        "<SimpleOperator>equals</SimpleOperator><Value>Customers</Value></Filter></RetrieveRequest>"
    )
    resp, root = call(sandbox, http, mint(), request, prefix="soapenv")
    assert resp.status_code == 200
    assert msg(root).findtext("p:OverallStatus", namespaces=NS) == "OK"
    fields = [
        {child.tag.split("}")[1]: child.text for child in result}
        for result in msg(root).findall("p:Results", NS)
    ]
    ordinals = [int(f["Ordinal"]) for f in fields]
    assert sorted(ordinals) == list(range(12))
    assert ordinals != sorted(ordinals)  # unsorted like the real API
    by_name = {f["Name"]: f for f in fields}
    assert by_name["SubscriberKey"]["IsPrimaryKey"] == "true"
    assert by_name["LoyaltyPoints"]["FieldType"] == "Number"
    assert "MaxLength" not in by_name["LoyaltyPoints"]
    assert by_name["LifetimeValue"]["MaxLength"] == "12"
    assert by_name["LifetimeValue"]["Scale"] == "2"
    assert by_name["EmailAddress"]["MaxLength"] == "254"


def test_field_retrieve_unknown_key_and_missing_scope(sandbox, http, mint):
    request = (
        "<RetrieveRequest><ObjectType>DataExtensionField</ObjectType><Properties>Name</Properties>"
        + simple("DataExtension.CustomerKey", "equals", "Nope")
        + "</RetrieveRequest>"
    )
    _, root = call(sandbox, http, mint(), request)
    assert msg(root).findall("p:Results", NS) == []
    request = request.replace("Nope", "Customers")
    resp, root = call(sandbox, http, mint(scope="offline"), request)
    assert resp.status_code == 200
    assert msg(root).findall("p:Results", NS) == []


def test_expired_token_fault(sandbox, http, mint):
    token = mint()
    sandbox.expire_tokens()
    resp, root = call(sandbox, http, token, deo_request(["SubscriberKey"]))
    assert resp.status_code == 500
    fault = root.find(".//soap:Fault", NS)
    assert fault.findtext("faultcode") == "q0:Security"
    assert fault.findtext("faultstring") == "Token Expired"


def test_rows_paging_and_continue(sandbox, http, mint):
    token = mint()
    _, root = call(sandbox, http, token, deo_request(["SubscriberKey", "ModifiedDate"], batch=2000))
    assert msg(root).findtext("p:OverallStatus", namespaces=NS) == "MoreDataAvailable"
    request_id = msg(root).findtext("p:RequestID", namespaces=NS)
    keys = [r["SubscriberKey"] for r in rows_of(root)]
    statuses = []
    while True:
        # The docs' form: a request holding only ContinueRequest.
        body = f"<RetrieveRequest><ContinueRequest>{request_id}</ContinueRequest></RetrieveRequest>"
        _, root = call(sandbox, http, token, body)
        statuses.append(msg(root).findtext("p:OverallStatus", namespaces=NS))
        keys += [r["SubscriberKey"] for r in rows_of(root)]
        if statuses[-1] != "MoreDataAvailable":
            break
    assert statuses == ["MoreDataAvailable", "OK"]
    assert len(keys) == len(set(keys)) == 5000


def test_batch_size_capped(sandbox, http, mint):
    _, root = call(sandbox, http, mint(), deo_request(["SubscriberKey"], batch=9999))
    assert len(rows_of(root)) == 2500


def test_names_as_defined_and_by_name(sandbox, http, mint):
    sandbox.create_de(
        "key-1", name="Named DE", fields=[{"name": "MixedCase", "is_primary_key": True}], size=2
    )
    _, root = call(sandbox, http, mint(), deo_request(["mixedcase"], name="Named DE"))
    assert msg(root).findtext("p:OverallStatus", namespaces=NS) == "OK"
    assert [list(r) for r in rows_of(root)] == [["MixedCase"], ["MixedCase"]]


def test_wildcard_and_unknown_property(sandbox, http, mint):
    token = mint()
    _, root = call(sandbox, http, token, deo_request(["*"]))
    assert msg(root).findtext("p:OverallStatus", namespaces=NS) == "OK"
    assert rows_of(root) == []
    _, root = call(sandbox, http, token, deo_request(["SubscriberKey", "Bogus"]))
    status = msg(root).findtext("p:OverallStatus", namespaces=NS)
    assert status == (
        "Error: The Request Property(s) Bogus do not match with the fields "
        "of DataExtensionObject retrieve"
    )


def test_unknown_continue_id(sandbox, http, mint):
    body = "<RetrieveRequest><ContinueRequest>nope</ContinueRequest></RetrieveRequest>"
    _, root = call(sandbox, http, mint(), body)
    assert msg(root).findtext("p:OverallStatus", namespaces=NS).startswith("Error: The RequestID")


def test_date_filters_with_offsets(sandbox, http, mint):
    fields = [
        {"name": "Id", "field_type": "Number", "is_primary_key": True},
        {"name": "When", "field_type": "Date"},
    ]
    rows = [{"Id": i, "When": f"2024-01-0{i}T12:00:00"} for i in range(1, 6)]
    sandbox.create_de("Dates", fields=fields, rows=rows)
    token = mint()
    # 2024-01-03T18:00:00Z == 2024-01-03 12:00 system time (UTC-6)
    flt = simple("When", "greaterThanOrEqual", "2024-01-03T18:00:00Z", tag="DateValue")
    _, root = call(sandbox, http, token, deo_request(["Id", "When"], name="Dates", filter_xml=flt))
    assert [r["Id"] for r in rows_of(root)] == ["3", "4", "5"]
    assert rows_of(root)[0]["When"] == "1/3/2024 12:00:00 PM"
    complex_filter = (
        '<Filter xsi:type="ComplexFilterPart">'
        '<LeftOperand xsi:type="SimpleFilterPart"><Property>When</Property>'
        "<SimpleOperator>greaterThan</SimpleOperator><DateValue>2024-01-02T12:00:00-06:00</DateValue></LeftOperand>"
        "<LogicalOperator>AND</LogicalOperator>"
        '<RightOperand xsi:type="SimpleFilterPart"><Property>Id</Property>'
        "<SimpleOperator>lessThanOrEqual</SimpleOperator><Value>4</Value></RightOperand></Filter>"
    )
    _, root = call(
        sandbox, http, token, deo_request(["Id"], name="Dates", filter_xml=complex_filter)
    )
    assert [r["Id"] for r in rows_of(root)] == ["3", "4"]
    or_filter = complex_filter.replace(">AND<", ">OR<")
    _, root = call(sandbox, http, token, deo_request(["Id"], name="Dates", filter_xml=or_filter))
    assert [r["Id"] for r in rows_of(root)] == ["1", "2", "3", "4", "5"]
    like = simple("Id", "like", "1")
    _, root = call(sandbox, http, token, deo_request(["Id"], name="Dates", filter_xml=like))
    assert msg(root).findtext("p:OverallStatus", namespaces=NS).startswith("Error:")


def test_missing_scope_gives_zero_rows(sandbox, http, mint):
    _, root = call(sandbox, http, mint(scope="offline"), deo_request(["SubscriberKey"]))
    assert msg(root).findtext("p:OverallStatus", namespaces=NS) == "OK"
    assert rows_of(root) == []
