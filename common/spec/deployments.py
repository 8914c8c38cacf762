"""The kinds of FlinkCluster, and what each means for the rest of flinksched: one entry per
kind (`DEPLOYMENTS`), read by the spec's validation, the config sync, the worker's targets
and the CLI. A new kind is one entry here, its targets in `worker.targets`, and how
`describe` shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Deployment(StrEnum):
    """Where the jobs of a FlinkCluster run: on the shared session cluster it names, or on a
    cluster of each job's own for each attempt (application mode)."""

    SESSION = "session"
    APPLICATION = "application"


@dataclass(frozen=True)
class DeploymentRules:
    """What a deployment kind means for the rest of flinksched: one entry per kind."""

    fields: tuple[str, ...]  # FlinkCluster fields that belong to this kind alone
    required: tuple[str, ...]  # of those, the ones it cannot do without
    missing: str  # said when one of them is missing
    refusal: str  # said of the fields of another kind given to this one
    local_uris: bool  # a job may name local:// files (paths in the image its cluster runs)
    # What of the cluster's spec a running attempt was submitted with: a change of it
    # upgrades the job (a session: where it runs; a cluster of its own: all of it).
    submitted: Callable[[dict[str, Any]], dict[str, Any]]


DEPLOYMENTS: dict[Deployment, DeploymentRules] = {
    Deployment.SESSION: DeploymentRules(
        fields=("restUrl", "tls", "auth"),
        required=("restUrl",),
        missing="a session cluster needs restUrl (or give mode: application for a cluster "
                "of each job's own)",
        refusal="only for mode: application (a session cluster is configured where it runs)",
        local_uris=False,
        submitted=lambda spec: {"restUrl": spec["restUrl"]}),
    Deployment.APPLICATION: DeploymentRules(
        fields=("flinkVersion", "image", "jobManager", "taskManager", "podTemplate",
                "flinkConfiguration", "serviceAccount"),
        required=(),
        missing="",
        refusal="not for mode: application (each job's cluster is started by flinksched; its "
                "REST API is found, not configured)",
        local_uris=True,
        submitted=lambda spec: {"cluster": spec}),
}
DEFAULT_DEPLOYMENT = Deployment.SESSION
