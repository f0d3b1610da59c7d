"""Names, versions and the small, valid distribution files the fake index serves.

Files are built deterministically (fixed timestamps), so their bytes and digests can be
recomputed at any time from (name, version, kind, tag) alone and nothing needs storing.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import re
import tarfile
import zipfile

_NORMALIZE = re.compile(r"[-_.]+")
VALID_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])\Z", re.IGNORECASE)
_FIXED_DATE = (2024, 1, 1, 0, 0, 0)
_FIXED_MTIME = 1704067200


def normalize(name: str) -> str:
    """PEP 503 normalized form of a project name."""
    return _NORMALIZE.sub("-", name).lower()


def escaped(name: str) -> str:
    """The name as it appears in wheel and sdist filenames (PEP 427 / PEP 625)."""
    return normalize(name).replace("-", "_")


def version_key(version: str) -> tuple[int, tuple[int, ...], str]:
    """A sort key for versions good enough for the fake index: final releases above pre-releases."""
    numbers = tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:6])
    prerelease = re.search(r"(a|b|rc|alpha|beta|dev|pre|c)\d*", version.lower()) is not None
    return (0 if prerelease else 1, numbers, version)


def wheel_filename(name: str, version: str, tag: str = "py3-none-any") -> str:
    return f"{escaped(name)}-{version}-{tag}.whl"


def sdist_filename(name: str, version: str) -> str:
    return f"{escaped(name)}-{version}.tar.gz"


def python_tag(kind: str, tag: str) -> str:
    """What PyPI's journal says between "add" and "file": the wheel's python tag or "source"."""
    return "source" if kind == "sdist" else tag.split("-")[0]


def metadata(name: str, version: str, requires_python: str | None, summary: str) -> bytes:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", f"Summary: {summary}"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    return ("\n".join(lines) + "\n\n").encode()


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def build_wheel(
    name: str, version: str, tag: str, requires_python: str | None, summary: str
) -> bytes:
    """A small valid wheel: one module plus ``<name>-<ver>.dist-info/{METADATA,WHEEL,RECORD}``."""
    base = escaped(name)
    dist_info = f"{base}-{version}.dist-info"
    files = {
        f"{base}/__init__.py": f'__version__ = "{version}"\n'.encode(),
        f"{dist_info}/METADATA": metadata(name, version, requires_python, summary),
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: fake_pypi\nRoot-Is-Purelib: true\nTag: {tag}\n"
        ).encode(),
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            info = zipfile.ZipInfo(path, date_time=_FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def build_sdist(name: str, version: str, requires_python: str | None, summary: str) -> bytes:
    """A small valid sdist: ``<name>-<ver>/{PKG-INFO,pyproject.toml,<module>/__init__.py}``."""
    base = escaped(name)
    root = f"{base}-{version}"
    files = {
        f"{root}/PKG-INFO": metadata(name, version, requires_python, summary),
        f"{root}/pyproject.toml": (
            '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
            f'\n[project]\nname = "{name}"\nversion = "{version}"\n'
        ).encode(),
        f"{root}/{base}/__init__.py": f'__version__ = "{version}"\n'.encode(),
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = _FIXED_MTIME
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)
