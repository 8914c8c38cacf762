"""Gathering the restore points a start chooses from (`worker.decide.rules` chooses, with
`worker.decide.restore_rules.choose`: the newest usable one).

Sources: Flink's checkpoint statistics of the last attempt, the checkpoint recorded in the
ZooKeeper status, the savepoints flinksched took, and the retained checkpoints under the
checkpoint directory, listed on local disk or object storage alike (`<dir>/<flink job
id>/chk-N/_metadata`, every attempt of the job). Each candidate is checked here before use:
a placeholder, or a checkpoint without its `_metadata` (a file, or an object), is passed
over for the next-newest, and so is a point Flink already failed to read. Storage that does
not answer is no reason to pass a point over: the start waits for it (`unreachable`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.errors import FlinkUnreachable, StorageUnavailable
from common.flink.jobids import flink_job_id, is_job_id, name_prefix
from common.flink.versions import CHECKPOINT_DIR
from common.objstore.storage import Storage, local, remote
from common.store.records import Checkpoint, JobRecord, JobStatus
from worker.decide.observation import Need, RestoreCandidates
from worker.decide.restore_rules import (
    CHK_DIR,
    METADATA,
    checkpoint_number,
    is_placeholder,
    malformed,
)
from worker.targets import STORAGE, DeploymentTarget

logger = logging.getLogger(__name__)

def from_flink_stats(stats: Mapping[str, Any] | None) -> list[Checkpoint]:
    """Completed checkpoint, savepoint and restored checkpoint from GET /jobs/<id>/checkpoints."""
    if not stats:
        return []
    latest = stats.get("latest") or {}
    found = []
    for key, kind in (("completed", "checkpoint"), ("savepoint", "savepoint")):
        entry = latest.get(key)
        path = str((entry or {}).get("external_path") or "")
        if entry and path and not is_placeholder(path) and not entry.get("discarded", False):
            found.append(
                Checkpoint(
                    path=str(entry["external_path"]),
                    id=int(entry["id"]),
                    timestamp=int(entry.get("latest_ack_timestamp") or 0),
                    kind=kind,
                )
            )
    restored = latest.get("restored")
    if restored and restored.get("external_path") and not is_placeholder(
            str(restored["external_path"])):
        # Its completion time is unknown here; it only wins when nothing newer exists.
        found.append(
            Checkpoint(
                path=str(restored["external_path"]),
                id=int(restored["id"]),
                timestamp=0,
                kind="savepoint" if restored.get("is_savepoint") else "checkpoint",
            )
        )
    return found


def completing(stats: Mapping[str, Any] | None) -> Checkpoint | None:
    """The newest checkpoint Flink reports in progress, stamped with its last acknowledgement
    (else its trigger), from GET /jobs/<id>/checkpoints; None when there is none."""
    if not stats or not int((stats.get("counts") or {}).get("in_progress") or 0):
        return None
    pending = [entry for entry in stats.get("history") or ()
               if entry.get("status") == "IN_PROGRESS"]
    if not pending:
        return None
    entry = max(pending, key=lambda e: int(e["id"]))
    stamp = int(entry.get("latest_ack_timestamp") or 0) or int(entry.get("trigger_timestamp") or 0)
    return Checkpoint(path=str(entry.get("external_path") or ""), id=int(entry["id"]),
                      timestamp=stamp, kind="checkpoint")


def reports_placeholder(stats: Mapping[str, Any] | None) -> bool:
    """Flink completed a checkpoint it cannot address: the cluster has no checkpoint directory,
    so no restart can ever restore from its checkpoints."""
    completed = ((stats or {}).get("latest") or {}).get("completed") or {}
    return is_placeholder(str(completed.get("external_path") or ""))


def checkpoint_dir(job_config: Mapping[str, str], cluster_config: Mapping[str, str]) -> str | None:
    """The job's checkpoint directory: a job-level setting wins over the cluster's, under
    either the 2.x or the 1.x name of the key."""
    return CHECKPOINT_DIR.read(job_config, cluster_config)


def retained_in(directory: str, job_id_prefix: str,
                storage: Storage = STORAGE) -> list[Checkpoint]:
    """Completed checkpoints of every attempt of a job under a checkpoint directory, on local
    disk or object storage: `<dir>/<flink job id>/chk-N` whose `_metadata` exists (Flink
    writes it last, so a checkpoint is complete once it is there). StorageUnavailable when
    the directory cannot be listed."""
    found = []
    base = directory.rstrip("/")
    for entry in storage.list(f"{base}/{job_id_prefix}"):
        parts = entry.uri[len(base) + 1:].split("/")
        if len(parts) != 3 or parts[2] != METADATA or not is_job_id(parts[0]):
            continue
        match = CHK_DIR.match(parts[1])
        if match:
            found.append(Checkpoint(path=f"{base}/{parts[0]}/{parts[1]}",
                                    id=int(match.group(1)),
                                    timestamp=int(entry.modified * 1000)))
    return found


def rejection(path: str, storage: Storage = STORAGE) -> str | None:
    """Why `path` cannot be restored from, or None when it may be submitted. Local points
    are checked where this worker sees the storage they live in; points on object storage
    by their `_metadata` object. StorageUnavailable when the storage does not answer."""
    problem = malformed(path)
    if problem is not None:
        return problem
    if remote(path):
        metadata = path if path.rstrip("/").endswith(f"/{METADATA}") else (
            f"{path.rstrip('/')}/{METADATA}")
        if storage.exists(metadata):
            return None
        return f"{path} has no {METADATA} object (the checkpoint is incomplete or was deleted)"
    point = local(path)
    if point is None:
        return None  # hdfs:// and the like: Flink reads the metadata when it restores
    if not storage_visible(point):
        return None  # a volume only Flink mounts: Flink checks it when it restores
    try:
        if point.is_dir():
            return None if (point / METADATA).is_file() else (
                f"{path} has no {METADATA} file (the checkpoint is incomplete or was deleted)")
        if point.is_file():
            return None  # a metadata file named directly
    except OSError as exc:
        return f"{path} cannot be read: {exc.strerror or exc}"
    return f"{path} does not exist"


def storage_visible(point: Path) -> bool:
    """This process sees the storage the point lives in: the directory holding the job-id
    directory of a checkpoint (`<dir>/<job id>/chk-N`), or the one holding a savepoint.
    A worker that does not mount Flink's volume cannot judge its checkpoints, and must not
    reject them all for it."""
    point = point.parent if point.name == METADATA else point
    checkpoint = is_job_id(point.parent.name) and point.name.startswith("chk-")
    root = point.parent.parent if checkpoint else point.parent
    try:
        return root.is_dir()
    except OSError:
        return False


def restore_fallbacks(restored_from: str, initial_savepoint: str | None) -> list[Checkpoint]:
    """State the last attempt started from, and the spec's initial savepoint.

    Their completion time is unknown (timestamp 0), so any checkpoint taken since wins; they
    keep a restart from ever silently falling back to empty state.
    """
    found = []
    for path, kind in ((restored_from, "checkpoint"), (initial_savepoint, "savepoint")):
        if path:
            number = checkpoint_number(path)
            found.append(Checkpoint(path=path, id=number, timestamp=0,
                                    kind="checkpoint" if number else kind))
    return found


def gather(need: Need, record: JobRecord, status: JobStatus,
           target: DeploymentTarget) -> RestoreCandidates:
    """Every candidate of the sources `need` asks for, each checked before use (rule 7).

    FIRST: the spec's initial savepoint, else whatever state an earlier life of this job name
    left on disk. AFTER: the status's checkpoint and savepoints, the last attempt's restore
    point and the initial savepoint as fallbacks, Flink's statistics of the last attempt, and
    the retained checkpoints on disk. NONE: nothing (the point is known already)."""
    candidates: list[Checkpoint] = []
    found: list[Checkpoint] = []  # listed with their metadata: complete, no need to ask again
    unreachable = ""
    finalizing = None
    initial = record.model.job.initialSavepointPath
    if need is Need.FIRST:
        if initial:
            candidates.append(Checkpoint(path=initial, id=0, timestamp=0, kind="savepoint"))
        else:
            found, unreachable = retained(record, target)
            candidates.extend(found)
    elif need is Need.AFTER:
        candidates.extend(c for c in (status.last_checkpoint, *status.savepoints,
                                      status.upgrade_point) if c)
        candidates.extend(restore_fallbacks(status.restored_from, initial))
        if status.attempt:
            try:
                stats = target.checkpoints(flink_job_id(record.name, status.attempt))
            except FlinkUnreachable:
                stats = None
            candidates.extend(from_flink_stats(stats))
            finalizing = completing(stats)
        found, unreachable = retained(record, target)
        candidates.extend(found)
    listed = {c.path for c in found}
    try:  # each other path asked of its storage once, however many sources name it
        problems = {path: p for path in dict.fromkeys(c.path for c in candidates)
                    if path not in listed and (p := rejection(path, target.storage)) is not None}
    except StorageUnavailable as exc:
        return RestoreCandidates(need, tuple(candidates), {}, unreachable=str(exc),
                                 finalizing=finalizing)
    return RestoreCandidates(need, tuple(candidates), problems, unreachable=unreachable,
                             finalizing=finalizing)


def retained(record: JobRecord, target: DeploymentTarget) -> tuple[list[Checkpoint], str]:
    """The job's retained checkpoints, and why they could not be listed ("" when they were)."""
    try:
        cluster_config = target.config()
    except FlinkUnreachable:
        cluster_config = {}
    directory = checkpoint_dir(record.model.flinkConfiguration, cluster_config)
    if not directory:
        return [], ""
    try:
        return retained_in(directory, name_prefix(record.name), target.storage), ""
    except StorageUnavailable as exc:
        return [], f"checkpoint storage unreachable: {exc}"
