"""Hostile XML documents for the tests that prove the hub refuses them harmlessly."""

from __future__ import annotations


def billion_laughs(document: str) -> str:
    """``document`` (which should use ``&lol9;``) after a DOCTYPE of nine nested entities of
    ten each: a billion "lol"s, some 3 GB, if a parser expanded them."""
    entities = ['<!ENTITY lol "lol">']
    for level in range(2, 10):
        inner = "&lol;" if level == 2 else f"&lol{level - 1};"
        entities.append(f'<!ENTITY lol{level} "{inner * 10}">')
    doctype = "<!DOCTYPE lolz [\n " + "\n ".join(entities) + "\n]>"
    return f'<?xml version="1.0"?>\n{doctype}\n{document}'
