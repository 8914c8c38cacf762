"""The HTTP server of every master and worker: /metrics, /healthz and /readyz, and on a
master the portal (`scheduler.portal`), all served by one uvicorn.

/healthz answers 200 while the process's own loop runs (a liveness probe restarts it when
not); /readyz answers 200 while it can do its work: connected to ZooKeeper and, for a master,
a leader is known. Both say why in one line of text.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from common.errors import FlinkschedError
from common.telemetry.leaderview import exposition

logger = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, str]]
# An ASGI application, as uvicorn and Starlette type it.
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


LIVENESS_WINDOW = 60.0  # /healthz fails when a process's loop has not turned for this long


def loop_liveness(last_turn: float, what: str) -> tuple[bool, str]:
    """A liveness answer from the monotonic time a process's main loop last turned."""
    if not last_turn:
        return False, "not started yet"
    idle = time.monotonic() - last_turn
    return idle < LIVENESS_WINDOW, f"{what} last ran {idle:.1f}s ago"


def all_of(*checks: Check) -> Check:
    """One check passing when every one of `checks` does, with all their reasons."""

    def check() -> tuple[bool, str]:
        answers = [each() for each in checks]
        return all(ok for ok, _ in answers), "; ".join(why for _, why in answers)

    return check


def _always() -> tuple[bool, str]:
    return True, "ok"


def _starting() -> tuple[bool, str]:
    return False, "starting"


@dataclass(frozen=True)
class Answer:
    """What a page answers: status code, body, content type and encoding."""

    code: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    encoding: str = ""


# A page: the request's headers in (names in lower case), the answer out.
Page = Callable[[Mapping[str, str]], Answer]
START_DEADLINE = 10.0  # seconds the server may take to listen before the process gives up


class Endpoints:
    """The process's HTTP server: /metrics, /healthz and /readyz, answered in a thread of
    their own (a check may wait on ZooKeeper), and every other path by the application
    `mount` gives (404 without one). uvicorn runs in a daemon thread, so it takes over no
    signal: SIGTERM stays the process's own (uvicorn installs handlers only on the main
    thread)."""

    def __init__(self, host: str, port: int) -> None:
        # Served from the start; ready only once the process sets what readiness means (a
        # worker not yet registered, or a master not yet in the election, is not ready).
        self.live: Check = _always
        self.ready: Check = _starting
        self.pages: dict[str, Page] = {"/metrics": self._metrics,
                                       "/healthz": lambda headers: self._probe(self.live),
                                       "/readyz": lambda headers: self._probe(self.ready)}
        self.mounted: ASGIApp | None = None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listening = socket.socket(family, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: an answer's headers and body, written apart, are
        # sent at once instead of waiting out the client's delayed ACK (40 ms a request).
        listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            listening.bind((host, port))
            listening.listen(128)
        except OSError:
            listening.close()
            raise
        self.port = int(listening.getsockname()[1])
        import uvicorn  # only a process that serves pays for importing it

        config = uvicorn.Config(self._asgi, interface="asgi3", log_config=None,
                                access_log=False, lifespan="off", server_header=False,
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, args=([listening],),
                                       name="http", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + START_DEADLINE
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise FlinkschedError(f"the HTTP server on {host}:{self.port} did not start")
            time.sleep(0.01)  # uvicorn says it listens only through this flag
        logger.info("serving /metrics, /healthz and /readyz on http://%s:%d", host, self.port)

    def mount(self, app: ASGIApp) -> None:
        """Serve every path but the three of the process with `app` from now on."""
        self.mounted = app

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        page = self.pages.get(scope["path"])
        if page is None and self.mounted is not None:
            await self.mounted(scope, receive, send)
            return
        if page is None:
            answer = Answer(404, f"not found: try {', '.join(sorted(self.pages))}\n".encode())
        elif scope["method"] not in ("GET", "HEAD"):
            answer = Answer(405, b"only GET and HEAD are served here\n")
        else:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                       for k, v in scope["headers"]}
            answer = await asyncio.to_thread(page, headers)
        sent = [(b"content-type", answer.content_type.encode()),
                (b"content-length", str(len(answer.body)).encode())]
        if answer.encoding:
            sent.append((b"content-encoding", answer.encoding.encode()))
        await send({"type": "http.response.start", "status": answer.code, "headers": sent})
        await send({"type": "http.response.body",
                    "body": b"" if scope["method"] == "HEAD" else answer.body})

    @staticmethod
    def _metrics(headers: Mapping[str, str]) -> Answer:
        compressed = "gzip" in headers.get("accept-encoding", "")
        return Answer(200, exposition(compressed), CONTENT_TYPE_LATEST,
                      "gzip" if compressed else "")

    @staticmethod
    def _probe(check: Check) -> Answer:
        try:
            ok, why = check()
        except Exception as exc:  # a probe must answer, whatever happened
            ok, why = False, f"check failed: {exc!r}"
        return Answer(200 if ok else 503, (why + "\n").encode())

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
