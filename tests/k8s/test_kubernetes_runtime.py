"""The kubernetes runtime against kmock's KubernetesEmulator, served over real HTTP."""

from __future__ import annotations

import threading
from typing import Any

from kubernetes import client

from common.store.records import WorkerInfo
from scheduler.master.pool.kubernetes import RBAC_RULES, KubernetesRuntime
from tests.k8s.conftest import ACTION_VERBS, NAMESPACE, Emulator, expected_pod, pods
from tests.waiting import wait_until

TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app.kubernetes.io/name": "flinksched"},
                 "annotations": {"example.com/team": "platform"}},
    "spec": {
        "serviceAccountName": "flinksched-worker",
        "containers": [{
            "name": "worker",
            "image": "flinksched:0.1.0",
            "args": ["--zk", "zk:2181", "worker"],
            "env": [{"name": "FLINKSCHED_WORKER_ID",
                     "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        }],
        "nodeSelector": {"pool": "workers"},
    },
}
def verbs_used(requests: list[Any]) -> set[tuple[str, str]]:
    return {(str(r.resource.plural), ACTION_VERBS[r.action.name]) for r in requests
            if r.resource is not None and r.action is not None}


def allowed() -> set[tuple[str, str]]:
    return {(resource, verb) for rule in RBAC_RULES for resource in rule["resources"]
            for verb in rule["verbs"]}


def test_pods_are_the_template_plus_the_per_worker_fields(
    emulator: Emulator, api: client.ApiClient
) -> None:
    before = len(emulator.requests())
    runtime = KubernetesRuntime(api, NAMESPACE, TEMPLATE, "prod", "flinksched-master")
    assert runtime.reconcile(3, {}, set()).count("created pod") == 3

    created = pods(api)
    assert len(created) == 3
    for name, pod in created.items():
        assert pod == expected_pod(TEMPLATE, name, "prod", "flinksched-master")
        assert name.startswith("prod-worker-")
    assert verbs_used(emulator.requests()[before:]) <= allowed()


def test_deleted_and_crashed_pods_are_replaced_and_surplus_idle_ones_removed(
    emulator: Emulator, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    before = len(emulator.requests())
    runtime = KubernetesRuntime(api, NAMESPACE, TEMPLATE, "prod")
    runtime.reconcile(3, {}, set())
    runtime_requests = emulator.requests()[before:]
    first, second, third = sorted(pods(api))

    core.delete_namespaced_pod(first, NAMESPACE)  # evicted by someone else
    core.patch_namespaced_pod_status(second, NAMESPACE, {"status": {"phase": "Failed"}})
    mark = len(emulator.requests())
    message = runtime.reconcile(3, {}, set())
    assert f"deleted Failed pod {second}" in message
    assert message.count("created pod") == 2
    assert third in pods(api) and first not in pods(api) and second not in pods(api)
    assert len(pods(api)) == 3

    busy = set(list(pods(api))[:2])
    workers = {name: WorkerInfo(name, name, 1, 1, "dev", 0.0) for name in pods(api)}
    runtime_requests += emulator.requests()[mark:]
    mark = len(emulator.requests())
    message = runtime.reconcile(1, workers, busy)
    assert set(pods(api)) == busy, "only idle pods are removed, never a busy one"
    assert message.count("deleted surplus pod") == 1
    runtime_requests += emulator.requests()[mark:]
    assert verbs_used(runtime_requests) <= allowed()


def test_a_pod_change_wakes_the_pool(emulator: Emulator, api: client.ApiClient) -> None:
    woken = threading.Event()
    runtime = KubernetesRuntime(api, NAMESPACE, TEMPLATE, "prod", on_change=woken.set)
    try:
        runtime.reconcile(1, {}, set())
        wait_until(woken.is_set, 10, "the pod watch to report the new pod")
        assert ("pods", "watch") in verbs_used(emulator.requests())
    finally:
        runtime.close()
        for name in pods(api):  # one more event lets the watch see that it was closed
            client.CoreV1Api(api).delete_namespaced_pod(name, NAMESPACE)


def test_every_verb_the_runtime_may_use_is_in_its_rules() -> None:
    assert allowed() == {("pods", "create"), ("pods", "delete"), ("pods", "list"),
                         ("pods", "watch"), ("deployments", "get")}
