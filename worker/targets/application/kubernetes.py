"""Application clusters on Kubernetes, in Flink's standalone mode (as the Flink Kubernetes
Operator's standalone mode runs them): for each attempt, the JobManager as a batch Job of
one pod that is never restarted in place (`standalone-job` with the attempt's job id and
restore point), its TaskManagers as a Deployment and a Service in front of the JobManager.

The Job owns the Deployment and the Service, so deleting it (the attempt torn down) takes
everything with it; they are deleted by name as well, should the garbage collector lag. A
JobManager pod that exits is never restarted by Kubernetes: restarted, it would run the job
again from the restore point it was started with, older than the newest checkpoint. The
worker sees the Job failed and starts a new attempt from the newest checkpoint instead.
The launcher calls exactly the verbs in RBAC_RULES; the chart's worker Role is checked
against it.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from common.errors import ClusterLaunchFailed, FlinkUnreachable
from common.flink.jobids import attempt_of
from common.spec.models import Resource
from common.spec.programs import JarProgram
from common.store.records import JobRecord
from worker.programs import jar_only, launchable, no_files
from worker.programs.jars import JarCache
from worker.targets.application.cluster import Running
from worker.targets.application.launch import Launch, dynamic, launch_of

logger = logging.getLogger(__name__)

RBAC_RULES: list[dict[str, list[str]]] = [
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "delete", "list"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create", "delete"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["create", "delete"]},
]
JOB_LABEL = "flinksched.dev/job"
JOB_ID_LABEL = "flinksched.dev/flink-job-id"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_LABEL = "app.kubernetes.io/managed-by"
MANAGED = {MANAGED_LABEL: "flinksched"}
LISTING_TTL = 1.0  # seconds one listing of the JobManager Jobs serves every supervisor
CONTAINER = "flink-main-container"  # the name the Operator gives it too
REST_PORT, RPC_PORT, BLOB_PORT = 8081, 6123, 6124
JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def object_name(job: str, job_id: str) -> str:
    """`<job>-<its id's first 6 hex>-<attempt>`: a DNS-1035 label (a Service's name must be
    one), unique per attempt, readable in `kubectl get`."""
    name = f"{job[:36]}-{job_id[:6]}-{attempt_of(job, job_id)}".strip("-")
    return name if name[0].isalpha() else f"f{name}"[:63]


def k8s_memory(flink: str) -> str:
    """Flink's memory size (1024m, 2g, 512 mb) as a Kubernetes quantity (1024Mi, 2Gi)."""
    match = re.fullmatch(r"(?i)\s*([0-9]+)\s*(b|k|kb|m|mb|g|gb|t|tb)?\s*", flink)
    if not match:
        raise ClusterLaunchFailed(f"memory {flink!r} is not a Flink memory size")
    unit = (match.group(2) or "b").lower()[0]
    suffix = {"b": "", "k": "Ki", "m": "Mi", "g": "Gi", "t": "Ti"}[unit]
    return f"{match.group(1)}{suffix}"


def merged(base: Mapping[str, Any] | None, ours: Mapping[str, Any]) -> dict[str, Any]:
    """A pod template with flinksched's fields on top: maps merge key by key, containers by
    name, any other list is flinksched's where it gives one."""
    result: dict[str, Any] = copy.deepcopy(dict(base or {}))
    for key, value in ours.items():
        known = result.get(key)
        if isinstance(value, Mapping) and isinstance(known, Mapping):
            result[key] = merged(known, value)
        elif key in ("containers", "initContainers") and isinstance(known, list):
            by_name = {c.get("name"): c for c in known if isinstance(c, Mapping)}
            mine = [merged(by_name.pop(c.get("name"), {}), c) for c in value]
            result[key] = mine + [c for c in known if c.get("name") in by_name]
        else:
            result[key] = copy.deepcopy(value)
    return result


