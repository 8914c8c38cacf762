"""Flink's REST API answering badly (an HTML error page from a proxy, truncated JSON, 500s,
silence): every case is a flinksched error naming the endpoint, never a crash."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from common.errors import FlinkError, FlinkUnreachable
from common.flink import FlinkClient
from tests.httpserve import serving

ANSWERS: dict[str, tuple[int, str, bytes]] = {
    "/html/jobs/x/status": (502, "text/html", b"<html><body>Bad Gateway</body></html>"),
    "/html200/jobs/x/status": (200, "text/html", b"<html>login page</html>"),
    "/truncated/jobs/x/status": (200, "application/json", b'{"status": "RUNN'),
    "/error500/jobs/x/status": (500, "application/json", b'{"errors": ["Internal error"]}'),
    "/empty500/jobs/x/status": (500, "text/plain", b""),
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/slow/"):
            time.sleep(2)  # the silence itself: the client gives up after 0.5 s
        status, kind, body = ANSWERS.get(self.path, (404, "text/plain", b""))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving(Handler) as url:
        yield url


@pytest.mark.parametrize("prefix", ["html", "html200", "truncated", "error500", "empty500",
                                    "slow"])
def test_bad_answers_are_errors_naming_the_endpoint(server: str, prefix: str) -> None:
    client = FlinkClient(f"{server}/{prefix}", timeout=0.5)
    try:
        with pytest.raises(FlinkError) as raised:
            client.job_state("x")
        assert f"/{prefix}/jobs/x/status" in str(raised.value)
        if prefix in ("truncated", "html200", "slow", "empty500", "error500"):
            assert isinstance(raised.value, FlinkUnreachable)  # retried, not a job failure
    finally:
        client.close()


def test_an_unreachable_cluster_is_unreachable() -> None:
    client = FlinkClient("http://127.0.0.1:9", timeout=0.5)
    try:
        with pytest.raises(FlinkUnreachable, match=re.escape("127.0.0.1:9/jobs/x/status")):
            client.job_state("x")
    finally:
        client.close()
