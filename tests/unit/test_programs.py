"""Jobs of every kind of program: what the spec accepts and refuses (at its file, line and
field), what Flink is given for each kind on each Flink line, and that adding the kinds
changed no jar job's record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from common.errors import ClusterLaunchFailed
from common.flink.versions import FlinkVersion
from common.spec.configdir import load_config_paths
from common.spec.programs import JarProgram, PythonProgram, SqlProgram
from scheduler.master.changes import desired_record
from tests.unit.configtexts import CLUSTER, JOB_HEAD
from worker.distributions import SQL_DRIVER, SQL_RUNNER, Distribution
from worker.programs import launchable, no_files

JOB = JOB_HEAD + "%s\n"


def load(tmp_path: Path, job: str, name: str = "j") -> Any:
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    (tmp_path / "job.yaml").write_text(JOB % (name, job))
    return load_config_paths([tmp_path])


def only_error(tmp_path: Path, job: str) -> Any:
    result = load(tmp_path, job)
    assert not result.jobs and len(result.errors) == 1, result.errors
    return result.errors[0]


@pytest.mark.parametrize(("job", "program"), [
    ("    jarURI: /jars/a.jar\n    entryClass: a.Main",
     JarProgram("file:///jars/a.jar", "a.Main")),
    ("    pyFile: /jobs/count.py\n    pyFiles: [/jobs/lib.zip, s3://b/deps/]",
     PythonProgram("file:///jobs/count.py", None, ("file:///jobs/lib.zip", "s3://b/deps/"))),
    ("    pyModule: jobs.count\n    pyFiles: [/jobs/lib.zip]",
     PythonProgram(None, "jobs.count", ("file:///jobs/lib.zip",))),
    ("    sql: |\n      CREATE TABLE t (x INT);\n      INSERT INTO t VALUES (1);",
     SqlProgram("CREATE TABLE t (x INT);\nINSERT INTO t VALUES (1);\n")),
    ("    sqlFile: s3://bucket/jobs/count.sql", SqlProgram(None, "s3://bucket/jobs/count.sql")),
])
def test_each_kind_of_program_is_read_from_its_fields(tmp_path: Path, job: str,
                                                      program: Any) -> None:
    result = load(tmp_path, job)
    assert not result.errors
    assert result.jobs["j"].document.spec.job.program == program


def test_a_relative_program_file_resolves_against_its_yaml_file(tmp_path: Path) -> None:
    result = load(tmp_path, "    pyFile: jobs/count.py\n    pyFiles: [lib/deps.zip]")
    program = result.jobs["j"].document.spec.job.program
    assert program.file == (tmp_path / "jobs" / "count.py").as_uri()
    assert program.path == ((tmp_path / "lib" / "deps.zip").as_uri(),)


@pytest.mark.parametrize(("job", "line", "field", "complaint"), [
    ("    parallelism: 2", 5, "spec.job", "names no program: give jarURI"),
    ("    jarURI: /a.jar\n    pyFile: /a.py", 7, "spec.job.pyFile",
     "already runs a jar program"),
    ("    pyFile: /a.py\n    sql: SELECT 1", 7, "spec.job.sql",
     "already runs a Python program"),
    ("    pyFile: /a.py\n    pyModule: a", 7, "spec.job.pyModule",
     "give one of pyFile or pyModule, not both"),
    ("    sql: INSERT INTO t SELECT 1\n    sqlFile: /a.sql", 7, "spec.job.sqlFile",
     "give one of sql or sqlFile, not both"),
    ("    pyFile: /a.py\n    entryClass: a.Main", 7, "spec.job.entryClass",
     "entryClass applies to a jar; this job runs a Python program"),
    ("    sqlFile: /a.sql\n    jarSHA256: " + "a" * 64, 7, "spec.job.jarSHA256",
     "jarSHA256 applies to a jar; this job runs a SQL program"),
    ("    jarURI: /a.jar\n    pyFiles: [/lib.zip]", 7, "spec.job.pyFiles",
     "pyFiles is the Python path of a Python program; this job runs a jar program"),
    ("    sqlFile: /a.sql\n    args: [--x]", 7, "spec.job.args",
     "a SQL script takes none"),
    ("    pyFile: /jobs/count.txt", 6, "spec.job.pyFile", "names the .py file Flink runs"),
    ("    pyModule: jobs/count", 6, "spec.job.pyModule", "should match pattern"),
    ("    pyFile: ftp://host/a.py", 6, "spec.job.pyFile", "pyFile must be file://"),
    ("    sql: '  '", 6, "spec.job.sql", "sql is empty"),
])
def test_a_wrong_program_is_refused_at_its_line_and_field(tmp_path: Path, job: str, line: int,
                                                          field: str, complaint: str) -> None:
    error = only_error(tmp_path, job)
    assert error.file.endswith("job.yaml") and error.line == line, error
    assert error.field == field and complaint in error.message, error


def test_a_jar_jobs_record_and_hashes_are_as_before_the_other_kinds(tmp_path: Path) -> None:
    """Upgrading flinksched makes no new generation of any jar job."""
    result = load(tmp_path, "    jarURI: /jars/a.jar\n    entryClass: a.Main")
    record = desired_record(result, result.jobs["j"])
    assert record.spec["job"] == {
        "entryClass": "a.Main", "jarURI": "file:///jars/a.jar", "jarSHA256": None,
        "args": [], "parallelism": None, "upgradeMode": "savepoint", "state": "running",
        "allowNonRestoredState": False, "initialSavepointPath": None}
    assert (record.spec_hash, record.submit_hash) == ("2759a618d489e96f", "281b3e200b1a1750")


def distribution(tmp_path: Path, version: str, *opt: str) -> Distribution:
    (tmp_path / "opt").mkdir(parents=True, exist_ok=True)
    for name in opt:
        (tmp_path / "opt" / name).touch()
    return Distribution(tmp_path, FlinkVersion.parse(version))


def test_python_runs_through_the_distributions_python_driver(tmp_path: Path) -> None:
    dist = distribution(tmp_path, "2.3.0", "flink-python-2.3.0.jar", "flink-sql-client-2.3.0.jar")
    program = PythonProgram("file:///jobs/count.py", None, ("file:///jobs/lib.zip", "s3://b/d"))
    run = launchable(program, ("--rate", "5"), lambda: dist, no_files)
    assert run.jar_uri == (tmp_path / "opt" / "flink-python-2.3.0.jar").as_uri()
    assert run.entry_class == "org.apache.flink.client.python.PythonDriver"
    assert run.args == ("-py", "/jobs/count.py", "-pyfs", "/jobs/lib.zip,s3://b/d", "--rate", "5")
    module = launchable(PythonProgram(None, "jobs.count"), (), lambda: dist, no_files)
    assert module.args == ("-pym", "jobs.count")


def test_sql_runs_through_flinks_driver_on_2x_and_flinkscheds_runner_on_1x(
        tmp_path: Path) -> None:
    two = distribution(tmp_path / "2", "2.3.0", "flink-sql-gateway-2.3.0.jar")
    files = {"s3://b/count.sql": "INSERT INTO t SELECT 1;"}
    run = launchable(SqlProgram(None, "s3://b/count.sql"), (), lambda: two, files.__getitem__)
    assert (run.jar_uri, run.entry_class) == (
        (tmp_path / "2" / "opt" / "flink-sql-gateway-2.3.0.jar").as_uri(), SQL_DRIVER)
    assert run.args == ("--script", "INSERT INTO t SELECT 1;"), "the script travels inline"
    one = distribution(tmp_path / "1", "1.20.3", "flinksched-sql-runner.jar")
    run = launchable(SqlProgram("INSERT INTO t SELECT 2;"), (), lambda: one, no_files)
    assert (run.entry_class, run.args) == (SQL_RUNNER, ("--script", "INSERT INTO t SELECT 2;"))


def test_a_distribution_without_the_driver_is_refused_naming_what_is_missing(
        tmp_path: Path) -> None:
    bare = distribution(tmp_path, "1.20.3")
    with pytest.raises(ClusterLaunchFailed, match=r"no jar matching flink-python.* in .*opt"):
        launchable(PythonProgram("file:///a.py"), (), lambda: bare, no_files)
    with pytest.raises(ClusterLaunchFailed, match=r"flinksched-sql-runner\.jar is missing"):
        launchable(SqlProgram("INSERT INTO t SELECT 1"), (), lambda: bare, no_files)


def test_a_jar_job_never_asks_for_a_distribution() -> None:
    def none() -> Distribution:
        raise AssertionError("asked")

    run = launchable(JarProgram("file:///a.jar", "a.Main"), ("x",), none, no_files)
    assert (run.jar_uri, run.entry_class, run.args) == ("file:///a.jar", "a.Main", ("x",))


def test_a_python_functions_failure_is_named_by_the_exception_it_raised() -> None:
    """Flink wraps it in a Java exception whose first line says only that the SDK harness
    sent an error; the status names the Python exception instead."""
    from common.flink.client import _innermost_cause

    trace = ("java.lang.RuntimeException: Error received from SDK harness for instruction 3: "
             "Traceback (most recent call last):\n"
             '  File "/venv/apache_beam/runners/worker/sdk_worker.py", line 311, in _execute\n'
             "    response = task()\n"
             '  File "/jobs/click_counter.py", line 28, in fail_on_marker\n'
             '    raise RuntimeError(f"injected failure: {marker} was present")\n'
             "RuntimeError: injected failure: /tmp/fail-once was present\n"
             "\n\tat org.apache.beam.sdk.util.MoreFutures.get(MoreFutures.java:60)\n"
             "Caused by: java.lang.RuntimeException: Error received from SDK harness\n"
             "\tat org.apache.beam.runners.fnexecution.control.FnApiControlClient.x(F.java:1)\n")
    assert _innermost_cause(trace) == "RuntimeError: injected failure: /tmp/fail-once was present"
    java = "java.lang.IllegalStateException: boom\n\tat a.B.c(B.java:1)\n"
    assert _innermost_cause(java) == "java.lang.IllegalStateException: boom"
