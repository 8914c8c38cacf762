"""The HTTP endpoints of every master and worker: /metrics, /healthz and /readyz.

/healthz answers 200 while the process's own loop runs (a liveness probe restarts it when
not); /readyz answers 200 while it can do its work: connected to ZooKeeper and, for a master,
a leader is known. Both say why in one line of text.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

from common.telemetry.leaderview import exposition

logger = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, str]]


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
    content_type: str = "text/plain"
    encoding: str = ""


# A page: the request's headers in (names in lower case), the answer out.
Page = Callable[[Mapping[str, str]], Answer]


class Endpoints:
    """The process's HTTP server. Its pages are a table of paths: /metrics, /healthz and
    /readyz here, any other one added with `page`."""

    def __init__(self, host: str, port: int) -> None:
        # Served from the start; ready only once the process sets what readiness means (a
        # worker not yet registered, or a master not yet in the election, is not ready).
        self.live: Check = _always
        self.ready: Check = _starting
        self.pages: dict[str, Page] = {"/metrics": self._metrics,
                                       "/healthz": lambda headers: self._probe(self.live),
                                       "/readyz": lambda headers: self._probe(self.ready)}
        endpoints = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                page = endpoints.pages.get(self.path.split("?", 1)[0])
                if page is None:
                    known = ", ".join(sorted(endpoints.pages))
                    answer = Answer(404, f"not found: try {known}\n".encode())
                else:
                    answer = page({k.lower(): v for k, v in self.headers.items()})
                self.send_response(answer.code)
                self.send_header("Content-Type", answer.content_type)
                if answer.encoding:
                    self.send_header("Content-Encoding", answer.encoding)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # a scrape every few seconds is not news

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, name="http", daemon=True).start()
        logger.info("serving /metrics, /healthz and /readyz on http://%s:%d", host, self.port)

    def page(self, path: str, page: Page) -> None:
        """Serve `page` at `path` from now on."""
        self.pages[path] = page

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
        self.server.shutdown()
        self.server.server_close()
