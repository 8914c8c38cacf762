from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from common.spec.configdir import ConfigLoader, load_config_paths, plain_data
from common.spec.models import FlinkJob
from tests.unit.configtexts import CLUSTER, JOB_HEAD

JOB = JOB_HEAD + """\
    jarURI: jobs/app.jar
    parallelism: 2
  restartPolicy:
    window: 10m
"""


def test_example_configs_are_valid() -> None:
    config = load_config_paths([Path(__file__).resolve().parents[2] / "configs"])
    assert config.errors == []
    assert sorted(config.jobs) == ["python-click-counter", "sql-clicks-per-user",
                                   "stateful-counter", "stateful-counter-own"]
    assert list(config.clusters) == ["default", "own"]


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


BAD = """\
apiVersion: flinksched/v1
kind: FlinkJob
metadata:
  name: %s
spec:
  job:
    jarURI: app.jar
"""

# file name -> content; then every message `validate` prints, exactly.
BAD_FILES: list[tuple[str, dict[str, str], list[str]]] = [
    ("syntax error", {"a.yaml": "kind: FlinkJob\nmetadata: {name: x\n"},
     ["a.yaml:3:1: YAML syntax error: expected ',' or '}', but got '<stream end>'"]),
    ("wrong type", {"a.yaml": BAD % "a" + "    parallelism: two\n"},
     ["a.yaml:8:5: spec.job.parallelism: Input should be a valid integer (got 'two')"]),
    ("unknown field", {"a.yaml": BAD % "a" + "  restartPolicy:\n    maxRestart: 3\n"},
     ["a.yaml:9:5: spec.restartPolicy.maxRestart: unknown field "
      "(did you mean 'maxRestarts'?)"]),
    ("bad duration", {"a.yaml": BAD % "a" + "  pollInterval: 1 second\n"},
     ["a.yaml:8:3: spec.pollInterval: expected a duration like 500ms, 10s, 5m or 1h, "
      "got '1 second'"]),
    ("bad cron", {"a.yaml": BAD % "a" + "  savepoints:\n    schedule: '0 25 * * *'\n"},
     ["a.yaml:9:5: spec.savepoints.schedule: bad cron expression '0 25 * * *': Error "
      "validating expression '25': the last value (25) is higher than the maximum value (23)"]),
    ("bad name", {"a.yaml": BAD % "Clicks_V2"},
     ["a.yaml:4:3: metadata.name: 'Clicks_V2' is not a DNS-1123 label: at most 63 lowercase "
      "letters, digits and '-', starting and ending with a letter or digit"]),
    ("bad jar scheme", {"a.yaml": (BAD % "a").replace("app.jar", "ftp://bucket/app.jar")},
     ["a.yaml:7:5: spec.job.jarURI: jarURI must be file://, http(s)://, object storage "
      "(s3://, gs://, az://), local:// (in an application cluster's image) or a path, got "
      "'ftp://bucket/app.jar'"]),
    ("local jar on a session cluster",
     {"a.yaml": (BAD % "a").replace("app.jar", "local:///opt/flink/usrlib/app.jar")},
     ["a.yaml:7:5: spec.job.jarURI: job 'a' runs on session cluster 'default': local:// names "
      "a path in an application cluster's image; a session cluster needs file://, http(s)://, "
      "object storage (s3://, gs://, az://) or a path"]),
    ("duplicate name", {"a.yaml": BAD % "twin", "b.yaml": BAD % "twin"},
     ["b.yaml:4:3: metadata.name: duplicate FlinkJob name 'twin': also defined at a.yaml:1"]),
    ("missing cluster", {"a.yaml": BAD % "a" + "  cluster: staging\n"},
     ["a.yaml:8:3: spec.cluster: job 'a' names FlinkCluster 'staging', which no file defines "
      "(defined: default)"]),
    ("empty file", {"a.yaml": "# nothing here yet\n"},
     ["a.yaml:1:1: file is empty: expected FlinkJob or FlinkCluster documents"]),
    ("unknown kind", {"a.yaml": (BAD % "a").replace("FlinkJob", "FlinkJobs")},
     ["a.yaml:2:1: kind: unknown kind 'FlinkJobs'; expected one of FlinkJob, FlinkCluster "
      "(did you mean 'FlinkJob'?)"]),
    ("not a mapping", {"a.yaml": "- just\n- a list\n"},
     ["a.yaml: a document must be a mapping"]),
    ("several documents, one bad",
     {"a.yaml": BAD % "good" + "---\n" + BAD % "bad" + "    args: oops\n"},
     ["a.yaml:16:5: spec.job.args: Input should be a valid list (got 'oops')"]),
]


@pytest.mark.parametrize(("files", "expected"), [(f, e) for _, f, e in BAD_FILES],
                         ids=[case for case, _, _ in BAD_FILES])
def test_bad_files_give_exact_located_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], expected: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("cluster.yaml").write_text(CLUSTER)
    for name, text in files.items():
        Path(name).write_text(text)
    config = load_config_paths([Path(".")])
    assert [str(e).removeprefix("./") for e in config.errors] == expected


def test_several_documents_with_one_bad_keep_the_good_one_and_hold_the_bad(
    tmp_path: Path,
) -> None:
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    (tmp_path / "a.yaml").write_text(BAD % "good" + "---\n" + BAD % "bad" + "    args: oops\n")
    config = load_config_paths([tmp_path])
    assert list(config.jobs) == ["good"]
    assert config.invalid_jobs == {"bad"} and config.broken_files == set()


def test_an_unreadable_file_is_broken_so_its_jobs_are_held(tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    (tmp_path / "a.yaml").write_bytes(b"\xff\xfe\x00binary")
    config = load_config_paths([tmp_path])
    assert config.broken_files == {str(tmp_path / "a.yaml")}
    assert config.errors[0].message.startswith("cannot read file")


def test_yaml_12_scalars_read_alike_on_the_fast_and_the_located_path(tmp_path: Path) -> None:
    """`on`, `no` and `010` are YAML 1.1 booleans and octal; flinksched reads YAML 1.2."""
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    text = BAD % "a" + "    args: [on, no]\n    parallelism: 010\n" \
        "  flinkConfiguration: {pipeline.object-reuse: yes}\n"
    (tmp_path / "a.yaml").write_text(text)
    fast = load_config_paths([tmp_path]).jobs["a"].document
    (tmp_path / "a.yaml").write_text(text + "  unknownField: 1\n")  # forces the located path
    assert load_config_paths([tmp_path]).errors[0].field == "spec.unknownField"
    for job in (fast, FlinkJob.model_validate(plain_data(YAML(typ="rt").load(text)))):
        assert isinstance(job, FlinkJob)
        assert job.spec.job.args == ["on", "no"] and job.spec.job.parallelism == 10
        assert job.spec.flinkConfiguration == {"pipeline.object-reuse": "yes"}


def test_unchanged_files_are_not_parsed_again(tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    for n in range(3):
        (tmp_path / f"job-{n}.yaml").write_text(BAD % f"job-{n}")
    loader = ConfigLoader()
    assert len(loader.load([tmp_path]).jobs) == 3 and loader.parsed == 4
    (tmp_path / "job-1.yaml").write_text(BAD % "job-1" + "    parallelism: 3\n")
    config = loader.load([tmp_path])
    assert loader.parsed == 1
    job = config.jobs["job-1"].document
    assert isinstance(job, FlinkJob) and job.spec.job.parallelism == 3
