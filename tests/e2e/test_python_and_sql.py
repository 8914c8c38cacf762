"""Python and SQL jobs on a real session cluster of each Flink line, supervised as jar jobs
are: the attempt runs under its deterministic job id, and a failure is restarted from the
newest checkpoint (checked against Flink's `latest.restored`). A Python file that does not
exist, one that does not compile or import, and a statement Flink rejects are each refused
with Flink's complaint, submitted once, beside a job that runs on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.flink.jobids import flink_job_id
from common.store.records import JobStatus
from common.store.zookeeper import Store
from tests.programs import python_program, sql_example, sql_program
from tests.stack import (
    OWN_CLUSTER,
    OWN_CLUSTER_START_SECONDS,
    ControlPlane,
    FlinkUnderTest,
    on_each_flink,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

def fails_then_restarts_from_the_newest_checkpoint(control: ControlPlane, store: Store,
                                                   name: str, marker: Path) -> None:
    first = flink_job_id(name, 1)
    wait_until(lambda: control.cluster.job_state(first) == "RUNNING", 120,
               f"{name}'s attempt 1 RUNNING under its own job id")
    wait_until(lambda: control.cluster.completed_checkpoint_id(first) >= 2, 120,
               "two completed checkpoints of attempt 1")
    _, newest = control.cluster.fail_over(name, first, marker)

    def restarted() -> JobStatus | None:
        status = store.status(name)[0]
        return status if status.attempt == 2 and "injected failure" in status.last_failure \
            else None

    status = wait_until(restarted, 30, "the status to name the injected failure")
    assert status.restarts == 1 and status.restored_from.rstrip("/").endswith(
        f"chk-{newest['id']}")


@pytest.mark.python_functions
@on_each_flink
def test_a_python_job_runs_under_its_job_id_and_a_failure_restarts_it_from_the_newest_checkpoint(
        flink: FlinkUnderTest, control: ControlPlane, store: Store, tmp_path: Path) -> None:
    marker = tmp_path / "fail-once"
    control.write_job("py-counter", program=python_program(marker))
    control.start_master()
    control.start_worker()
    fails_then_restarts_from_the_newest_checkpoint(control, store, "py-counter", marker)


@on_each_flink
def test_a_sql_job_runs_under_its_job_id_and_a_failure_restarts_it_from_the_newest_checkpoint(
        flink: FlinkUnderTest, control: ControlPlane, store: Store, tmp_path: Path) -> None:
    """Through Flink's SqlDriver on 2.3 and flinksched's runner on 1.20; the failure is
    injected by a function the script loads `USING JAR`, which on 1.20 compiles into a
    checkpointed job only because the runner shares the function's jar (FLINK-28897)."""
    marker = tmp_path / "fail-once"
    control.write_job("sql-counter", program=sql_program(marker, control.cluster.example_jar))
    control.start_master()
    control.start_worker()
    fails_then_restarts_from_the_newest_checkpoint(control, store, "sql-counter", marker)


@on_each_flink
def test_the_sql_example_runs_under_its_job_id_and_checkpoints(
        flink: FlinkUnderTest, control: ControlPlane, store: Store) -> None:
    """The script of `configs/sql-clicks-per-user.yaml`, from its file: read by the worker,
    given to the driver inline."""
    control.write_job("sql-example", program=sql_example())
    control.start_master()
    control.start_worker()
    first = flink_job_id("sql-example", 1)
    wait_until(lambda: control.cluster.completed_checkpoint_id(first) >= 1, 120,
               "the SQL example RUNNING under its job id with a completed checkpoint")
    assert control.cluster.running_ids("sql-example") == [first]
    assert store.status("sql-example")[0].phase == "Running"


