"""Alerts, end to end: promtool on the shipped rules, and a real Prometheus scraping real
masters and workers, the dashboard's queries evaluated by that Prometheus, the health
endpoints of both processes."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.processes import free_port
from common.store.records import Phase
from common.store.zookeeper import Store
from scheduler.devstack import prometheus
from scheduler.devstack.services import Service, port_open, start, stop, wait_for
from tests.stack import ControlPlane
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

FOR = 5.0  # the rules' `for`, shortened for this test (promtool checks the shipped ones)
SCRAPE = 1.0


def test_promtool_checks_and_unit_tests_every_rule() -> None:
    _, promtool = prometheus.ensure_prometheus()
    checked = subprocess.run([str(promtool), "check", "rules", str(prometheus.RULES)],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([str(promtool), "test", "rules", str(prometheus.RULE_TESTS)],
                            capture_output=True, text=True, cwd=prometheus.RULE_TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = set(re.findall(r"- alert: (\w+)", prometheus.RULES.read_text()))
    tests = prometheus.RULE_TESTS.read_text()
    for alert in alerts:  # a case that fires, and one that must not
        assert f"alertname: {alert}\n        exp_alerts:\n          - exp_labels" in tests, alert
        assert re.search(rf"alertname: {alert}\n\s+exp_alerts: \[\]", tests), alert
    for rule in re.findall(r"- alert: \w+.*?(?=\n      - alert:|\n  - name:|\Z)",
                           prometheus.RULES.read_text(), re.S):
        assert all(key in rule for key in ("summary:", "description:", "runbook_url:")), rule
        anchor = re.search(r"runbook_url: docs/runbooks.md#(\S+)", rule)
        assert anchor is not None
        runbooks = (prometheus.REPO / "docs" / "runbooks.md").read_text().lower()
        assert f"\n## {anchor.group(1)}\n" in runbooks, anchor.group(1)


def _status(url: str) -> int:
    return httpx.get(url, timeout=2).status_code


def _ready_text(url: str) -> str | None:
    """The text of a 200 answer, None for any other."""
    answer = httpx.get(url, timeout=2)
    return answer.text if answer.status_code == 200 else None


class Prometheus:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def query(self, expr: str) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5)
        return dict(answer.json())

    def firing(self, alertname: str) -> list[dict[str, Any]]:
        alerts = httpx.get(f"{self.url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == alertname
                and a["state"] == "firing"]


@pytest.fixture
def prom(control: ControlPlane) -> Iterator[tuple[Prometheus, int, int]]:
    """A real Prometheus scraping one master port and one worker port every second."""
    binary, _ = prometheus.ensure_prometheus()
    master_port, worker_port, port = free_port(), free_port(), free_port()
    rules = control.workdir / "rules.yaml"
    rules.write_text(re.sub(r"\bfor: \S+", f"for: {FOR:g}s", prometheus.RULES.read_text()))
    config = prometheus.write_config(control.workdir, [f"127.0.0.1:{master_port}"],
                                     [f"127.0.0.1:{worker_port}"], rules, f"{SCRAPE:g}s")
    service = Service("prometheus", prometheus.server_argv(binary, config, control.workdir,
                                                           port), {}, control.workdir)
    start(service)
    try:
        assert wait_for(lambda: port_open(port), 60), service.log_file.read_text()
        yield Prometheus(port), master_port, worker_port
    finally:
        stop(service)


def test_crash_loop_and_no_leader_alerts_fire_in_a_real_prometheus(
    control: ControlPlane, prom: tuple[Prometheus, int, int], tmp_path: Path
) -> None:
    server, master_port, worker_port = prom
    marker = tmp_path / "always"
    marker.touch()
    control.write_job("alert-looping", args=["--fail-always-marker", str(marker)],
                      restartPolicy={"maxRestarts": 2, "window": "10m",
                                     "backoff": {"initial": "0s", "max": "0s"}})
    control.write_job("alert-healthy")
    control.start_master("master-a", "--metrics-port", str(master_port))
    control.start_worker("worker-a", slots=2, metrics_port=worker_port)

    for port, ready in ((master_port, "leader"), (worker_port, "owning")):
        url = f"http://127.0.0.1:{port}"
        # Status and text of one answer: readiness may change between two.
        text = wait_until(lambda: _ready_text(url + "/readyz"), 30, f"{url}/readyz")  # noqa: B023
        assert ready in text
        assert _status(url + "/healthz") == 200

    crash_loop = 'flinksched_job_phase{cluster="default",job_name="alert-looping",' \
                 'phase="CrashLoopBackOff"} 1.0'
    wait_until(lambda: crash_loop in httpx.get(f"http://127.0.0.1:{master_port}/metrics",
                                               timeout=5).text, 120, "the crash loop exported")
    exported = time.monotonic()
    [alert] = wait_until(lambda: server.firing("FlinkschedJobCrashLooping"), 30,
                         "FlinkschedJobCrashLooping firing")
    took = time.monotonic() - exported
    # for + two scrape intervals, plus one rule evaluation (1 s) and this test's polling
    assert took <= FOR + 2 * SCRAPE + 1.5, f"fired {took:.1f}s after the metric showed it"
    assert alert["labels"]["job_name"] == "alert-looping"
    assert alert["annotations"]["runbook_url"].endswith("#flinkschedjobcrashlooping")
    assert server.firing("FlinkschedNoLeader") == []
    assert wait_until(lambda: server.query("flinksched_job_up{job_name='alert-healthy'}")[
        "data"]["result"], 20, "the healthy job scraped")[0]["value"][1] == "1"

    # Every query of the dashboard parses and runs on this Prometheus.
    dashboard = json.loads(prometheus.DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    for expr in exprs:
        concrete = expr.replace("$__rate_interval", "1m").replace("$job_name", ".*")
        answer = server.query(concrete)
        assert answer["status"] == "success", (expr, answer)

    control.signal("master-a", signal.SIGTERM)
    control.processes["master-a"].wait(timeout=30)
    stopped = time.monotonic()
    wait_until(lambda: server.firing("FlinkschedNoLeader"), FOR + 2 * SCRAPE + 10,
               "FlinkschedNoLeader firing once the only master stopped")
    took = time.monotonic() - stopped
    assert took <= FOR + 2 * SCRAPE + 1.5, f"fired {took:.1f}s after the master stopped"


def test_a_job_whose_owner_is_gone_is_unsupervised_and_its_alert_fires(
    control: ControlPlane, prom: tuple[Prometheus, int, int], store: Store
) -> None:
    """A worker that stops answering (SIGSTOP: the status it wrote still says Running) loses
    its session and so its jobs; with no worker to take the job, the leader reports it
    unsupervised, `status` does not show the stale status as current, the alert fires."""
    server, master_port, worker_port = prom
    first = control.write_job("alert-orphaned")
    control.start_master("master-a", "--metrics-port", str(master_port),
                         "--spare-workers", "0")
    control.start_worker("worker-a", metrics_port=worker_port)
    metrics = f"http://127.0.0.1:{master_port}/metrics"
    up = 'flinksched_job_up{cluster="default",job_name="alert-orphaned"} 1.0'
    wait_until(lambda: up in httpx.get(metrics, timeout=5).text, 90, "the job up")

    control.signal("worker-a", signal.SIGSTOP)
    try:
        unsupervised = 'flinksched_job_supervised{cluster="default",job_name="alert-orphaned"} 0.0'
        wait_until(lambda: unsupervised in httpx.get(metrics, timeout=5).text,
                   control.session_timeout * 2 + 15, "the job exported as unsupervised")
        text = httpx.get(metrics, timeout=5).text
        assert 'flinksched_job_up{cluster="default",job_name="alert-orphaned"} 0.0' in text
        assert "flinksched_jobs_unsupervised 1.0" in text
        # The status in ZooKeeper still says Running, from the worker that lost the job.
        status = store.status("alert-orphaned")[0]
        assert (status.phase, status.worker, status.flink_job_id) == (
            Phase.RUNNING, "worker-a", first)
        [row] = json.loads(control.cli("status", "-o", "json"))
        assert (row["phase"], row["reportedPhase"], row["supervised"]) == (
            "Unsupervised", "Running", False)
        assert "its last owner, worker worker-a, is gone" in row["reason"]
        [alert] = wait_until(lambda: server.firing("FlinkschedJobUnsupervised"),
                             FOR + 2 * SCRAPE + 10, "FlinkschedJobUnsupervised firing")
        assert alert["labels"]["job_name"] == "alert-orphaned"
        assert alert["annotations"]["runbook_url"].endswith("#flinkschedjobunsupervised")
    finally:
        control.signal("worker-a", signal.SIGCONT)
    # Woken, the worker learns its session expired, registers again and owns the job again.
    supervised = 'flinksched_job_supervised{cluster="default",job_name="alert-orphaned"} 1.0'
    wait_until(lambda: supervised in httpx.get(metrics, timeout=5).text, 30,
               "the job supervised again")
    assert control.cluster.submissions("alert-orphaned") == [first], "adopted, not restarted"
