"""Flink's REST API answering badly (an HTML error page from a proxy, truncated JSON, 500s,
silence): every case is a flinksched error naming the endpoint, never a crash."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from common.errors import FlinkError, FlinkUnreachable
from common.flink.client import FlinkClient
from tests.httpserve import serving

ANSWERS: dict[str, tuple[int, str, bytes]] = {
    "/html/jobs/x/status": (502, "text/html", b"<html><body>Bad Gateway</body></html>"),
    "/html200/jobs/x/status": (200, "text/html", b"<html>login page</html>"),
    "/truncated/jobs/x/status": (200, "application/json", b'{"status": "RUNN'),
    "/error500/jobs/x/status": (500, "application/json", b'{"errors": ["Internal error"]}'),
    "/empty500/jobs/x/status": (500, "text/plain", b""),
}


# GET /jobs/<id>/exceptions as Flink 1.20 answers it before it has the failure (the field
# `root-exception`, which 2.0 removed, is null and the history empty), as 1.20 answers once
# it has it (the root is a JobException, the job's own exception its cause), and junk.
EXCEPTIONS: dict[str, object] = {
    "nulls": {"root-exception": None, "timestamp": None, "all-exceptions": [],
              "truncated": False, "exceptionHistory": {"entries": [], "truncated": False}},
    "lts": {"root-exception": "org.apache.flink.runtime.JobException: Recovery is suppressed",
            "exceptionHistory": {"entries": [{
                "exceptionName": "org.apache.flink.runtime.JobException",
                "stacktrace": "org.apache.flink.runtime.JobException: Recovery is suppressed by "
                              "NoRestartBackoffTimeStrategy\n\tat org.apache.flink.X.y(X.java:1)"
                              "\nCaused by: java.lang.IllegalStateException: injected failure\n"
                              "\tat dev.flinksched.examples.StatefulCounter.z(S.java:2)"}]}},
    "junk": {"root-exception": 5, "exceptionHistory": {"entries": "none"}},
    "listed": [],
}
for _name, _answer in EXCEPTIONS.items():
    ANSWERS[f"/{_name}/jobs/x/exceptions"] = (200, "application/json",
                                              json.dumps(_answer).encode())
VERSIONS = {"v120": "1.20.3", "v23": "2.3.0", "vjunk": 12, "vnone": None}
for _name, _version in VERSIONS.items():
    ANSWERS[f"/{_name}/config"] = (200, "application/json",
                                   json.dumps({"flink-version": _version}).encode())


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/slow/"):
            time.sleep(2)  # the silence itself: the client gives up after 0.5 s
        path = self.path.split("?", 1)[0]
        status, kind, body = ANSWERS.get(path, (404, "text/plain", b""))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        time.sleep(1)  # a program the JobManager runs longer than the client's timeout
        body = json.dumps({"jobid": "0" * 32}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
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


@pytest.mark.parametrize(("prefix", "cause"), [
    ("nulls", ""),  # not reported yet: the status says so and asks again, never "None"
    ("lts", "java.lang.IllegalStateException: injected failure"),
    ("junk", ""),
    ("listed", ""),
])
def test_root_exceptions_are_read_from_each_versions_answer(server: str, prefix: str,
                                                            cause: str) -> None:
    client = FlinkClient(f"{server}/{prefix}", timeout=2)
    try:
        assert client.root_exception("x") == cause
    finally:
        client.close()


@pytest.mark.parametrize(("prefix", "version"), [
    ("v120", "1.20.3"), ("v23", "2.3.0"), ("vjunk", None), ("vnone", None)])
def test_the_cluster_version_is_read_or_unknown(server: str, prefix: str,
                                                version: str | None) -> None:
    client = FlinkClient(f"{server}/{prefix}", timeout=2)
    try:
        found = client.flink_version()
        assert (str(found) if found else None) == version
    finally:
        client.close()


def test_a_run_request_is_waited_for_beyond_the_clients_timeout(server: str) -> None:
    """The JobManager runs the program before it answers, and keeps running it after a client
    gives up: a run request is waited for, where other requests give up after 0.5 s."""
    client = FlinkClient(server, timeout=0.5)
    try:
        assert client.run_jar("x", {}) == "0" * 32  # answered after 1 s
    finally:
        client.close()
