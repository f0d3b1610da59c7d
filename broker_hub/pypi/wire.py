"""XML-RPC on the wire: encode a call, decode an answer with expat refusing any DTD.

``xmlrpc.client`` alone would expand internal entities; here the parser refuses a
``<!DOCTYPE`` before any entity can be declared, then feeds the stdlib ``Unmarshaller``.
"""

from __future__ import annotations

import xmlrpc.client
from typing import Any
from xml.parsers import expat

from broker_hub.pypi.errors import HostileAnswer, JournalFault, MalformedAnswer


def encode_call(method: str, *params: Any) -> bytes:
    """The body of an XML-RPC ``methodCall``."""
    return xmlrpc.client.dumps(params, method, encoding="utf-8").encode()


def _refuse(*_args: Any) -> None:
    raise HostileAnswer("the answer declares a DTD or entities; refused")


def _refusing_parser() -> Any:
    parser = expat.ParserCreate(None, None)
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse  # type: ignore[assignment]
    return parser


def refuse_dtd(body: bytes) -> None:
    """Raise ``HostileAnswer`` when the XML has a DTD or entities, ``MalformedAnswer`` when it
    is not well-formed; a check to run before handing a document to a permissive parser."""
    try:
        _refusing_parser().Parse(body, True)
    except expat.ExpatError as exc:
        raise MalformedAnswer(f"not well-formed XML: {exc}") from None


def decode_response(body: bytes) -> Any:
    """The single value of a ``methodResponse``.

    Raises ``JournalFault`` for a Fault, ``HostileAnswer`` for any DTD or entity, and
    ``MalformedAnswer`` for anything else that is not a well-formed response with one value.
    """
    target = xmlrpc.client.Unmarshaller()
    parser = _refusing_parser()
    parser.StartElementHandler = target.start
    parser.EndElementHandler = target.end
    parser.CharacterDataHandler = target.data
    parser.buffer_text = True
    target.xml(None, None)  # type: ignore[arg-type]
    try:
        parser.Parse(body, True)
        if target.getmethodname() is not None:
            raise MalformedAnswer("a methodCall, not a methodResponse")
        values = target.close()
    except xmlrpc.client.Fault as fault:
        code = fault.faultCode if isinstance(fault.faultCode, int) else -1
        raise JournalFault(code, str(fault.faultString)) from None
    except expat.ExpatError as exc:
        raise MalformedAnswer(f"not well-formed XML: {exc}") from None
    except (xmlrpc.client.ResponseError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise MalformedAnswer(f"not an XML-RPC response: {exc.__class__.__name__}") from None
    if len(values) != 1:
        raise MalformedAnswer(f"an XML-RPC response carries one value, this one {len(values)}")
    return values[0]
