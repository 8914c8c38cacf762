"""The kubernetes runtime: the leading master creates and deletes worker Pods.

Every pod is the pod template (the chart's ConfigMap, the single source of the worker's
shape) plus the per-worker fields: name, namespace, pool labels and an ownerReference to
the master's Deployment. The worker takes its id from its own pod name (downward API).
The runtime calls exactly the verbs in RBAC_RULES; the chart's Role is checked against it.
"""

from __future__ import annotations

import copy
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from common.errors import FlinkschedError
from common.store.records import WorkerInfo

logger = logging.getLogger(__name__)

RBAC_RULES: list[dict[str, list[str]]] = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete", "list", "watch"]},
    # An ownerReference needs the owner's uid; the Role names the one Deployment it may read.
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
]
POOL_LABEL = "flinksched.dev/pool"
COMPONENT_LABEL = "app.kubernetes.io/component"
FINISHED_PHASES = ("Failed", "Succeeded")


class KubernetesRuntimeError(FlinkschedError):
    """The Kubernetes API refused what the runtime needs."""


class KubernetesRuntime:
    name = "kubernetes"

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        template: Mapping[str, Any],
        pool: str,
        owner_deployment: str | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.namespace = namespace
        self.template = dict(template)
        self.pool = pool
        self.selector = f"{POOL_LABEL}={pool},{COMPONENT_LABEL}=worker"
        self.owner = self._owner_reference(owner_deployment) if owner_deployment else None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        if on_change is not None:
            self._watcher = threading.Thread(target=self._watch, args=(on_change,), daemon=True,
                                             name="pod-watch")
            self._watcher.start()

    def _owner_reference(self, deployment: str) -> dict[str, Any]:
        try:
            found: Any = self.apps.read_namespaced_deployment(deployment, self.namespace)
        except ApiException as exc:
            raise KubernetesRuntimeError(
                f"cannot read Deployment {self.namespace}/{deployment} for the workers' "
                f"ownerReference: {exc.status} {exc.reason}") from exc
        return {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment,
                "uid": found.metadata.uid, "controller": False, "blockOwnerDeletion": False}

    def pod_for(self, name: str) -> dict[str, Any]:
        """The template plus this worker's fields, as the API receives it."""
        pod = copy.deepcopy(self.template)
        metadata = pod.setdefault("metadata", {})
        metadata["name"] = name
        metadata["namespace"] = self.namespace
        metadata["labels"] = {**metadata.get("labels", {}), POOL_LABEL: self.pool,
                              COMPONENT_LABEL: "worker"}
        if self.owner:
            metadata["ownerReferences"] = [self.owner]
        return {"apiVersion": "v1", "kind": "Pod", **pod}

    def reconcile(
        self, wanted: int, workers: Mapping[str, WorkerInfo], busy: set[str]
    ) -> str:
        listed: Any = self.core.list_namespaced_pod(self.namespace, label_selector=self.selector)
        live: list[Any] = []
        finished: list[Any] = []
        pods: list[Any] = listed.items
        for pod in pods:
            if pod.metadata.deletion_timestamp:
                continue
            phase = pod.status.phase if pod.status else None
            (finished if phase in FINISHED_PHASES else live).append(pod)
        actions = []
        for pod in finished:  # a crashed worker pod is replaced, not restarted in place
            self._delete(pod.metadata.name)
            actions.append(f"deleted {pod.status.phase} pod {pod.metadata.name}")
        for _ in range(wanted - len(live)):
            name = f"{self.pool}-worker-{uuid.uuid4().hex[:8]}"
            body: Any = self.pod_for(name)  # the client serialises plain dicts as they are
            self.core.create_namespaced_pod(self.namespace, body)
            actions.append(f"created pod {name}")
        if len(live) > wanted:
            idle = [p for p in live if p.metadata.name not in busy]
            idle.sort(key=lambda p: p.metadata.creation_timestamp or datetime.min, reverse=True)
            for pod in idle[: len(live) - wanted]:
                self._delete(pod.metadata.name)
                actions.append(f"deleted surplus pod {pod.metadata.name}")
        return ", ".join(actions)

    def _delete(self, name: str) -> None:
        try:
            self.core.delete_namespaced_pod(name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _watch(self, on_change: Callable[[], None]) -> None:
        """Wake the pool cycle when a worker pod changes, instead of waiting for its tick."""
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for _ in stream.stream(self.core.list_namespaced_pod, self.namespace,
                                       label_selector=self.selector, timeout_seconds=30):
                    on_change()
                    if self._stop.is_set():
                        break
            except Exception as exc:  # the watch is an optimisation; the tick still runs
                logger.debug("pod watch interrupted: %r", exc)
                self._stop.wait(2.0)
            finally:
                stream.stop()

    def close(self) -> None:
        self._stop.set()
