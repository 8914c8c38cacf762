"""What a config set means for ZooKeeper: added, changed, removed, unchanged and held jobs.

The master's sync writes the records of a plan; `flinksched plan` prints the same plan, so
what a reviewer reads is what the master does. Pure functions: no ZooKeeper, no Flink.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from common.errors import StoreError
from common.spec.configdir import ConfigSet, Sourced
from common.spec.deployments import DEFAULT_DEPLOYMENT, DEPLOYMENTS, Deployment
from common.spec.models import FlinkCluster, FlinkJob, spec_hash
from common.store.records import JobRecord

ADDED, CHANGED, REMOVED, RESTORED = "added", "changed", "removed", "restored"
UNCHANGED, INVALID, KEPT, REMOVING = "unchanged", "invalid", "kept", "removing"
# Fields a running attempt does not depend on: changing them needs no resubmission.
NOT_SUBMITTED = ("state", "initialSavepointPath", "upgradeMode")

UPGRADE_ACTIONS = {
    "savepoint": "stop with a savepoint and resubmit from it "
                 "(from the newest checkpoint if the job is unhealthy)",
    "last-state": "cancel and resubmit from the newest checkpoint",
    "stateless": "cancel and start from empty state",
}


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any
    new: Any

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "old": self.old, "new": self.new}

    def __str__(self) -> str:
        return f"{self.path}: {_short(self.old)} -> {_short(self.new)}"


@dataclass(frozen=True)
class Change:
    name: str
    kind: str
    action: str
    source: str = ""
    fields: tuple[FieldChange, ...] = ()
    record: JobRecord | None = None  # what the sync writes; None when nothing is written
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "action": self.action,
            "source": self.source,
            "fields": [f.to_json() for f in self.fields],
            "generation": self.record.generation if self.record else None,
            "error": self.error,
        }


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    removal_blocked: str = ""  # why removals were withheld, "" when they were not

    def of_kind(self, *kinds: str) -> list[Change]:
        return [c for c in self.changes if c.kind in kinds]

    @property
    def writes(self) -> list[JobRecord]:
        return [c.record for c in self.changes if c.record is not None]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for change in self.changes:
            counts[change.kind] = counts.get(change.kind, 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {"changes": [c.to_json() for c in self.changes], "counts": self.counts(),
                "removalBlocked": self.removal_blocked}


@dataclass(frozen=True)
class RemovalGuard:
    """Refuse to remove more than `max_share` of the jobs in one sync (an empty or broken
    checkout looks like a mass deletion) unless an operator allowed it."""

    max_share: float = 0.5
    allowed: bool = False


def submit_hash(spec: dict[str, Any], cluster: dict[str, Any]) -> str:
    """The hash of everything a running attempt was submitted with."""
    job = {k: v for k, v in spec["job"].items() if k not in NOT_SUBMITTED}
    submitted = {"job": job, "flinkConfiguration": spec.get("flinkConfiguration", {})}
    mode = Deployment(cluster["spec"].get("mode", DEFAULT_DEPLOYMENT))
    return spec_hash({**submitted, **DEPLOYMENTS[mode].submitted(cluster["spec"])})


def cluster_document(cluster: FlinkCluster) -> dict[str, Any]:
    """The cluster as a record carries it: the fields of its mode. A cluster of the default
    mode leaves out the mode and the other modes' fields, so that a session cluster's
    document hashes as it did before there were modes: a flinksched upgrade makes no new
    generation of every job."""
    document = cluster.model_dump(mode="json")
    mode = cluster.spec.mode
    other = [name for kind, rules in DEPLOYMENTS.items() if kind != mode for name in rules.fields]
    for name in (*other, *(("mode",) if mode == DEFAULT_DEPLOYMENT else ())):
        document["spec"].pop(name, None)
    return document


# Sections the spec gained after jobs were first stored: at their defaults they are left out
# of the record (which reads them back as defaults), so that a flinksched upgrade makes no
# new generation of every job.
LATER_SECTIONS = ("checkpoints", "rollback")
# Fields of the job section the same holds for: those of the program kinds after jars, and
# a jar's own fields where the job runs another kind.
LATER_JOB_FIELDS = ("jarURI", "pyFile", "pyModule", "pyFiles", "sql", "sqlFile")


def stored_spec(job: FlinkJob) -> dict[str, Any]:
    spec = job.spec.model_dump(mode="json")
    for name in LATER_SECTIONS:
        value = getattr(job.spec, name)
        if value == type(value)():
            spec.pop(name)
    for name in LATER_JOB_FIELDS:
        if spec["job"].get(name) in (None, []):
            spec["job"].pop(name, None)
    return spec


def desired_record(config: ConfigSet, item: Sourced, commit: str = "") -> JobRecord:
    """The record a valid job document asks for, as generation 1."""
    job = item.document
    assert isinstance(job, FlinkJob)
    cluster = config.clusters[job.spec.cluster].document
    assert isinstance(cluster, FlinkCluster)
    spec = stored_spec(job)
    cluster_json = cluster_document(cluster)
    labels = dict(job.metadata.labels)
    digest = spec_hash({"spec": spec, "labels": labels, "cluster": cluster_json})
    return JobRecord(job.name, spec, cluster_json, 1, digest, item.source, labels,
                     submit_hash=submit_hash(spec, cluster_json), commit=commit)


class RecordMemo:
    """Desired records of documents seen before: a master syncing every second re-derives
    only the records of files that changed (the loader hands back the same objects)."""

    def __init__(self) -> None:
        self._memo: dict[str, tuple[Sourced, Sourced, str, JobRecord]] = {}

    def record(self, config: ConfigSet, item: Sourced, commit: str) -> JobRecord:
        assert isinstance(item.document, FlinkJob)
        cluster = config.clusters[item.document.spec.cluster]
        known = self._memo.get(item.document.name)
        if known and known[0] is item and known[1] is cluster and known[2] == commit:
            return known[3]
        wanted = desired_record(config, item, commit)
        self._memo[item.document.name] = (item, cluster, commit, wanted)
        return wanted


def build_plan(
    config: ConfigSet,
    current: dict[str, JobRecord],
    *,
    commit: str = "",
    guard: RemovalGuard | None = None,
    now: float | None = None,
    memo: RecordMemo | None = None,
) -> Plan:
    now = time.time() if now is None else now
    memo = memo or RecordMemo()
    guard = guard or RemovalGuard()
    plan = Plan()
    errors = job_errors(config, current)
    for name, item in sorted(config.jobs.items()):
        plan.changes.append(_configured(memo.record(config, item, commit), current.get(name)))
    removals = []
    for name, record in sorted(current.items()):
        if name in config.jobs:
            continue
        if name in errors:
            plan.changes.append(Change(name, INVALID, f"kept on generation {record.generation}",
                                       record.source, error=errors[name]))
        elif record.removed:
            plan.changes.append(Change(name, REMOVING, "stopping; metadata deleted after the "
                                       "grace period", record.source))
        else:
            removals.append(record)
    for name in sorted(set(errors) - set(current) - set(config.jobs)):
        plan.changes.append(Change(name, INVALID, "not created", error=errors[name]))
    plan.removal_blocked = _blocked(config, current, len(removals), guard)
    for record in removals:
        if plan.removal_blocked:
            plan.changes.append(Change(record.name, KEPT, "not removed: "
                                       + plan.removal_blocked, record.source))
        else:
            gone = replace(record, removed_at=now)
            plan.changes.append(Change(record.name, REMOVED, "stop with a savepoint (its path "
                                       "kept in the status), delete after the grace period",
                                       record.source, record=gone))
    plan.changes.sort(key=lambda c: c.name)
    return plan


def _configured(wanted: JobRecord, existing: JobRecord | None) -> Change:
    name, source = wanted.name, wanted.source
    if existing is None:
        suspended = wanted.model.job.state == "suspended"
        action = "create suspended; nothing submitted" if suspended else "submit"
        return Change(name, ADDED, action, source, record=wanted)
    if existing.spec_hash == wanted.spec_hash:
        if existing.removed:
            restored = replace(existing, removed_at=0.0, source=source)
            return Change(name, RESTORED, "resume from the savepoint taken at removal", source,
                          record=restored)
        moved = existing.source != source
        refreshed = replace(existing, source=source) if moved else None
        return Change(name, UNCHANGED, "none", source, record=refreshed)
    # A job moving to another cluster keeps where it came from: its attempt is stopped
    # there before one starts on the new cluster.
    previous = existing.cluster if existing.cluster != wanted.cluster else (
        existing.previous_cluster)
    record = replace(wanted, generation=existing.generation + 1, previous_cluster=previous)
    fields = tuple(field_changes(_comparable(existing), _comparable(record)))
    return Change(name, CHANGED, upgrade_action(existing, record), source, fields, record)


def upgrade_action(old: JobRecord, new: JobRecord) -> str:
    """What the owning worker does when a job moves from `old` to `new`."""
    was_suspended = _suspended(old)
    suspended = new.model.job.state == "suspended"
    resubmit = old.submit_hash != new.submit_hash
    if suspended and not was_suspended:
        return "suspend: stop with a savepoint and keep its path"
    if suspended:
        return "none while suspended; applied on resume"
    if was_suspended:
        return "resume from the suspend savepoint" + (" with the new spec" if resubmit else "")
    if resubmit:
        mode = new.model.job.upgradeMode
        moved = _cluster_name(old) != _cluster_name(new)
        return f"{mode}: {UPGRADE_ACTIONS[mode]}" + (
            f" (moving from cluster {_cluster_name(old)} to {_cluster_name(new)}: the attempt "
            f"is stopped on {_cluster_name(old)}, the next starts on {_cluster_name(new)})"
            if moved else "")
    return "applied in place, no restart"


def _cluster_name(record: JobRecord) -> str:
    return str(record.cluster.get("metadata", {}).get("name", ""))


def _suspended(stored: JobRecord) -> bool:
    """A stored record's spec asks for suspension; one no longer valid is not taken as such."""
    try:
        return stored.model.job.state == "suspended"
    except StoreError:
        return False


