from __future__ import annotations

import xmlrpc.client

import pytest

from broker_hub.pypi.errors import HostileAnswer, JournalFault, MalformedAnswer
from broker_hub.pypi.wire import decode_response, encode_call, refuse_dtd
from tests.support.hostile_xml import billion_laughs


def response(value: object) -> bytes:
    return xmlrpc.client.dumps((value,), methodresponse=True, allow_none=True).encode()


def test_round_trip() -> None:
    params, method = xmlrpc.client.loads(encode_call("changelog_since_serial", 42))
    assert (params, method) == ((42,), "changelog_since_serial")
    value = [["foo", None, 1, "create", 2]]
    assert decode_response(response(value)) == value


def test_fault() -> None:
    body = xmlrpc.client.dumps(xmlrpc.client.Fault(-32500, "boom"), methodresponse=True)
    with pytest.raises(JournalFault) as fault:
        decode_response(body.encode())
    assert (fault.value.code, fault.value.text) == (-32500, "boom")


@pytest.mark.parametrize("body", [
    b"", b"<html><body>oops</body></html>", b"<methodResponse></methodResponse>",
    b"<?xml version='1.0'?><methodResponse><params><param><value><array><data>",
    b"<methodResponse><params><param><value><int>abc</int></value></param></params>"
    b"</methodResponse>",
    b"<methodResponse><fault><value><int>3</int></value></fault></methodResponse>",
    b"<methodCall><methodName>x</methodName><params></params></methodCall>",
    b"not xml at all",
])
def test_malformed(body: bytes) -> None:
    with pytest.raises(MalformedAnswer):
        decode_response(body)


def test_entities_are_refused_before_expansion() -> None:
    bomb = billion_laughs(
        "<methodResponse><params><param><value><string>&lol9;</string></value></param>"
        "</params></methodResponse>").encode()
    with pytest.raises(HostileAnswer):
        decode_response(bomb)
    with pytest.raises(HostileAnswer):
        refuse_dtd(bomb)
    external = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                b"<methodResponse><params><param><value><string>&x;</string></value></param>"
                b"</params></methodResponse>")
    with pytest.raises(HostileAnswer):
        decode_response(external)
    refuse_dtd(b"<rss><channel/></rss>")  # plain XML passes
