"""Gathering the restore points a start chooses from (`worker.decide.rules` chooses, with
`worker.restorecheck.choose`: the newest usable one).

Sources (DESIGN rule 5): Flink's checkpoint statistics of the last attempt, the checkpoint
recorded in ZooKeeper status, the savepoints flinksched took, and the retained checkpoints
under the checkpoint directory. Each candidate is checked here, on this worker's disk, before
use (rule 7, worker/restorecheck.py): a placeholder or a local checkpoint without its
metadata is passed over for the next-newest, and so is a point Flink already failed to read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from common.errors import FlinkUnreachable
from common.flink.jobids import flink_job_id, name_prefix
from common.flink.versions import CHECKPOINT_DIR
from common.store.records import Checkpoint, JobRecord, JobStatus
from worker.decide.observation import Need, RestoreCandidates
from worker.decide.restore_rules import (
    CHK_DIR,
    checkpoint_number,
    is_placeholder,
    local_path,
    rejection,
)
from worker.targets import DeploymentTarget

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


def reports_placeholder(stats: Mapping[str, Any] | None) -> bool:
    """Flink completed a checkpoint it cannot address: the cluster has no checkpoint directory,
    so no restart can ever restore from its checkpoints."""
    completed = ((stats or {}).get("latest") or {}).get("completed") or {}
    return is_placeholder(str(completed.get("external_path") or ""))


def checkpoint_dir(job_config: Mapping[str, str], cluster_config: Mapping[str, str]) -> str | None:
    """The job's checkpoint directory: a job-level setting wins over the cluster's, under
    either the 2.x or the 1.x name of the key."""
    return CHECKPOINT_DIR.read(job_config, cluster_config)


def retained_on_disk(directory: str, job_id_prefix: str) -> list[Checkpoint]:
    """Completed checkpoints of every attempt of a job under a local (file://) directory.

    A checkpoint is complete once its `_metadata` file exists; Flink writes that file last.
    Remote filesystems (s3://, hdfs://) are not listed here; the other sources cover them.
    """
    root = local_path(directory)
    if root is None:
        logger.debug("not scanning %s: only local checkpoint directories are listed", directory)
        return []
    found = []
    try:
        job_dirs = [d for d in root.iterdir() if d.name.startswith(job_id_prefix) and d.is_dir()]
    except OSError:
        return []
    for job_dir in job_dirs:
        try:
            chk_dirs = list(job_dir.iterdir())
        except OSError:
            continue
        for chk_dir in chk_dirs:
            match = CHK_DIR.match(chk_dir.name)
            metadata = chk_dir / "_metadata"
            if not match:
                continue
            try:
                completed = metadata.stat().st_mtime
            except OSError:
                continue
            found.append(
                Checkpoint(
                    path=chk_dir.as_uri(), id=int(match.group(1)), timestamp=int(completed * 1000)
                )
            )
    return found


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
    initial = record.model.job.initialSavepointPath
    if need is Need.FIRST:
        if initial:
            candidates.append(Checkpoint(path=initial, id=0, timestamp=0, kind="savepoint"))
        else:
            candidates.extend(retained(record, target))
    elif need is Need.AFTER:
        candidates.extend(c for c in (status.last_checkpoint, *status.savepoints) if c)
        candidates.extend(restore_fallbacks(status.restored_from, initial))
        if status.attempt:
            try:
                candidates.extend(from_flink_stats(
                    target.checkpoints(flink_job_id(record.name, status.attempt))))
            except FlinkUnreachable:
                pass
        candidates.extend(retained(record, target))
    problems = {c.path: p for c in candidates if (p := rejection(c.path)) is not None}
    return RestoreCandidates(need, tuple(candidates), problems)


def retained(record: JobRecord, target: DeploymentTarget) -> list[Checkpoint]:
    try:
        cluster_config = target.config()
    except FlinkUnreachable:
        cluster_config = {}
    directory = checkpoint_dir(record.model.flinkConfiguration, cluster_config)
    return retained_on_disk(directory, name_prefix(record.name)) if directory else []
