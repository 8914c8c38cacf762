"""The portal in a real browser (Debian's Chromium, driven by Playwright) against a real
master, worker, ZooKeeper and Flink: the fleet with each job's phase, filters that live in
the URL, a page that refreshes itself, a job's restart timeline checked against what Flink
restored, a suspend and a resume by a person an authenticating proxy names, and data marked
stale the moment the master loses ZooKeeper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from common.flink.jobids import flink_job_id
from common.store.records import Phase
from common.store.zookeeper import Store
from tests.browser import chromium
from tests.stack import ControlPlane, outside_ephemeral_ports
from tests.tcpproxy import TcpProxy
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

GREEN, BLUE = "rgb(27, 127, 59)", "rgb(31, 95, 191)"  # portal.css's phase-green, -blue


def colour(page: Any, selector: str) -> str:
    return str(page.eval_on_selector(selector, "e => getComputedStyle(e).color"))


@pytest.mark.timeout(400)
def test_the_portal_shows_the_fleet_each_jobs_restarts_and_stale_data_in_a_browser(
    control: ControlPlane, store: Store, tmp_path: Path
) -> None:
    marker = tmp_path / "fail-once"
    first = control.write_job("portal-counter", args=["--fail-marker", str(marker)])
    control.write_job("portal-held", state="suspended")
    zookeeper = TcpProxy(int(control.cluster.zk_hosts.rsplit(":", 1)[1]))
    port = outside_ephemeral_ports(1)[0]
    control.start_master("master-a", "--metrics-port", str(port), "--metrics-host",
                         "127.0.0.1", "--portal-link",
                         "logs=http://logs.invalid/search?job=$job&attempt=$attempt",
                         "--portal-actions", "--portal-trusted-header", "X-Forwarded-User",
                         zk=f"127.0.0.1:{zookeeper.port}")
    control.start_worker("worker-a", slots=2)
    portal = f"http://127.0.0.1:{port}"
    wait_until(lambda: store.status("portal-counter")[0].last_checkpoint, 120,
               "portal-counter RUNNING with a checkpoint")
    wait_until(lambda: store.status("portal-held")[0].phase == Phase.SUSPENDED, 60,
               "portal-held Suspended")
    errors: list[str] = []
    try:
        with chromium() as browser:
            page = browser.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: errors.append(message.text)
                    if message.type == "error" else None)
            page.goto(portal + "/")
            running = 'tr[data-job="portal-counter"] .phase'
            held = 'tr[data-job="portal-held"] .phase'
            assert page.inner_text(running) == "Running" and colour(page, running) == GREEN
            assert page.inner_text(held) == "Suspended" and colour(page, held) == BLUE
            assert page.inner_text("#counts").startswith("2 jobs")
            assert page.get_attribute("#freshness", "data-stale") == "false"
            assert "leader: master-a" in page.inner_text("#freshness")
            page.screenshot(path=str(tmp_path / "fleet.png"))  # kept with the test

            # A filter typed in is in the address bar: pasted into another tab, the same view.
            page.fill("input[name=name]", "held")
            wait_until(lambda: page.evaluate("location.href") == portal + "/?name=held", 10,
                       "the filter in the address bar")  # (page.url is read without asking)
            wait_until(lambda: page.locator("tr[data-job]").count() == 1, 10,
                       "the filtered fleet")
            pasted = browser.new_page()
            pasted.goto(page.evaluate("location.href"))
            assert [pasted.get_attribute(f"tr[data-job] >> nth={n}", "data-job")
                    for n in range(pasted.locator("tr[data-job]").count())] == ["portal-held"]
            pasted.close()
            page.goto(portal + "/?name=portal-counter")

            # The open page follows the failure by itself: attempt 2 appears without a reload.
            second, _ = control.cluster.fail_over("portal-counter", first, marker)
            restored = control.cluster.restored_from_newest(first, second)
            wait_until(lambda: page.inner_text(
                'tr[data-job="portal-counter"] td.attempt') == "2", 30,
                "the open fleet page showing attempt 2")

            page.goto(portal + "/jobs/portal-counter")
            attempt2 = page.locator('#timeline tr[data-attempt="2"]')
            wait_until(lambda: attempt2.count() == 1, 30, "attempt 2 on the timeline")
            restored_cell = attempt2.locator(".restored").inner_text()
            assert f"chk-{restored['id']} of attempt 1" in restored_cell
            attempt1 = page.inner_text('#timeline tr[data-attempt="1"]')
            assert "failure:" in attempt1 and ("push" in attempt1 or "poll" in attempt1)
            status = store.status("portal-counter")[0]
            assert status.last_failure and page.inner_text("#last-failure").startswith(
                status.last_failure[:60])
            links = {page.inner_text(f"a.link >> nth={n}"):
                     page.get_attribute(f"a.link >> nth={n}", "href")
                     for n in range(page.locator("a.link").count())}
            assert links["Flink UI of attempt 2"] == (
                f"{control.cluster.rest_url}/#/job/running/{second}/overview")
            assert links["logs"] == "http://logs.invalid/search?job=portal-counter&attempt=2"
            assert second == flink_job_id("portal-counter", 2)
            page.screenshot(path=str(tmp_path / "job.png"), full_page=True)

            # An action, as the authenticating proxy's alice: confirmed by the job's name,
            # carried out by the worker, recorded naming her.
            assert page.locator("form.action").count() == 0  # nobody known: no action
            alice = browser.new_context(extra_http_headers={"X-Forwarded-User": "alice"})
            acting = alice.new_page()
            acting.on("pageerror", lambda error: errors.append(str(error)))
            acting.goto(portal + "/jobs/portal-counter")
            assert acting.inner_text("#who") == "alice"
            suspend = 'form[data-action="suspend"]'
            acting.fill(f"{suspend} input[name=reason]", "incident 12")
            acting.fill(f"{suspend} input[name=confirm]", "portal-counter")
            acting.click(f"{suspend} button")
            assert "suspend requested by alice" in acting.inner_text("#requested")
            wait_until(lambda: store.status("portal-counter")[0].phase == Phase.SUSPENDED, 60,
                       "portal-counter suspended from the portal")
            override = store.override("portal-counter") or {}
            assert (override.get("by"), override.get("reason")) == ("alice", "incident 12")
            assert any(e["source"] == "portal alice" and e["message"] ==
                       "suspended by alice: incident 12" for e in store.events("portal-counter"))
            resume = 'form[data-action="resume"]'
            acting.fill(f"{resume} input[name=confirm]", "portal-counter")
            acting.click(f"{resume} button")
            wait_until(lambda: store.status("portal-counter")[0].phase == Phase.RUNNING
                       and store.status("portal-counter")[0].attempt == 3, 90,
                       "portal-counter resumed as attempt 3")
            alice.close()
            page.reload()

            # ZooKeeper gone for the master: the page says so by itself, keeps what it read.
            zookeeper.refuse()
            wait_until(lambda: page.get_attribute("#freshness", "data-stale") == "true", 30,
                       "the job page marked stale")
            assert "STALE" in page.inner_text("#freshness")
            page.screenshot(path=str(tmp_path / "job-stale.png"))
            assert page.locator('#timeline tr[data-attempt="3"]').count() == 1
            zookeeper.heal()
            wait_until(lambda: page.get_attribute("#freshness", "data-stale") == "false", 60,
                       "the job page fresh again")
        assert errors == []  # no script error, nothing the page's security policy refused
        refused = httpx.post(f"{portal}/jobs/portal-counter", timeout=10)
        assert refused.status_code == 405
    finally:
        zookeeper.close()