@pytest.mark.python_functions
def test_python_jobs_submitted_beside_each_other_and_jar_jobs_each_run_under_their_own_id(
        control: ControlPlane, store: Store, tmp_path: Path) -> None:
    """A session JobManager gives a Python program the environment of whichever run request
    set its one static factory last: run beside other run requests, it took their job ids,
    or ran inside the JobManager. One worker starting three Python and two jar jobs at once
    runs each under its own id, once (each Python run request holds the cluster alone)."""
    python, jars = ["py-one", "py-two", "py-three"], ["jar-one", "jar-two"]
    for name in python:
        control.write_job(name, program=python_program(tmp_path / f"{name}-marker"))
    for name in jars:
        control.write_job(name)
    control.start_master()
    control.start_worker(slots=len(python) + len(jars))
    for name in python + jars:
        first = flink_job_id(name, 1)
        wait_until(lambda: control.cluster.job_state(first) == "RUNNING", 180,  # noqa: B023
                   f"{name}'s attempt 1 RUNNING under its own job id")
    wait_until(lambda: all(store.status(n)[0].phase == "Running" for n in python + jars), 60,
               "every job Running in its status")
    for name in python + jars:
        assert control.cluster.submissions(name) == [flink_job_id(name, 1)], name
        assert control.cluster.running_ids(name) == [flink_job_id(name, 1)], name


def status_once(store: Store, name: str, what: str,
                check: Callable[[JobStatus], bool]) -> JobStatus:
    def met() -> JobStatus | None:
        status = store.status(name)[0]
        return status if check(status) else None

    return wait_until(met, OWN_CLUSTER_START_SECONDS, f"{name} {what}")


@pytest.mark.python_functions
@on_each_flink
def test_python_and_sql_jobs_upgrade_through_a_savepoint_and_resume_from_one(
        flink: FlinkUnderTest, control: ControlPlane, store: Store, tmp_path: Path) -> None:
    """A changed spec stops each with a savepoint and starts attempt 2 from it; suspended in
    its YAML, each stops with a savepoint, and resumed, attempt 3 restores that one."""
    programs = {"py-upgraded": python_program(tmp_path / "never"), "sql-upgraded": sql_example()}
    for name, program in programs.items():
        control.write_job(name, program=program)
    control.start_master()
    control.start_worker(slots=len(programs))

    def restored(name: str, attempt: int) -> str:
        job_id = flink_job_id(name, attempt)
        wait_until(lambda: control.cluster.job_state(job_id) == "RUNNING", 120,
                   f"{name}'s attempt {attempt} RUNNING")
        found = wait_until(lambda: (control.cluster.checkpoints(job_id).get("latest") or {})
                           .get("restored"), 30, f"what {name}'s attempt {attempt} restored")
        return str(found["external_path"])

    for name in programs:
        wait_until(lambda n=name: control.cluster.completed_checkpoint_id(  # type: ignore[misc]
            flink_job_id(n, 1)) >= 1, 120, f"a checkpoint of {name}")
    for name, program in programs.items():  # a change that leaves the job graph as it is
        control.write_job(name, program=program, config={"execution.checkpointing.interval": "2s"})
    for name in programs:
        upgraded = status_once(store, name, "upgraded",
                               lambda status: status.attempt == 2 and status.phase == "Running")
        [savepoint] = upgraded.savepoints
        assert upgraded.restored_from == savepoint.path
        assert restored(name, 2) == savepoint.path, name
        assert control.cluster.job_state(flink_job_id(name, 1)) == "FINISHED", name

    for name, program in programs.items():
        control.write_job(name, program=program, config={"execution.checkpointing.interval": "2s"},
                          state="suspended")
    for name in programs:
        suspended = status_once(store, name, "suspended",
                                lambda status: status.phase == "Suspended")
        assert suspended.last_checkpoint is not None
        assert suspended.last_checkpoint.kind == "savepoint"
        assert control.cluster.running_ids(name) == [], name
        control.write_job(name, program=programs[name],
                          config={"execution.checkpointing.interval": "2s"})
        assert restored(name, 3) == suspended.last_checkpoint.path, name