def field_changes(old: Any, new: Any, path: str = "") -> list[FieldChange]:
    """Leaf-by-leaf differences of two JSON-able values, as dotted paths."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            out.extend(field_changes(old.get(key), new.get(key), sub))
        return out
    return [] if old == new else [FieldChange(path, old, new)]


def _comparable(record: JobRecord) -> dict[str, Any]:
    return {"spec": record.spec, "metadata": {"labels": record.labels},
            "cluster": record.cluster.get("spec", {})}


def job_errors(config: ConfigSet, current: dict[str, JobRecord]) -> dict[str, str]:
    """Jobs that must keep their last valid spec, with the first problem that holds each.
    A job is held when its document is invalid, or when its last known file is broken."""
    held: dict[str, str] = {}
    broken: dict[str, str] = {}
    for error in config.errors:
        if error.job:
            held.setdefault(error.job, str(error))
        if error.file in config.broken_files:
            broken.setdefault(error.file, str(error))
    for name, record in current.items():
        file = record.source.rsplit(":", 1)[0]
        if name not in held and file in broken:
            held[name] = broken[file]
    return held


def _blocked(config: ConfigSet, current: dict[str, JobRecord], removals: int,
             guard: RemovalGuard) -> str:
    if removals == 0 or guard.allowed:
        return ""
    if not config.files:
        return (f"no YAML file found, which would remove all {removals} job(s); an empty or "
                "broken checkout? Run `flinksched allow-removal` if this is meant")
    active = sum(1 for r in current.values() if not r.removed)
    if removals > max(1.0, guard.max_share * active):
        return (f"{removals} of {active} jobs would be removed in one sync, more than "
                f"{guard.max_share:.0%}; run `flinksched allow-removal` if this is meant")
    return ""


def _short(value: Any) -> str:
    text = "(none)" if value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
