from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker_hub.pypi.names import is_valid_name, normalize


@pytest.mark.parametrize(("name", "expected"), [
    ("Foo_Bar", "foo-bar"), ("foo.bar", "foo-bar"), ("Foo--._Bar", "foo-bar"),
    ("ZOPE.interface", "zope-interface"), ("a", "a"), ("pip", "pip"),
])
def test_normalize(name: str, expected: str) -> None:
    assert normalize(name) == expected


@pytest.mark.parametrize("name", ["a", "A1", "foo-bar", "Foo_Bar.baz", "1", "x" * 200])
def test_valid_names(name: str) -> None:
    assert is_valid_name(name)


@pytest.mark.parametrize("name", [
    "", "-foo", "foo-", ".foo", "foo_", "foo bar", "foo/bar", "not a/valid name!", "café",
    "foo\n", "x" * 201, None, 3, b"foo",
])
def test_invalid_names(name: object) -> None:
    assert not is_valid_name(name)


@given(st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,30}[A-Za-z0-9])?", fullmatch=True))
def test_normalized_names_stay_valid_and_are_fixed_points(name: str) -> None:
    assert is_valid_name(name)
    once = normalize(name)
    assert is_valid_name(once) and normalize(once) == once
