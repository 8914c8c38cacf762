"""A corpus of bad input, and a fuzzer: whatever is in a config file, the loader answers with
errors that name the file (and line where there is one), never with a crash, and a good
file beside a bad one still loads."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.spec.configdir import load_config_paths
from tests.unit.configtexts import CLUSTER

GOOD = """\
apiVersion: flinksched/v1
kind: FlinkJob
metadata: {name: good}
spec:
  job: {jarURI: /jars/app.jar}
"""

JOB = """\
apiVersion: flinksched/v1
kind: FlinkJob
metadata: {name: %(name)s}
spec:
  job: {jarURI: %(jar)s, parallelism: %(parallelism)s}
  savepoints: {schedule: "%(schedule)s"}
"""


def job(name: str = "bad", jar: str = "/jars/app.jar", parallelism: object = 1,
        schedule: str = "6h") -> str:
    return JOB % {"name": name, "jar": jar, "parallelism": parallelism, "schedule": schedule}


CORPUS: dict[str, bytes] = {
    "binary junk": bytes(range(256)) * 4,
    "NUL bytes in text": b"kind: FlinkJob\x00\x00\nmetadata: {}\n",
    "invalid UTF-8": b"kind: FlinkJob\nmetadata: {name: \xff\xfe}\n",
    "deeply nested": b"[" * 5000 + b"]" * 5000,
    "deeply nested mapping": b"a: " * 3000 + b"1\n",
    "huge": b"# " + b"x" * (8 * 1024 * 1024) + b"\nkind: Nonsense\n",
    "alias bomb": b"a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                  b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                  b"e: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
    "a list, not a document": b"- 1\n- 2\n",
    "a scalar document": b"just words\n",
    "unknown kind": b"apiVersion: flinksched/v1\nkind: FlinkDeployment\nmetadata: {name: x}\n",
    "wrong apiVersion": GOOD.replace("flinksched/v1", "flinksched/v9")
                            .replace("name: good", "name: other").encode(),
    "wrong type": job(parallelism='"many"').encode(),
    "negative parallelism": job(parallelism=-3).encode(),
    "boolean parallelism": job(parallelism="true").encode(),
    "bad cron": job(schedule="61 * * * *").encode(),
    "cron with too few fields": job(schedule="* *").encode(),
    "bad jar scheme": job(jar="ftp://example.com/app.jar").encode(),
    "jar URI with spaces only": job(jar='"   "').encode(),
    "bad job name": job(name="Not_A_DNS_Label").encode(),
    "missing spec": b"apiVersion: flinksched/v1\nkind: FlinkJob\nmetadata: {name: x}\n",
    "cluster without scheme": CLUSTER.replace("http://", "").encode(),
    "tabs for indentation": b"apiVersion: flinksched/v1\nkind: FlinkJob\nmetadata:\n\tname: x\n",
    "duplicate keys": GOOD.replace("kind: FlinkJob\n", "kind: FlinkJob\nkind: FlinkJob\n")
                      .replace("name: good", "name: dup").encode(),
    "auth with a value instead of a reference":
        (CLUSTER.rstrip("\n") + "\n  auth: {bearer: {token: s3cret}}\n")
        .replace("name: default", "name: other").encode(),
    "auth naming two sources": (CLUSTER.rstrip("\n") + "\n  auth: {bearer: {file: /t, env: T}}\n")
                               .replace("name: default", "name: other").encode(),
}


@pytest.mark.parametrize("kind", sorted(CORPUS))
def test_bad_file_is_an_error_naming_it_and_spares_the_good_one(kind: str,
                                                                tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    (tmp_path / "good.yaml").write_text(GOOD)
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(CORPUS[kind])
    config = load_config_paths([tmp_path])
    assert "good" in config.jobs, f"{kind}: the good job was lost"
    assert config.errors, f"{kind}: accepted"
    for error in config.errors:
        assert error.file == str(bad), f"{kind}: error not about the bad file: {error}"
        assert error.message.strip(), f"{kind}: an empty message"


def test_ten_thousand_jobs_in_one_file_all_load(tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    documents = [job(name=f"job-{n:05d}") for n in range(10_000)]
    (tmp_path / "many.yaml").write_text("---\n".join(documents))
    config = load_config_paths([tmp_path])
    assert config.errors == []
    assert len(config.jobs) == 10_000
    assert config.jobs["job-09999"].source.endswith("many.yaml:69994")


def test_a_problem_in_a_file_over_a_mebibyte_is_named_at_its_document(tmp_path: Path) -> None:
    """Bigger files are not parsed again to locate a field (that parser takes minutes over
    megabytes): the problem is named with its field, at its document's first line, and the
    other jobs of the file load."""
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    documents = [job(name=f"job-{n:05d}") for n in range(10_000)]
    documents[9_999] = job(name="job-09999", parallelism=-3)
    (tmp_path / "many.yaml").write_text("---\n".join(documents))
    config = load_config_paths([tmp_path])
    [error] = config.errors
    assert (error.field, error.line, error.job) == ("spec.job.parallelism", 69994, "job-09999")
    assert len(config.jobs) == 9_999


YAML_TEXT = st.text(alphabet=string.printable + "äß€\u2028", max_size=400)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=20))
TREES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["apiVersion", "kind", "metadata", "spec", "job", "name",
                                     "jarURI", "parallelism", "restUrl", "x"]),
                    inner, max_size=5)), max_leaves=20)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=YAML_TEXT)
def test_fuzzed_text_never_crashes_the_loader(text: str, tmp_path: Path) -> None:
    (tmp_path / "fuzz.yaml").write_text(text)
    config = load_config_paths([tmp_path])
    for error in config.errors:
        assert error.file.endswith("fuzz.yaml") and error.message


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=st.fixed_dictionaries({"apiVersion": st.just("flinksched/v1"),
                                   "kind": st.sampled_from(["FlinkJob", "FlinkCluster"]),
                                   "metadata": TREES, "spec": TREES}))
def test_fuzzed_documents_never_crash_the_loader(tree: dict[str, object],
                                                 tmp_path: Path) -> None:
    import json

    (tmp_path / "fuzz.yaml").write_text(json.dumps(tree))  # JSON is YAML
    config = load_config_paths([tmp_path])
    for error in config.errors:
        assert error.file.endswith("fuzz.yaml") and error.message