class KubernetesLauncher:
    startup_grace = 600.0  # scheduling the pods and pulling the image come first

    def __init__(self, api: client.ApiClient, namespace: str,
                 jars: JarCache | None = None) -> None:
        self.jars = jars  # its allow-list (--allowed-jars) holds here too
        self.batch = client.BatchV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self._listing: tuple[float, list[Any]] = (float("-inf"), [])  # (monotonic, items)
        self._listing_lock = threading.Lock()

    # -- finding -------------------------------------------------------------------------
    def _jobmanagers(self) -> list[Any]:
        """Every JobManager Job flinksched made in the namespace, from one list request per
        LISTING_TTL shared by all the worker's supervisors (each polls its job every poll
        interval: a request each would put a hundred jobs' polls on the API server every
        second). A launch or teardown of this worker's makes the next call list again."""
        with self._listing_lock:
            listed_at, items = self._listing
            if time.monotonic() - listed_at <= LISTING_TTL:
                return items
            try:
                listed: Any = self.batch.list_namespaced_job(
                    self.namespace, label_selector=f"{MANAGED_LABEL}={MANAGED[MANAGED_LABEL]},"
                                                   f"{COMPONENT_LABEL}=jobmanager")
            except ApiException as exc:
                raise FlinkUnreachable(f"cannot list the clusters of jobs: {exc.status} "
                                       f"{exc.reason}") from exc
            self._listing = (time.monotonic(), list(listed.items))
            return self._listing[1]

    def _listed_again(self) -> None:
        with self._listing_lock:
            self._listing = (float("-inf"), [])

    def clusters(self, job: str) -> list[Running]:
        found = []
        for item in self._jobmanagers():
            labels = item.metadata.labels or {}
            job_id = str(labels.get(JOB_ID_LABEL, ""))
            if labels.get(JOB_LABEL) != job:
                continue  # not this job's, whatever the selector let through
            if not JOB_ID.match(job_id):
                logger.warning("job %s: Kubernetes Job %s has no usable job id label; ignored",
                               job, item.metadata.name)
                continue
            status = item.status
            ended = bool(status and ((status.failed or 0) > 0 or (status.succeeded or 0) > 0))
            alive = not ended and item.metadata.deletion_timestamp is None
            created = item.metadata.creation_timestamp
            started = created.timestamp() if isinstance(created, datetime) else 0.0
            url = f"http://{item.metadata.name}.{self.namespace}.svc:{REST_PORT}"
            found.append(Running(job_id, url, alive, started))
        return found

    def base_config(self, record: JobRecord) -> dict[str, str]:
        """The image's own configuration is not known here: a job's checkpoint directory is
        the cluster's or the job's flinkConfiguration."""
        return dict(record.cluster_model.flinkConfiguration)

    def last_words(self, job: str, job_id: str) -> str:
        """A pod's log needs more than the Role grants: `kubectl logs` has it."""
        return ""

    # -- starting ------------------------------------------------------------------------
    def launch(self, record: JobRecord, job_id: str, restore_path: str) -> Running:
        spec = record.cluster_model
        if not spec.image:
            raise ClusterLaunchFailed(f"cluster {record.cluster['metadata']['name']} has no "
                                      "image: a Kubernetes application cluster needs one")
        job = record.model.job
        if not isinstance(job.program, JarProgram):
            raise ClusterLaunchFailed(f"a {job.kind} job runs on a session cluster or a local "
                                      "cluster of its own; on Kubernetes its own cluster "
                                      "runs jars only")
        run = launchable(job.program, tuple(job.args), jar_only, no_files)
        if self.jars is not None:  # the image fetches the jar: its content is Flink's to check
            self.jars.check_allowed(run.jar_uri)
        name = object_name(record.name, job_id)
        local = {"jobmanager.rpc.address": name, "rest.port": str(REST_PORT),
                 "jobmanager.rpc.port": str(RPC_PORT), "blob.server.port": str(BLOB_PORT),
                 "taskmanager.rpc.port": "6122"}
        launch = launch_of(record, job_id, restore_path, run.jar_uri, local)
        labels = {**MANAGED, JOB_LABEL: record.name, JOB_ID_LABEL: job_id}
        # The client serialises plain dicts as they are.
        jobmanager: Any = self.jobmanager(name, launch, labels)
        try:
            created: Any = self.batch.create_namespaced_job(self.namespace, jobmanager)
            owner = {"apiVersion": "batch/v1", "kind": "Job", "name": name,
                     "uid": created.metadata.uid, "controller": True,
                     "blockOwnerDeletion": True}
            service: Any = self.service(name, labels, owner)
            self.core.create_namespaced_service(self.namespace, service)
            taskmanagers: Any = self.taskmanagers(name, launch, labels, owner)
            self.apps.create_namespaced_deployment(self.namespace, taskmanagers)
        except ApiException as exc:
            if exc.status == 409:
                raise ClusterLaunchFailed(f"objects named {name} exist already") from exc
            raise ClusterLaunchFailed(f"Kubernetes refused the cluster of {job_id}: "
                                      f"{exc.status} {exc.reason}") from exc
        finally:
            # Whatever came of it, the next look lists it. After the requests, under the
            # listing's lock: a listing asked for before them is never kept after them.
            self._listed_again()
        created_at = created.metadata.creation_timestamp
        started = created_at.timestamp() if isinstance(created_at, datetime) else 0.0
        return Running(job_id, f"http://{name}.{self.namespace}.svc:{REST_PORT}", True, started)

    def _pod(self, launch: Launch, role: str, args: list[str], resource: Resource,
             labels: dict[str, str], template: Mapping[str, Any] | None) -> dict[str, Any]:
        spec = launch.spec
        ports = [{"name": "rest", "containerPort": REST_PORT},
                 {"name": "rpc", "containerPort": RPC_PORT},
                 {"name": "blob", "containerPort": BLOB_PORT}] if role == "jobmanager" else [
                {"name": "rpc", "containerPort": 6122}]
        memory = k8s_memory(resource.memory)
        ours: dict[str, Any] = {
            "metadata": {"labels": {**labels, COMPONENT_LABEL: role}},
            "spec": {
                "containers": [{
                    "name": CONTAINER, "image": spec.image, "args": args, "ports": ports,
                    "resources": {"requests": {"cpu": str(resource.cpu), "memory": memory},
                                  "limits": {"memory": memory}},
                }],
            },
        }
        if spec.serviceAccount:
            ours["spec"]["serviceAccountName"] = spec.serviceAccount
        if role == "jobmanager":
            ours["spec"]["restartPolicy"] = "Never"
        return merged(merged(spec.podTemplate, template or {}), ours)

    def jobmanager(self, name: str, launch: Launch, labels: dict[str, str]) -> dict[str, Any]:
        spec = launch.spec
        pod = self._pod(launch, "jobmanager", ["standalone-job", *launch.jobmanager_args()],
                        spec.jobManager.resource, labels, spec.jobManager.podTemplate)
        return {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": name, "namespace": self.namespace,
                             "labels": {**labels, COMPONENT_LABEL: "jobmanager"}},
                "spec": {"backoffLimit": 0, "template": pod}}

    def taskmanagers(self, name: str, launch: Launch, labels: dict[str, str],
                     owner: dict[str, Any]) -> dict[str, Any]:
        spec = launch.spec
        pod = self._pod(launch, "taskmanager", ["taskmanager", *dynamic(launch.settings)],
                        spec.taskManager.resource, labels, spec.taskManager.podTemplate)
        selector = {JOB_ID_LABEL: launch.job_id, COMPONENT_LABEL: "taskmanager"}
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": f"{name}-taskmanager", "namespace": self.namespace,
                             "labels": {**labels, COMPONENT_LABEL: "taskmanager"},
                             "ownerReferences": [owner]},
                "spec": {"replicas": launch.taskmanagers,
                         "selector": {"matchLabels": selector}, "template": pod}}

    def service(self, name: str, labels: dict[str, str],
                owner: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": self.namespace,
                             "labels": {**labels, COMPONENT_LABEL: "jobmanager"},
                             "ownerReferences": [owner]},
                "spec": {"selector": {JOB_ID_LABEL: labels[JOB_ID_LABEL],
                                      COMPONENT_LABEL: "jobmanager"},
                         "ports": [{"name": "rest", "port": REST_PORT},
                                   {"name": "rpc", "port": RPC_PORT},
                                   {"name": "blob", "port": BLOB_PORT}]}}

    # -- tearing down --------------------------------------------------------------------
    def tear_down(self, job: str, job_id: str) -> None:
        """Delete the attempt's Job (its pods and, through their ownerReference, the rest
        with it), and the Deployment and Service by name, should collection lag."""
        name = object_name(job, job_id)
        background = client.V1DeleteOptions(propagation_policy="Background")
        try:
            for delete, what in ((self.batch.delete_namespaced_job, name),
                                 (self.apps.delete_namespaced_deployment, f"{name}-taskmanager"),
                                 (self.core.delete_namespaced_service, name)):
                try:
                    delete(what, self.namespace, body=background)
                except ApiException as exc:
                    if exc.status != 404:
                        raise FlinkUnreachable(f"cannot delete {what}: {exc.status} "
                                               f"{exc.reason}") from exc
        finally:
            self._listed_again()
