"""One guarded HTTP exchange with the index: a total deadline, a body cap, errors mapped."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests
import urllib3

from broker_hub import netguard
from broker_hub.pypi.errors import IndexForbidden, JournalUnavailable, MalformedAnswer

ERROR_BODY_BYTES = 64 * 1024  # what is read of a non-200 answer


@dataclass(frozen=True)
class Answer:
    status: int
    headers: requests.structures.CaseInsensitiveDict[str]
    body: bytes


class IndexHTTP:
    """``request()`` once per call; ``session`` defaults to ``netguard.guarded_session``."""

    def __init__(
        self,
        *,
        user_agent: str,
        timeout: float,
        max_bytes: int,
        allow_private: bool,
        session: requests.Session | None = None,
    ) -> None:
        if not user_agent or not user_agent.strip():
            raise ValueError("PyPI asks for a descriptive User-Agent; user_agent is empty")
        if timeout <= 0 or max_bytes <= 0:
            raise ValueError("timeout and max_bytes must be positive")
        self.user_agent = user_agent
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.allow_private = allow_private
        self.session = session or netguard.guarded_session(allow_private=allow_private,
                                                           pool_maxsize=2)

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                data: bytes | None = None) -> Answer:
        """Send, read at most ``max_bytes`` within ``timeout`` seconds overall; no redirects."""
        try:
            netguard.check_url_host(url, allow_private=self.allow_private)
        except netguard.ForbiddenAddress as exc:
            raise IndexForbidden(f"the index address is forbidden: {exc}") from None
        deadline = time.monotonic() + self.timeout
        all_headers = {"User-Agent": self.user_agent, **(headers or {})}
        try:
            with self.session.request(method, url, headers=all_headers, data=data, stream=True,
                                      timeout=self.timeout, allow_redirects=False) as response:
                body = self._read(response, deadline)
                return Answer(response.status_code, response.headers, body)
        except netguard.ForbiddenAddress as exc:
            raise IndexForbidden(f"the index address is forbidden: {exc}") from None
        except requests.RequestException as exc:
            if "ForbiddenAddress" in repr(exc.__context__) or "ForbiddenAddress" in str(exc):
                raise IndexForbidden("the index address is forbidden") from None
            raise JournalUnavailable(f"{exc.__class__.__name__} talking to the index") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise JournalUnavailable(f"{exc.__class__.__name__} reading the answer") from None

    def _read(self, response: Any, deadline: float) -> bytes:
        error_page = response.status_code != 200  # its status is what counts: read a little
        declared = response.headers.get("Content-Length", "")
        if not error_page and declared.isdigit() and int(declared) > self.max_bytes:
            raise MalformedAnswer(f"answer of {declared} bytes, more than the {self.max_bytes} "
                                  "allowed")
        chunks, size = [], 0
        while chunk := response.raw.read1(65536, decode_content=True):
            size += len(chunk)
            if error_page and size >= ERROR_BODY_BYTES:
                chunks.append(chunk)
                break
            if size > self.max_bytes:
                raise MalformedAnswer(f"answer larger than the {self.max_bytes} bytes allowed")
            if time.monotonic() > deadline:
                raise JournalUnavailable(f"answer not complete within {self.timeout:g}s")
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self.session.close()
