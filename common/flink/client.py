"""A small Flink REST client: the calls flinksched makes, with failures classified.

Connection problems, timeouts and 5xx raise FlinkUnreachable (retry later); 4xx raise
FlinkRequestFailed (permanent); a duplicate job id raises JobAlreadySubmitted (adopt it).
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import httpx

from common.errors import (
    FlinkJobNotFound,
    FlinkRequestFailed,
    FlinkUnreachable,
    JarMissing,
    JobAlreadySubmitted,
)
from common.flink.access import ClusterAccess
from common.flink.jobstate import TERMINAL_STATES as TERMINAL_STATES
from common.flink.versions import FlinkVersion
from common.metrics import FLINK_REST_ERRORS, FLINK_REST_SECONDS

logger = logging.getLogger(__name__)

# Connections one client keeps to a cluster. A worker's supervisors share the client, so a
# worker with a hundred jobs opens at most this many, not one per job in a burst.
MAX_CONNECTIONS = 16
DUPLICATE_MARKERS = ("already been submitted", "DuplicateJobSubmissionException")
JOB_NOT_FOUND_MARKERS = ("FlinkJobNotFoundException", "Could not find Flink job")
# A run request that fails for these reasons fails the same way every time: do not retry.
PROGRAM_ERROR_MARKERS = (
    "ProgramInvocationException",
    "ClassNotFoundException",
    "Could not find class",
    "NoClassDefFoundError",
    "NoSuchMethodException",
    "does not have a main",
    "Neither a 'Main-Class', nor a 'program-class' entry",
)


# A run request runs the program in the JobManager before it answers: a Python driver starts
# an interpreter that builds the job graph, tens of seconds on a busy JobManager, which keeps
# running it after a client gives up. Given up on sooner, the request's turn at the cluster's
# run requests ended while it still ran, and the next (a Python program beside a SQL one)
# took its environment: the SQL job was given the Python job's graph.
RUN_TIMEOUT = 180.0


class FlinkClient:
    def __init__(self, rest_url: str, timeout: float = 10.0,
                 access: ClusterAccess | None = None) -> None:
        """`access` adds the cluster's CA bundle and credentials (see common.flink.access)."""
        self.rest_url = rest_url.rstrip("/")
        access = access or ClusterAccess(self.rest_url)
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.rest_url, timeout=timeout,
                                  verify=access.verify(), auth=access.auth(),
                                  limits=httpx.Limits(max_connections=MAX_CONNECTIONS,
                                                      max_keepalive_connections=MAX_CONNECTIONS))

    def close(self) -> None:
        self._http.close()

    def _request(
        self, method: str, path: str, endpoint: str, *, allow_404: bool = False, **kwargs: Any
    ) -> Any:
        """The answer's JSON ({} when empty); None for a 404 when `allow_404`."""
        response = self._send(method, path, endpoint, allow_404=allow_404, **kwargs)
        if response is None:
            return None
        return self._decoded(response.content, path)

    def _decoded(self, content: bytes, path: str) -> Any:
        try:
            return json.loads(content) if content else {}
        except ValueError as exc:
            raise FlinkUnreachable(f"{self.rest_url}{path}: answer is not JSON") from exc

    def _send(
        self, method: str, path: str, endpoint: str, *, allow_404: bool = False, **kwargs: Any
    ) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.PoolTimeout as exc:
            FLINK_REST_ERRORS.labels(endpoint, "busy").inc()
            raise FlinkUnreachable(
                f"{self.rest_url}{path}: all {MAX_CONNECTIONS} connections to the cluster were "
                f"busy for {self.timeout:g}s") from exc
        except httpx.TimeoutException as exc:
            FLINK_REST_ERRORS.labels(endpoint, "timeout").inc()
            raise FlinkUnreachable(f"{self.rest_url}{path}: timed out") from exc
        except httpx.TransportError as exc:
            FLINK_REST_ERRORS.labels(endpoint, "connect").inc()
            raise FlinkUnreachable(f"{self.rest_url}{path}: {exc}") from exc
        finally:
            FLINK_REST_SECONDS.labels(endpoint).observe(time.monotonic() - started)
        if response.status_code >= 400:
            error = self._classified(response, path, endpoint)
            if allow_404 and isinstance(error, FlinkJobNotFound):
                return None
            raise error
        return response

    def _classified(self, response: httpx.Response, path: str, endpoint: str) -> Exception:
        """Flink reports program errors as HTTP 500 too; the message tells them apart."""
        status = response.status_code
        full = _error_text(response)
        summary = _innermost_cause(full)
        FLINK_REST_ERRORS.labels(endpoint, str(status)).inc()
        if status == 404 or any(marker in full for marker in JOB_NOT_FOUND_MARKERS):
            return FlinkJobNotFound(f"{self.rest_url}{path}: {summary}")
        if any(marker in full for marker in DUPLICATE_MARKERS):
            return JobAlreadySubmitted(summary)
        if "Jar file" in full and "does not exist" in full:
            return JarMissing(f"{self.rest_url}: {summary}")
        if status >= 500 and not any(marker in full for marker in PROGRAM_ERROR_MARKERS):
            return FlinkUnreachable(f"{self.rest_url}{path}: HTTP {status}: {summary}")
        return FlinkRequestFailed(status, summary, path)

    # -- cluster -------------------------------------------------------------------------
    def flink_version(self) -> FlinkVersion | None:
        """The cluster's Flink version from GET /config; None when it reports none that
        reads as a version."""
        found = self._request("GET", "/config", "config")
        return FlinkVersion.parse(found.get("flink-version")) if isinstance(found, dict) else None

    def jobmanager_config(self) -> dict[str, str]:
        entries = self._request("GET", "/jobmanager/config", "jobmanager_config")
        return {str(e["key"]): str(e["value"]) for e in entries}

    # -- jobs ----------------------------------------------------------------------------
    def jobs(self) -> list[dict[str, Any]]:
        """Every job the cluster knows: id and state."""
        return self.parse_job_listing(self.job_listing())

    def job_listing(self) -> bytes:
        """GET /jobs as the cluster sent it: a caller listing every second can tell an
        unchanged listing from its bytes, without decoding thousands of entries again."""
        response = self._send("GET", "/jobs", "jobs")
        assert response is not None  # only a request that allows a 404 answers None
        return response.content

    def parse_job_listing(self, body: bytes) -> list[dict[str, Any]]:
        found = self._decoded(body, "/jobs")
        if not isinstance(found, dict) or not isinstance(found.get("jobs", []), list):
            raise FlinkUnreachable(f"{self.rest_url}/jobs: answer is not a job listing")
        return list(found.get("jobs", []))

    def job_state(self, job_id: str) -> str | None:
        """The job's state straight from the dispatcher, or None when the cluster lacks the job.

        Unlike GET /jobs/<id>, this is not served from the execution-graph cache, which is up
        to `web.refresh-interval` (3 s by default) old: detection would wait for it.
        """
        found = self._request("GET", f"/jobs/{job_id}/status", "job_status", allow_404=True)
        return str(found["status"]) if found is not None else None

    def checkpoints(self, job_id: str) -> dict[str, Any] | None:
        found = self._request("GET", f"/jobs/{job_id}/checkpoints", "checkpoints", allow_404=True)
        return dict(found) if found is not None else None

    def root_exception(self, job_id: str) -> str:
        found = self._request(
            "GET", f"/jobs/{job_id}/exceptions", "exceptions", allow_404=True,
            params={"maxExceptions": 1},
        )
        if not isinstance(found, dict):
            return ""
        # Flink 1.20 sends `root-exception` (2.0 removed it) as null, and no history entry,
        # until it has the failure: that is "not reported yet", never the text "None".
        history = found.get("exceptionHistory")
        entries = history.get("entries") if isinstance(history, dict) else None
        first = entries[0] if isinstance(entries, list) and entries else None
        trace = first.get("stacktrace") if isinstance(first, dict) else None
        root = found.get("root-exception")
        for text in (trace, root):
            if isinstance(text, str) and text.strip():
                return _innermost_cause(text)
        return ""

    def cancel(self, job_id: str) -> None:
        """Cancel; a job that is gone or has ended already is no error (409 from Flink)."""
        try:
            self._request("PATCH", f"/jobs/{job_id}", "cancel", allow_404=True,
                          params={"mode": "cancel"})
        except FlinkRequestFailed as exc:
            if exc.status != 409:
                raise

    def restart_count(self, job_id: str) -> int | None:
        """Flink's own restart count (the numRestarts metric; refreshed every ~10 s)."""
        found = self._request("GET", f"/jobs/{job_id}/metrics", "job_metrics", allow_404=True,
                              params={"get": "numRestarts"})
        for metric in found or []:
            if metric.get("id") == "numRestarts":
                return int(float(metric["value"]))
        return None

    # -- savepoints ----------------------------------------------------------------------
    def trigger_savepoint(self, job_id: str, target_dir: str | None = None) -> str:
        body: dict[str, Any] = {"cancel-job": False}
        if target_dir:
            body["target-directory"] = target_dir
        answer = self._request("POST", f"/jobs/{job_id}/savepoints", "savepoint", json=body)
        return str(answer["request-id"])

    def stop_with_savepoint(self, job_id: str, target_dir: str | None = None) -> str:
        body: dict[str, Any] = {"drain": False}
        if target_dir:
            body["targetDirectory"] = target_dir
        answer = self._request("POST", f"/jobs/{job_id}/stop", "stop", json=body)
        return str(answer["request-id"])

    def savepoint_result(self, job_id: str, trigger_id: str) -> tuple[str, str]:
        """("IN_PROGRESS", "") or ("COMPLETED", location) or ("FAILED", cause)."""
        answer = self._request("GET", f"/jobs/{job_id}/savepoints/{trigger_id}",
                               "savepoint_status")
        return _operation_result(answer, "location")

    def dispose_savepoint(self, path: str) -> str:
        answer = self._request("POST", "/savepoint-disposal", "savepoint_disposal",
                               json={"savepoint-path": path})
        return str(answer["request-id"])

    # -- jars ----------------------------------------------------------------------------
    def jars(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/jars", "jars").get("files", []))

    def upload_jar(self, path: Path, name: str) -> str:
        with path.open("rb") as handle:
            answer = self._request(
                "POST", "/jars/upload", "jar_upload",
                files={"jarfile": (name, handle, "application/x-java-archive")},
            )
        return str(answer["filename"]).rsplit("/", 1)[-1]

    def run_jar(self, jar_id: str, body: dict[str, Any]) -> str:
        """Run the program: waited for up to RUN_TIMEOUT, whatever the client's timeout."""
        answer = self._request("POST", f"/jars/{jar_id}/run", "jar_run", json=body,
                               timeout=max(self.timeout, RUN_TIMEOUT))
        return str(answer["jobid"])


def _operation_result(answer: dict[str, Any], key: str) -> tuple[str, str]:
    if (answer.get("status") or {}).get("id") != "COMPLETED":
        return "IN_PROGRESS", ""
    operation = answer.get("operation") or {}
    failure = operation.get("failure-cause")
    if failure:
        trace = str(failure.get("stack-trace") or failure.get("class") or failure)
        return "FAILED", _innermost_cause(trace)
    return "COMPLETED", str(operation.get(key, "")) if key else ""


def _error_text(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors", [])
        text = "\n".join(str(e) for e in errors if e != "Internal server error.")
    except (ValueError, AttributeError):
        text = response.text[:2000]
    return text or response.reason_phrase


# The exception line of a Python traceback: `RuntimeError: ...`, `pkg.BadInput`.
PYTHON_ERROR = re.compile(r"^[A-Za-z_][\w.]*(: .*)?$")


def _python_error(trace: str) -> str | None:
    """The exception a Python function raised, where the trace carries its traceback (a
    PyFlink job's Python code failed): the last traceback's exception line."""
    lines = trace.splitlines()
    found = None
    for number, line in enumerate(lines):
        if "Traceback (most recent call last):" not in line:
            continue
        for after in lines[number + 1:]:
            if after.startswith(("\tat ", "Caused by:")) or after.lstrip().startswith("at "):
                break
            if PYTHON_ERROR.match(after) and not after.startswith(("During handling",)):
                found = after.strip()
    return found


def _innermost_cause(trace: str) -> str:
    """The deepest `Caused by:` of a Java stack trace: what actually went wrong (for a
    Python function's failure, the exception it raised)."""
    python = _python_error(trace)
    if python:
        return python[:500]
    lines = [line.strip() for line in trace.strip().splitlines()]
    lines = [line for line in lines if line and not line.startswith(("at ", "<Exception on"))]
    causes = [line.removeprefix("Caused by: ") for line in lines if line.startswith("Caused by: ")]
    return (causes[-1] if causes else lines[0] if lines else "")[:500]
