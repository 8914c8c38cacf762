from __future__ import annotations

from pathlib import Path

from common.configdir import load_config_paths

CLUSTER = """\
apiVersion: flinksched/v1
kind: FlinkCluster
metadata: {name: default}
spec: {restUrl: "http://localhost:8081"}
"""

JOB = """\
apiVersion: flinksched/v1
kind: FlinkJob
metadata: {name: %s}
spec:
  job:
    jarURI: jobs/app.jar
    parallelism: 2
  restartPolicy:
    window: 10m
"""


def test_example_configs_are_valid() -> None:
    config = load_config_paths([Path(__file__).resolve().parents[2] / "configs"])
    assert config.errors == []
    assert list(config.jobs) == ["stateful-counter"] and list(config.clusters) == ["default"]


def test_relative_jar_resolves_against_the_file_and_durations_parse(tmp_path: Path) -> None:
    (tmp_path / "all.yaml").write_text(CLUSTER + "---\n" + JOB % "app")
    config = load_config_paths([tmp_path])
    assert config.errors == []
    job = config.jobs["app"].document
    assert job.spec.job.jarURI == (tmp_path / "jobs" / "app.jar").as_uri()  # type: ignore[union-attr]
    assert job.spec.restartPolicy.window == 600.0  # type: ignore[union-attr]


def test_a_bad_file_is_located_and_does_not_hide_good_ones(tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    (tmp_path / "good.yaml").write_text(JOB % "good")
    (tmp_path / "bad.yaml").write_text((JOB % "bad").replace("parallelism", "paralelism"))
    config = load_config_paths([tmp_path])
    assert list(config.jobs) == ["good"]
    [error] = config.errors
    assert str(error) == (
        f"{tmp_path / 'bad.yaml'}:7:5: spec.job.paralelism: unknown field "
        "(did you mean 'parallelism'?)"
    )


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("kind: FlinkJob\nmetadata: {name: x\n")
    [error] = load_config_paths([tmp_path]).errors
    assert error.file.endswith("broken.yaml") and error.line == 3
    assert "YAML syntax error" in error.message


def test_job_naming_a_missing_cluster_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(JOB % "orphan")
    config = load_config_paths([tmp_path])
    assert config.jobs == {}
    assert "names FlinkCluster 'default', which no file defines" in str(config.errors[0])
