"""A hostile peer for the isolation tests: one loopback server whose callbacks hang.

It listens on its own loopback address (127.0.0.2 by default: another machine, as the hub
sees it) and, for any path, either answers the verification GET with its challenge and then
never answers a POST (``hang="post"``), or never answers at all (``hang="all"``). Hung
connections are held open until :meth:`close`. With ``hang="none"`` it is an honest mirror
that answers everything at once and records when each request arrived (``arrivals``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from urllib.parse import parse_qs, urlsplit


class HangingPeer:
    def __init__(self, host: str = "127.0.0.2", hang: str = "post", port: int = 0) -> None:
        self.host, self.hang, self._port = host, hang, port
        self.loop = asyncio.new_event_loop()
        self.hung = 0  # requests held without an answer
        self.arrivals: list[tuple[float, str, str]] = []  # (time, method, path), hang="none"
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hanging-peer", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the hanging peer did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, self.host, self._port, backlog=1024)
        )
        self.port = self.server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        for _ in range(10):  # connections accepted while stopping start tasks of their own
            tasks = asyncio.all_tasks(self.loop)
            if not tasks:
                break
            for task in tasks:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, target = head.split(b" ", 2)[:2]
                if self.hang == "none":
                    path = urlsplit(target.decode()).path
                    self.arrivals.append((time.time(), method.decode(), path))
                if method == b"POST" and self.hang == "none":
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value.strip())
                    await reader.readexactly(length)
                    writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                    await writer.drain()
                    continue
                if method == b"GET" and self.hang in ("post", "none"):
                    query = parse_qs(urlsplit(target.decode()).query)
                    challenge = query.get("hub.challenge", [""])[0].encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(challenge), challenge)
                    )
                    await writer.drain()
                    continue
                self.hung += 1
                await asyncio.Event().wait()  # never answers; cancelled by close()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:  # close(): end quietly
            pass
        finally:
            writer.close()

    def close(self) -> None:
        def stop() -> None:
            self.server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(stop)
        self._thread.join(10)
