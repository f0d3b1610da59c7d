"""Hostile and random input: the parsers only ever raise their own clear errors."""

from __future__ import annotations

import contextlib
import xmlrpc.client

from hypothesis import given, settings
from hypothesis import strategies as st

from broker_hub.pypi.changes import KINDS, BadEntry, classify, parse_entry
from broker_hub.pypi.errors import PyPIError
from broker_hub.pypi.wire import decode_response

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
                    st.binary(max_size=10))
entries = st.one_of(scalars, st.lists(scalars, max_size=7), st.tuples(
    st.text(max_size=20), st.one_of(st.none(), st.text(max_size=10)), st.integers(),
    st.text(max_size=60), st.integers()))


@given(entries)
def test_parse_entry_raises_only_bad_entry(raw: object) -> None:
    try:
        change = parse_entry(raw)
    except BadEntry:
        return
    assert change.kind in KINDS and change.serial is not None and change.serial >= 0


@given(st.text(max_size=80))
def test_classify_is_total(action: str) -> None:
    kind, filename = classify(action)
    assert kind in KINDS and (filename is None or kind in ("file_added", "file_removed"))


xml_text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn")), max_size=20)  # XML-safe
xml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**31), 2**31 - 1), xml_text),
    lambda inner: st.lists(inner, max_size=4), max_leaves=12)


@settings(max_examples=150)
@given(xml_values, st.integers(0, 400), st.binary(max_size=8))
def test_decode_response_on_truncated_and_mangled_answers(
    value: object, cut: int, junk: bytes
) -> None:
    body = xmlrpc.client.dumps((value,), methodresponse=True, allow_none=True).encode()
    assert decode_response(body) == value
    for mangled in (body[:cut], body[:cut] + junk + body[cut:]):
        with contextlib.suppress(PyPIError):  # anything else fails the test
            decode_response(mangled)