@pytest.mark.timeout(600)  # four clusters of their own, two at a time
def test_python_and_sql_jobs_start_and_restart_on_clusters_of_their_own(
        control: ControlPlane, store: Store, tmp_path: Path) -> None:
    """Each in a JobManager of its own in application mode, through the same entry points:
    a failure tears the attempt's cluster down and attempt 2 starts on a new one from the
    newest checkpoint attempt 1 left."""
    markers = {"own-py": tmp_path / "py-fail", "own-sql": tmp_path / "sql-fail"}
    programs = {"own-py": python_program(markers["own-py"]),
                "own-sql": sql_program(markers["own-sql"], control.cluster.example_jar)}
    for name, program in programs.items():
        control.write_job(name, program=program, cluster=OWN_CLUSTER)
    control.start_master()
    control.start_worker(slots=len(programs))
    for name in programs:
        first = status_once(store, name, "RUNNING on a cluster of its own with a checkpoint",
                            lambda s: s.phase == "Running" and s.attempt == 1
                            and bool(s.cluster_url) and s.last_checkpoint is not None)
        answer = httpx.get(f"{first.cluster_url}/jobs/{flink_job_id(name, 1)}", timeout=10)
        assert answer.json()["state"] == "RUNNING", name
        assert first.cluster_url != control.cluster.rest_url
        markers[name].touch()
    for name in programs:
        second = status_once(store, name, "attempt 2 RUNNING after the injected failure",
                             lambda s: s.phase == "Running" and s.attempt == 2)
        assert "injected failure" in second.last_failure, second.last_failure
        first_id = flink_job_id(name, 1)
        newest = max(int(d.name.removeprefix("chk-")) for d in
                     (control.cluster.state_dir / "checkpoints" / first_id).glob("chk-*")
                     if (d / "_metadata").is_file())
        assert second.restored_from.rstrip("/").endswith(f"{first_id}/chk-{newest}"), name


def test_bad_python_and_sql_are_refused_with_flinks_reason_beside_a_job_that_runs(
        control: ControlPlane, store: Store, tmp_path: Path) -> None:
    """Each bad program is refused with what Flink said, submitted once (no restart budget:
    its one rejection ends in CrashLoopBackOff, reason kept), and the good job runs."""
    (tmp_path / "syntax.py").write_text("def main(:\n")
    (tmp_path / "imports.py").write_text("import no_such_module_anywhere\n")
    once: dict[str, Any] = {"restartPolicy": {"maxRestarts": 0}}
    control.write_job("py-missing", program={"pyFile": (tmp_path / "gone.py").as_uri()}, **once)
    control.write_job("py-syntax", program={"pyFile": (tmp_path / "syntax.py").as_uri()}, **once)
    control.write_job("py-import", program={"pyFile": (tmp_path / "imports.py").as_uri()},
                      **once)
    control.write_job("sql-rejected", program={"sql": "INSERT INTO nowhere SELECT 1;"}, **once)
    control.write_job("good", program=sql_example())
    control.start_master()
    control.start_worker(slots=5)
    wait_until(lambda: control.cluster.job_state(flink_job_id("good", 1)) == "RUNNING", 120,
               "the good job RUNNING")

    def refused(name: str) -> str | None:
        status = store.status(name)[0]
        return status.reason if status is not None and status.phase in (
            "SubmitFailed", "CrashLoopBackOff") and status.reason else None

    said = {name: wait_until(lambda n=name: refused(n), 120, f"{name} refused")  # type: ignore[misc]
            for name in ("py-missing", "py-syntax", "py-import", "sql-rejected")}
    assert "gone.py" in said["py-missing"], said
    # Flink's answer for a driver whose Python failed: its traceback is in the JobManager's
    # output, not in the REST answer.
    assert "Python process exits with code: 1" in said["py-syntax"], said
    assert "Python process exits with code: 1" in said["py-import"], said
    assert "nowhere" in said["sql-rejected"], said
    assert store.status("good")[0].phase == "Running"
    for name in said:
        assert store.status(name)[0].attempt == 1, f"{name} was submitted once"
