"""Jobs' own clusters on Kubernetes, against kmock's KubernetesEmulator over HTTP: the
objects an attempt's cluster is made of, their ownership, a JobManager that failed, the
teardown, and the verbs used against the launcher's RBAC rules."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from common.errors import ClusterLaunchFailed
from common.flink.jobids import flink_job_id
from common.store.records import JobRecord
from tests.k8s.conftest import ACTION_VERBS, NAMESPACE, Emulator
from worker.clients import FlinkClients
from worker.programs.jars import JarCache, JarError
from worker.targets.application.cluster import ApplicationCluster
from worker.targets.application.kubernetes import (
    RBAC_RULES,
    KubernetesLauncher,
    k8s_memory,
    object_name,
)

IMAGE = "registry.example.com/flink-jobs/counter:2.3.0"
CLUSTER: dict[str, Any] = {
    "metadata": {"name": "own"},
    "spec": {
        "mode": "application", "image": IMAGE, "serviceAccount": "flink",
        "jobManager": {"resource": {"memory": "1g", "cpu": 0.5}},
        "taskManager": {"resource": {"memory": "2048m", "cpu": 2}, "replicas": 2,
                        "podTemplate": {"spec": {"nodeSelector": {"pool": "flink"}}}},
        "podTemplate": {"spec": {
            "volumes": [{"name": "scratch", "emptyDir": {}}],
            "containers": [
                {"name": "flink-main-container",
                 "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]},
                {"name": "log-shipper", "image": "fluent-bit:3"}]}},
        "flinkConfiguration": {"execution.checkpointing.dir": "s3://ckpt/flink"},
    },
}
JOB = "clicks"


def record(cluster: dict[str, Any] = CLUSTER) -> JobRecord:
    spec = {"cluster": "own", "job": {"jarURI": "local:///opt/flink/usrlib/clicks.jar",
                                      "entryClass": "com.example.Clicks", "args": ["--in", "k"],
                                      "parallelism": 4},
            "flinkConfiguration": {"execution.checkpointing.interval": "10s"}}
    return JobRecord(JOB, spec, cluster, 1, "hash", "clicks.yaml")


def objects(api: client.ApiClient) -> dict[str, dict[str, Any]]:
    """Kind/name -> object, as the API serves them."""
    listed: dict[str, Any] = {
        "Job": client.BatchV1Api(api).list_namespaced_job(NAMESPACE).items,
        "Deployment": client.AppsV1Api(api).list_namespaced_deployment(NAMESPACE).items,
        "Service": client.CoreV1Api(api).list_namespaced_service(NAMESPACE).items,
    }
    return {f"{kind}/{item.metadata.name}": api.sanitize_for_serialization(item)
            for kind, items in listed.items() for item in items
            if not item.metadata.name.startswith("flinksched-master")}


def verbs_used(emulator: Emulator, since: int) -> set[tuple[str, str, str]]:
    return {(str(r.resource.group or ""), str(r.resource.plural), ACTION_VERBS[r.action.name])
            for r in emulator.requests()[since:] if r.resource is not None and r.action}


def allowed() -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for rule in RBAC_RULES for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def test_an_attempts_cluster_is_a_jobmanager_job_taskmanagers_and_a_service(
        emulator: Emulator, api: client.ApiClient) -> None:
    before = len(emulator.requests())
    launcher = KubernetesLauncher(api, NAMESPACE)
    job_id = flink_job_id(JOB, 3)
    restore = "s3://ckpt/flink/" + flink_job_id(JOB, 2) + "/chk-17"
    started = launcher.launch(record(), job_id, restore)
    assert launcher.clusters(JOB) == [started.__class__(job_id, started.rest_url, True,
                                                        started.started)]
    assert launcher.clusters("another-job") == []
    assert verbs_used(emulator, before) <= allowed()
    name = object_name(JOB, job_id)
    assert name == f"clicks-{job_id[:6]}-3"
    assert started.rest_url == f"http://{name}.{NAMESPACE}.svc:8081" and started.alive

    found = objects(api)
    assert set(found) == {f"Job/{name}", f"Deployment/{name}-taskmanager", f"Service/{name}"}
    jm = found[f"Job/{name}"]
    assert jm["spec"]["backoffLimit"] == 0, "a JobManager is never restarted in place"
    pod = jm["spec"]["template"]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["serviceAccountName"] == "flink"
    main, shipper = pod["spec"]["containers"]
    assert main["name"] == "flink-main-container" and main["image"] == IMAGE
    assert shipper == {"name": "log-shipper", "image": "fluent-bit:3"}, "the template's kept"
    assert main["volumeMounts"] == [{"name": "scratch", "mountPath": "/scratch"}]
    args = main["args"]
    assert args[:9] == ["standalone-job", "--job-id", job_id, "--jars",
                        "local:///opt/flink/usrlib/clicks.jar", "--job-classname",
                        "com.example.Clicks", "--fromSavepoint", restore]
    assert args[-2:] == ["--in", "k"]
    settings = dict(a[2:].split("=", 1) for a in args if a.startswith("-D"))
    assert settings["jobmanager.rpc.address"] == name
    assert settings["execution.checkpointing.dir"] == "s3://ckpt/flink"
    assert settings["execution.checkpointing.interval"] == "10s"
    assert settings["high-availability.type"] == "NONE"
    assert settings["jobmanager.memory.process.size"] == "1g"
    assert settings["taskmanager.numberOfTaskSlots"] == "2"  # parallelism 4 on 2 TaskManagers
    assert main["resources"] == {"requests": {"cpu": "0.5", "memory": "1Gi"},
                                 "limits": {"memory": "1Gi"}}

    tms = found[f"Deployment/{name}-taskmanager"]
    assert tms["spec"]["replicas"] == 2
    tm_pod = tms["spec"]["template"]["spec"]
    assert tm_pod["nodeSelector"] == {"pool": "flink"}
    assert tm_pod["containers"][0]["args"][0] == "taskmanager"
    assert tm_pod["containers"][0]["resources"]["limits"] == {"memory": "2048Mi"}
    service = found[f"Service/{name}"]
    assert service["spec"]["selector"] == {"flinksched.dev/flink-job-id": job_id,
                                           "app.kubernetes.io/component": "jobmanager"}
    assert pod["metadata"]["labels"].items() >= service["spec"]["selector"].items()
    for owned in (tms, service):  # deleting the Job takes them with it
        [owner] = owned["metadata"]["ownerReferences"]
        assert owner["kind"] == "Job" and owner["name"] == name
        assert owner["uid"] == jm["metadata"]["uid"]



def test_a_failed_jobmanager_fails_its_attempt_and_its_objects_are_deleted(
        emulator: Emulator, api: client.ApiClient) -> None:
    before = len(emulator.requests())
    launcher = KubernetesLauncher(api, NAMESPACE)
    job_id = flink_job_id(JOB, 1)
    launcher.launch(record(), job_id, "")
    used = verbs_used(emulator, before)
    name = object_name(JOB, job_id)
    client.BatchV1Api(api).patch_namespaced_job_status(name, NAMESPACE,
                                                       {"status": {"failed": 1}})
    before = len(emulator.requests())
    [lost] = launcher.clusters(JOB)
    assert lost.job_id == job_id and not lost.alive

    clients = FlinkClients()
    try:
        target = ApplicationCluster(JOB, record(), launcher, clients)
        # A JobManager that ended under its attempt fails it (the restart policy counts it).
        assert target.state(job_id, listable=False, since=0.0) == ("FAILED", False)
        assert "its JobManager exited" in target.root_exception(job_id)
    finally:
        clients.close()
    launcher.tear_down(JOB, job_id)  # nothing left: no error
    assert used | verbs_used(emulator, before) <= allowed()
    assert objects(api) == {}, "the attempt's objects are deleted"


def test_every_verb_the_launcher_may_use_is_in_its_rules() -> None:
    assert allowed() == {("batch", "jobs", "create"), ("batch", "jobs", "delete"),
                         ("batch", "jobs", "list"), ("apps", "deployments", "create"),
                         ("apps", "deployments", "delete"), ("", "services", "create"),
                         ("", "services", "delete")}


def test_a_cluster_without_an_image_is_refused_naming_it(api: client.ApiClient) -> None:
    bare = {"metadata": {"name": "own"}, "spec": {"mode": "application"}}
    with pytest.raises(ClusterLaunchFailed, match="cluster own has no image"):
        KubernetesLauncher(api, NAMESPACE).launch(record(bare), flink_job_id(JOB, 1), "")
    assert objects(api) == {}


@pytest.mark.parametrize(("flink", "kubernetes"), [
    ("1024m", "1024Mi"), ("2g", "2Gi"), ("512 mb", "512Mi"), ("100k", "100Ki"),
    ("4096", "4096")])
def test_flink_memory_sizes_become_kubernetes_quantities(flink: str, kubernetes: str) -> None:
    assert k8s_memory(flink) == kubernetes


def test_a_jar_outside_the_allowed_locations_is_refused_before_any_object(
        api: client.ApiClient, tmp_path: Any) -> None:
    jars = JarCache(tmp_path, ("https://artifacts.example.com/flink/",))
    with pytest.raises(JarError, match="not in an allowed location"):
        KubernetesLauncher(api, NAMESPACE, jars).launch(record(), flink_job_id(JOB, 1), "")
    assert objects(api) == {}


def test_one_listing_serves_every_jobs_look_until_the_launcher_changes_something(
        emulator: Emulator, api: client.ApiClient) -> None:
    """Each supervisor looks at its job's clusters every poll interval: a hundred jobs must
    not be a hundred list requests a second to the API server."""
    launcher = KubernetesLauncher(api, NAMESPACE)
    first = launcher.launch(record(), flink_job_id(JOB, 1), "")

    def lists(since: int) -> int:
        return sum(1 for r in emulator.requests()[since:]
                   if r.action is not None and r.action.name == "LIST")

    before = len(emulator.requests())
    for _ in range(3):
        assert [c.job_id for c in launcher.clusters(JOB)] == [first.job_id]
        assert launcher.clusters("another-job") == []
    assert lists(before) == 1
    launcher.tear_down(JOB, first.job_id)
    assert launcher.clusters(JOB) == [], "its own teardown is seen at once"
