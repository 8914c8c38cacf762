"""kmock's KubernetesEmulator over real HTTP, and a kubernetes client pointed at it, holding
the master Deployment the workers' ownerReference names."""

from __future__ import annotations

import asyncio
import copy
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import kmock
import pytest
from kubernetes import client

NAMESPACE = "flink"
MASTER_DEPLOYMENT = "flinksched-master"
ACTION_VERBS = {"LIST": "list", "WATCH": "watch", "FETCH": "get", "CREATE": "create",
                "DELETE": "delete", "UPDATE": "update", "PATCH": "patch"}


SERVER_SET = ("uid", "creationTimestamp")  # what an API server adds to every object it creates


class ApiServerEmulator(kmock.KubernetesEmulator):
    """The emulator, adding on each create what a real API server adds: a uid (an
    ownerReference names its owner's) and the creation time."""

    async def _handle(self, request: Any) -> Any:
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            metadata = request.data.setdefault("metadata", {})
            metadata.setdefault("uid", str(uuid.uuid4()))
            metadata.setdefault("creationTimestamp",
                                datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        return await super()._handle(request)


class Emulator:
    """KubernetesEmulator on a loopback port, driven from its own event loop thread."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "the emulator did not start"

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self.loop.run_until_complete(self._serve())
        self.loop.close()

    async def _serve(self) -> None:
        async with ApiServerEmulator() as emulator, kmock.Server(emulator) as server:
            declared: Any = {"namespaced": True}
            emulator.resources["v1/pods"] = declared
            emulator.resources["apps/v1/deployments"] = declared
            emulator.resources["batch/v1/jobs"] = declared  # jobs' own clusters
            emulator.resources["v1/services"] = declared
            self.handler = emulator
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def requests(self) -> list[Any]:
        return list(self.handler._requests)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    served = Emulator()
    try:
        yield served
    finally:
        served.close()


@pytest.fixture
def api(emulator: Emulator) -> Iterator[client.ApiClient]:
    configuration = client.Configuration()
    configuration.host = emulator.url
    api_client = client.ApiClient(configuration)
    master_deployment(api_client)
    try:
        yield api_client
    finally:
        api_client.close()


def master_deployment(api: client.ApiClient, name: str = MASTER_DEPLOYMENT) -> None:
    """The Deployment the workers' ownerReference points at, as the chart creates it."""
    deployment: Any = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": "uid-123"},
        "spec": {"selector": {"matchLabels": {"app": "flinksched"}},
                 "template": {"metadata": {"labels": {"app": "flinksched"}},
                              "spec": {"containers": [{"name": "master", "image": "x"}]}}}}
    client.AppsV1Api(api).create_namespaced_deployment(NAMESPACE, deployment)


def pods(api: client.ApiClient) -> dict[str, Any]:
    listed = client.CoreV1Api(api).list_namespaced_pod(NAMESPACE)
    items: list[Any] = listed.items
    return {str(p.metadata.name): without_server_fields(api.sanitize_for_serialization(p))
            for p in items}


def without_server_fields(document: dict[str, Any]) -> dict[str, Any]:
    for field in SERVER_SET:
        document.get("metadata", {}).pop(field, None)
    return document




def expected_pod(template: dict[str, Any], name: str, pool: str, owner: str) -> dict[str, Any]:
    """The template plus exactly the per-worker fields the runtime adds."""
    expected = copy.deepcopy(template)
    expected["metadata"].update(
        name=name, namespace=NAMESPACE,
        labels={**template["metadata"]["labels"], "flinksched.dev/pool": pool,
                "app.kubernetes.io/component": "worker"},
        ownerReferences=[{"apiVersion": "apps/v1", "kind": "Deployment", "name": owner,
                          "uid": "uid-123", "controller": False, "blockOwnerDeletion": False}])
    return {"apiVersion": "v1", "kind": "Pod", **expected}
