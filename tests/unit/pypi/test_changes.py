from __future__ import annotations

import pytest

from broker_hub.pypi.changes import KINDS, BadEntry, Change, classify, parse_entry


@pytest.mark.parametrize(("action", "kind", "filename"), [
    ("create", "project_created", None),
    ("new release", "release_created", None),
    ("add py3 file foo-1.0-py3-none-any.whl", "file_added", "foo-1.0-py3-none-any.whl"),
    ("add source file foo-1.0.tar.gz", "file_added", "foo-1.0.tar.gz"),
    ("add cp311 file foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "file_added",
     "foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
    ("add py2.py3 file foo-1.0-py2.py3-none-any.whl", "file_added",
     "foo-1.0-py2.py3-none-any.whl"),
    ("remove file foo-1.0.tar.gz", "file_removed", "foo-1.0.tar.gz"),
    ("remove release", "release_removed", None),
    ("remove project", "project_removed", None),
    ("yank release", "yanked", None),
    ("unyank release", "unyanked", None),
    ("project quarantined", "quarantined", None),
    ("project quarantine cleared", "quarantine_cleared", None),
    ("add Owner alice", "roles_changed", None),
    ("remove Maintainer bob", "roles_changed", None),
    ("change Owner alice to Maintainer", "roles_changed", None),
    ("accepted Maintainer carol", "roles_changed", None),
    ("docdestroy", "other", None),
    ("add Owner", "other", None),
    ("add py3 file", "other", None),
    ("remove file", "other", None),
    ("", "other", None),
])
def test_classify(action: str, kind: str, filename: str | None) -> None:
    assert classify(action) == (kind, filename)
    assert kind in KINDS


def test_parse_entry_builds_the_interface_entry() -> None:
    raw = ["Foo_Bar", "1.2", 1733230000, "add py3 file foo_bar-1.2-py3-none-any.whl", 1003]
    change = parse_entry(raw)
    assert change.to_json() == {
        "serial": 1003, "project": "Foo_Bar", "normalized": "foo-bar", "version": "1.2",
        "action": "add py3 file foo_bar-1.2-py3-none-any.whl", "kind": "file_added",
        "filename": "foo_bar-1.2-py3-none-any.whl", "timestamp": 1733230000,
    }
    assert Change.from_json(change.to_json()) == change
    assert parse_entry(("foo", None, 0, "create", 0)).version is None


@pytest.mark.parametrize(("raw", "reason"), [
    ("create", "list of 5"),
    (["foo", None, 1, "create"], "list of 5"),
    (["foo", None, 1, "create", 2, 3], "list of 5"),
    (["foo", None, 1, "create", -1], "serial"),
    (["foo", None, 1, "create", "7"], "serial"),
    (["foo", None, 1, "create", True], "serial"),
    (["foo", None, 1, "create", 1.5], "serial"),
    (["not a/valid name!", None, 1, "create", 2], "not a valid project name"),
    ([None, None, 1, "create", 2], "name must be a string"),
    (["foo", 1.0, 1, "new release", 2], "version"),
    (["foo", "", 1, "new release", 2], "version"),
    (["foo", "1 0", 1, "new release", 2], "version"),
    (["foo", None, "yesterday", "create", 2], "timestamp"),
    (["foo", None, -5, "create", 2], "timestamp"),
    (["foo", None, 1, "", 2], "action"),
    (["foo", None, 1, None, 2], "action"),
    (["foo", None, 1, "x" * 1001, 2], "action"),
    (["foo", None, 1, "add\x00 file", 2], "control characters"),
])
def test_parse_entry_rejects_malformed_entries(raw: object, reason: str) -> None:
    with pytest.raises(BadEntry, match=reason):
        parse_entry(raw)


def test_from_json_rejects_incomplete_objects() -> None:
    with pytest.raises(BadEntry):
        Change.from_json({"serial": 1})
