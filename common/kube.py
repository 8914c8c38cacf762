"""The one way flinksched reaches a Kubernetes API server: the master's worker pods and a
worker's jobs' own clusters alike."""

from __future__ import annotations

from kubernetes import client, config


def api_client() -> client.ApiClient:
    """In a Pod, its service account; elsewhere, the kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()
