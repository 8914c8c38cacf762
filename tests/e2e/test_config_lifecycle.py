"""Job configs as code on the real stack: upgrades, suspend/resume, removal, broken files, git.

Each test edits YAML the way a user's repository changes and watches ZooKeeper and Flink.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from common.flink.jobids import flink_job_id
from common.processes import free_port
from common.store.records import JobRecord, JobStatus
from common.store.zookeeper import Store
from scheduler.cli.main import cli
from tests.gitutil import git
from tests.stack import ControlPlane, FlinkUnderTest, on_each_flink
from tests.waiting import holds_for, wait_until

pytestmark = pytest.mark.e2e


def running(store: Store, name: str, attempt: int = 1) -> JobStatus | None:
    status, _ = store.status(name)
    return status if status.phase == "Running" and status.attempt == attempt else None


def in_phase(store: Store, name: str, phase: str) -> JobStatus | None:
    status, _ = store.status(name)
    return status if status.phase == phase else None


def running_with_a_checkpoint(control: ControlPlane, store: Store, name: str) -> str:
    """One job under a master and a worker, RUNNING with a completed checkpoint."""
    control.write_job(name)
    control.start_master()
    control.start_worker()
    wait_until(lambda: running(store, name), 60, "attempt 1 RUNNING")
    first = flink_job_id(name, 1)
    wait_until(lambda: control.cluster.completed_checkpoint_id(first), 30, "a checkpoint")
    return first


def messages(store: Store, name: str) -> list[str]:
    return [str(event["message"]) for event in store.events(name)]


@on_each_flink
def test_parallelism_change_upgrades_through_a_savepoint(
    flink: FlinkUnderTest, control: ControlPlane, store: Store
) -> None:
    first = running_with_a_checkpoint(control, store, "cfg-upgrade")

    control.write_job("cfg-upgrade", parallelism=2)
    upgraded = wait_until(lambda: running(store, "cfg-upgrade", attempt=2), 60,
                          "attempt 2 RUNNING after the parallelism change")
    record = store.job("cfg-upgrade")
    assert record is not None and record.generation == 2
    assert upgraded.observed_generation == 2
    [savepoint] = upgraded.savepoints
    assert upgraded.restored_from == savepoint.path
    assert control.cluster.job_state(first) == "FINISHED"  # stopped with a savepoint, not killed
    second = flink_job_id("cfg-upgrade", 2)
    restored = wait_until(
        lambda: (control.cluster.checkpoints(second).get("latest") or {}).get("restored"), 30,
        "Flink to report what attempt 2 restored")
    assert restored["external_path"] == savepoint.path
    vertices = control.cluster.get(f"/jobs/{second}")["vertices"]
    assert {v["parallelism"] for v in vertices} == {2}
    events = messages(store, "cfg-upgrade")
    assert any("generation 2 from" in m and "spec.job.parallelism: 1 -> 2" in m for m in events)
    assert any(m.startswith("attempt 1 stopped with savepoint") for m in events)


@on_each_flink
def test_suspend_and_resume_through_the_yaml(flink: FlinkUnderTest, control: ControlPlane,
                                             store: Store) -> None:
    first = running_with_a_checkpoint(control, store, "cfg-suspend")

    control.write_job("cfg-suspend", state="suspended")
    suspended = wait_until(lambda: in_phase(store, "cfg-suspend", "Suspended"), 60,
                           "the job Suspended")
    assert suspended.last_checkpoint is not None
    assert suspended.last_checkpoint.kind == "savepoint"
    assert control.cluster.job_state(first) == "FINISHED"
    assert control.cluster.running_ids("cfg-suspend") == []

    control.write_job("cfg-suspend", state="running")
    resumed = wait_until(lambda: running(store, "cfg-suspend", attempt=2), 60,
                         "attempt 2 RUNNING after resume")
    assert resumed.restored_from == suspended.last_checkpoint.path
    assert control.cluster.submissions("cfg-suspend") == sorted(
        [first, flink_job_id("cfg-suspend", 2)])


def test_deleted_file_stops_the_job_with_a_savepoint_then_deletes_it(
    control: ControlPlane, store: Store
) -> None:
    control.write_job("cfg-removed")
    control.write_job("cfg-stays")
    control.start_master("master-a", "--removal-grace", "4")
    control.start_worker("worker-a", slots=2)
    wait_until(lambda: all(running(store, n) for n in ("cfg-removed", "cfg-stays")), 60,
               "both jobs RUNNING")
    wait_until(lambda: control.cluster.completed_checkpoint_id(flink_job_id("cfg-removed", 1)),
               30, "a checkpoint")
    assert store.zk.exists(store.events_path("cfg-removed")), "its supervisor registered it"

    (control.config_dir / "cfg-removed.yaml").unlink()
    final = wait_until(lambda: in_phase(store, "cfg-removed", "Removed"), 60,
                       "the removed job stopped")
    assert final.last_checkpoint is not None and final.last_checkpoint.kind == "savepoint"
    assert any(final.last_checkpoint.path in m for m in messages(store, "cfg-removed"))
    assert control.cluster.job_state(flink_job_id("cfg-removed", 1)) == "FINISHED"
    wait_until(lambda: store.job("cfg-removed") is None, 30, "the metadata deleted after grace")
    assert store.job_names() == ["cfg-stays"]
    assert store.zk.exists(store.events_path("cfg-removed")) is None, "no push node left"
    assert store.zk.exists(store.events_path("cfg-stays"))
    assert running(store, "cfg-stays")  # untouched: still its first attempt
    assert final.last_checkpoint.path in control.log("master-a")


def test_a_broken_file_beside_a_good_one_harms_neither_job(
    control: ControlPlane, store: Store
) -> None:
    metrics_port = free_port()
    control.write_job("cfg-broken")
    control.write_job("cfg-good")
    control.start_master("master-a", "--metrics-port", str(metrics_port))
    control.start_worker("worker-a", slots=2)
    wait_until(lambda: all(running(store, n) for n in ("cfg-broken", "cfg-good")), 60,
               "both jobs RUNNING")

    broken = control.config_dir / "cfg-broken.yaml"
    broken.write_text(broken.read_text().replace("parallelism: 1", "parallelism: [1"))
    control.write_job("cfg-good", args=["--keys", "8"])  # a valid change beside it goes through

    def status_json() -> list[dict[str, Any]]:
        result = CliRunner().invoke(cli, ["--zk", control.cluster.zk_hosts, "--root",
                                          control.root, "status", "-o", "json"])
        return list(json.loads(result.output))

    def broken_row() -> dict[str, Any] | None:
        return next((r for r in status_json() if r["name"] == "cfg-broken"), None)

    row = wait_until(lambda: (r := broken_row()) and r["configError"] and r, 30,
                     "status to show the config error")
    assert "cfg-broken.yaml" in str(row["configError"]) and "YAML syntax error" in str(
        row["configError"])
    assert row["generation"] == 1 and row["phase"] == "Running" and row["attempt"] == 1
    wait_until(lambda: running(store, "cfg-good", attempt=2), 60, "the good job upgraded")
    scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    assert "flinksched_config_errors 1.0" in scraped
    described = CliRunner().invoke(cli, ["--zk", control.cluster.zk_hosts, "--root",
                                         control.root, "describe", "cfg-broken"]).output
    assert "config error:" in described and "keeps generation 1" in described
    holds_for(lambda: running(store, "cfg-broken") and store.job("cfg-broken"), 3,
              "the broken file's job running on its last valid spec")

    control.write_job("cfg-broken")  # fixed: same spec as before, nothing to restart
    wait_until(lambda: (r := broken_row()) and not r["configError"], 30,
               "the config error cleared")
    assert running(store, "cfg-broken")


def test_built_in_git_mode_picks_up_a_pushed_commit(
    control: ControlPlane, store: Store, tmp_path: Path
) -> None:
    bare, work, checkout = tmp_path / "jobs.git", tmp_path / "work", tmp_path / "checkout"
    git("init", "--quiet", "--bare", "--initial-branch", "main", str(bare), cwd=tmp_path)
    git("clone", "--quiet", str(bare), str(work), cwd=tmp_path)
    git("checkout", "--quiet", "-b", "main", cwd=work)
    control.write_job("cfg-git", config_dir=work)
    git("add", ".", cwd=work)
    git("commit", "--quiet", "-m", "add cfg-git", cwd=work)
    git("push", "--quiet", "origin", "main", cwd=work)
    first_commit = git("rev-parse", "HEAD", cwd=work)

    control.start_master("master-a", "--config-git", str(bare), "--branch", "main",
                         "--git-interval", "1", config_dir=checkout)
    control.start_worker()
    wait_until(lambda: running(store, "cfg-git"), 60, "attempt 1 RUNNING from the git checkout")
    record = store.job("cfg-git")
    assert record is not None and record.commit == first_commit

    control.write_job("cfg-git", config_dir=work, parallelism=2)
    git("commit", "--quiet", "-am", "cfg-git: parallelism 2", cwd=work)
    git("push", "--quiet", "origin", "main", cwd=work)
    second_commit = git("rev-parse", "HEAD", cwd=work)
    wait_until(lambda: running(store, "cfg-git", attempt=2), 60, "attempt 2 after the push")
    record = store.job("cfg-git")
    assert record is not None and (record.generation, record.commit) == (2, second_commit)
    assert any(second_commit[:12] in m for m in messages(store, "cfg-git"))


def test_a_checkout_kept_by_a_sidecar_records_each_commit(
    control: ControlPlane, store: Store, tmp_path: Path
) -> None:
    """As git-sync does it: each commit checked out into a new worktree, then a link swapped
    to it. The master only reads the directory behind the link, and its HEAD."""
    repo, link = tmp_path / "repo", tmp_path / "current"
    repo.mkdir()
    git("init", "--quiet", "--initial-branch", "main", cwd=repo)

    def publish(commit_message: str, **spec: Any) -> str:
        control.write_job("cfg-sidecar", config_dir=repo, **spec)
        git("add", ".", cwd=repo)
        git("commit", "--quiet", "-m", commit_message, cwd=repo)
        head = git("rev-parse", "HEAD", cwd=repo)
        git("worktree", "add", "--quiet", "--detach", str(tmp_path / head), head, cwd=repo)
        (tmp_path / "next").symlink_to(tmp_path / head)
        (tmp_path / "next").replace(link)
        return head

    def generation(number: int) -> JobRecord | None:
        record = store.job("cfg-sidecar")
        return record if record is not None and record.generation == number else None

    first = publish("add cfg-sidecar")
    control.start_master("master-a", config_dir=link)
    assert wait_until(lambda: generation(1), 30, "generation 1").commit == first
    second = publish("parallelism 2", parallelism=2)
    assert wait_until(lambda: generation(2), 30, "generation 2").commit == second
