"""Security on the real stack: Flink's REST API behind TLS with a private CA and bearer or
basic credentials read from a file or the environment; no secret value in ZooKeeper, events
or logs; and the jar allow-list."""

from __future__ import annotations

import base64
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kazoo.client import KazooClient

from common.store.records import JobStatus
from common.store.zookeeper import Store
from tests.stack import ControlPlane
from tests.tlsproxy import TlsAuthProxy
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


def every_node(zk: KazooClient, path: str) -> Iterator[tuple[str, bytes]]:
    data, _ = zk.get(path)
    yield path, data or b""
    for child in zk.get_children(path):
        yield from every_node(zk, f"{path}/{child}")


def test_tls_and_credentials_reach_flink_and_no_secret_is_written_anywhere(
    control: ControlPlane, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, password = f"tok-{uuid.uuid4().hex}", f"pw-{uuid.uuid4().hex}"
    (tmp_path / "token").write_text(token + "\n")
    monkeypatch.setenv("FLINK_TEST_PASSWORD", password)
    basic = base64.b64encode(f"flinksched:{password}".encode()).decode()
    bearer_proxy = TlsAuthProxy(control.cluster.rest_url, tmp_path / "bearer-ca",
                                f"Bearer {token}")
    basic_proxy = TlsAuthProxy(control.cluster.rest_url, tmp_path / "basic-ca", f"Basic {basic}")
    allowed_dir = control.cluster.example_jar.parent
    monkeypatch.setenv("FLINKSCHED_ALLOWED_JARS", f"{allowed_dir},https://repo.example/jars/")
    outside = tmp_path / "elsewhere" / "app.jar"
    outside.parent.mkdir()
    shutil.copy(control.cluster.example_jar, outside)
    try:
        clusters = [
            {"apiVersion": "flinksched/v1", "kind": "FlinkCluster",
             "metadata": {"name": "bearer"},
             "spec": {"restUrl": bearer_proxy.url, "tls": {"caFile": str(bearer_proxy.ca_file)},
                      "auth": {"bearer": {"file": str(tmp_path / "token")}}}},
            {"apiVersion": "flinksched/v1", "kind": "FlinkCluster",
             "metadata": {"name": "basic"},
             "spec": {"restUrl": basic_proxy.url, "tls": {"caFile": str(basic_proxy.ca_file)},
                      "auth": {"basic": {"username": "flinksched",
                                         "password": {"env": "FLINK_TEST_PASSWORD"}}}}},
        ]
        (control.config_dir / "clusters.yaml").write_text(yaml.safe_dump_all(clusters))
        control.write_job("via-bearer", cluster="bearer")
        control.write_job("via-basic", cluster="basic")
        control.write_job("outside-jar", cluster="basic")
        job_file = control.config_dir / "outside-jar.yaml"
        job_file.write_text(job_file.read_text().replace(str(control.cluster.example_jar),
                                                         str(outside)))
        control.start_master()
        control.start_worker(slots=3)

        def running(name: str) -> bool:
            return store.status(name)[0].phase == "Running"

        wait_until(lambda: running("via-bearer") and running("via-basic"), 120,
                   "both jobs Running through their TLS proxies")
        def submit_failed() -> JobStatus | None:
            status = store.status("outside-jar")[0]
            return status if status.phase == "SubmitFailed" else None

        refused = wait_until(submit_failed, 60, "outside-jar refused")
        assert f"jar {outside.as_uri()} is not in an allowed location" in refused.reason or \
            f"jar {outside} is not in an allowed location" in refused.reason, refused.reason
        assert bearer_proxy.forwarded > 0 and basic_proxy.forwarded > 0
        assert bearer_proxy.refused == 0 and basic_proxy.refused == 0

        secrets = (token, password, basic)
        for path, data in every_node(store.zk, control.root):
            for secret in secrets:
                assert secret.encode() not in data, f"a secret in ZooKeeper node {path}"
        for log in control.workdir.glob("*.log"):
            text = log.read_text(errors="replace")
            for secret in secrets:
                assert secret not in text, f"a secret in {log.name}"
        assert store.events("via-bearer"), "no events were written to scan"
    finally:
        bearer_proxy.close()
        basic_proxy.close()
