from __future__ import annotations

from pathlib import Path

from common.spec.configdir import load_config_paths
from common.store.memory import MemoryStore
from common.store.records import JobRecord
from scheduler.master.changes import Change, Plan, RemovalGuard, build_plan
from scheduler.master.sync import ConfigSync
from tests.unit.configtexts import CLUSTER


def job(name: str, extra: str = "", *, parallelism: int = 1, mode: str = "savepoint",
        state: str = "running") -> str:
    return f"""\
apiVersion: flinksched/v1
kind: FlinkJob
metadata: {{name: {name}, labels: {{team: a}}}}
spec:
  job: {{jarURI: app.jar, parallelism: {parallelism}, upgradeMode: {mode}, state: {state}}}
{extra}"""


def plan_of(tmp_path: Path, files: dict[str, str], current: dict[str, JobRecord],
            guard: RemovalGuard | None = None) -> Plan:
    """Make the directory hold exactly `files` (and the cluster), then plan against `current`."""
    for old in tmp_path.glob("*.yaml"):
        old.unlink()
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return build_plan(load_config_paths([tmp_path]), current, guard=guard, now=1000.0)


def written(change: Change) -> JobRecord:
    assert change.record is not None, f"{change.name}: nothing written"
    return change.record


def synced(tmp_path: Path, files: dict[str, str],
           current: dict[str, JobRecord] | None = None) -> dict[str, JobRecord]:
    """The records ZooKeeper holds after syncing `files` over `current`."""
    records = dict(current or {})
    for record in plan_of(tmp_path, files, records).writes:
        records[record.name] = record
    return records


def test_a_new_job_is_added_as_generation_1(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, {"a.yaml": job("a")}, {})
    [change] = plan.changes
    assert (change.kind, change.action, written(change).generation) == ("added", "submit", 1)
    assert change.source.endswith("a.yaml:1")


def test_parallelism_change_is_a_new_generation_upgraded_by_its_mode(tmp_path: Path) -> None:
    for mode, action in (
        ("savepoint", "savepoint: stop with a savepoint and resubmit from it (from the newest "
                      "checkpoint if the job is unhealthy)"),
        ("last-state", "last-state: cancel and resubmit from the newest checkpoint"),
        ("stateless", "stateless: cancel and start from empty state"),
    ):
        current = synced(tmp_path, {"a.yaml": job("a", mode=mode)})
        [change] = plan_of(tmp_path, {"a.yaml": job("a", mode=mode, parallelism=2)},
                           current).changes
        assert change.kind == "changed" and written(change).generation == 2
        assert [str(f) for f in change.fields] == ["spec.job.parallelism: 1 -> 2"]
        assert change.action == action


def test_labels_and_restart_policy_apply_in_place(tmp_path: Path) -> None:
    current = synced(tmp_path, {"a.yaml": job("a")})
    changed = job("a", "  restartPolicy: {maxRestarts: 3}\n").replace("team: a", "team: b")
    [change] = plan_of(tmp_path, {"a.yaml": changed}, current).changes
    assert change.action == "applied in place, no restart"
    assert [f.path for f in change.fields] == ["metadata.labels.team",
                                               "spec.restartPolicy.maxRestarts"]
    assert written(change).submit_hash == current["a"].submit_hash


def test_suspend_and_resume_through_the_spec(tmp_path: Path) -> None:
    current = synced(tmp_path, {"a.yaml": job("a")})
    [change] = plan_of(tmp_path, {"a.yaml": job("a", state="suspended")}, current).changes
    assert change.action == "suspend: stop with a savepoint and keep its path"
    current = synced(tmp_path, {"a.yaml": job("a", state="suspended")}, current)
    [change] = plan_of(tmp_path, {"a.yaml": job("a", parallelism=3)}, current).changes
    assert change.action == "resume from the suspend savepoint with the new spec"


def test_a_removed_file_removes_its_job_and_a_returning_one_restores_it(tmp_path: Path) -> None:
    current = synced(tmp_path, {"a.yaml": job("a"), "b.yaml": job("b"), "c.yaml": job("c")})
    plan = plan_of(tmp_path, {"a.yaml": job("a"), "b.yaml": job("b")}, current)
    [removed] = plan.of_kind("removed")
    assert removed.name == "c" and written(removed).removed_at == 1000.0
    assert removed.action.startswith("stop with a savepoint")
    current["c"] = written(removed)
    assert plan_of(tmp_path, {"a.yaml": job("a"), "b.yaml": job("b")},
                   current).of_kind("removing")[0].name == "c"
    [back] = plan_of(tmp_path, {"a.yaml": job("a"), "b.yaml": job("b"), "c.yaml": job("c")},
                     current).of_kind("restored")
    assert written(back).removed_at == 0 and written(back).generation == 1


def test_the_removal_guard_withholds_mass_removal_until_allowed(tmp_path: Path) -> None:
    current = synced(tmp_path, {f"{n}.yaml": job(n) for n in "abcd"})
    plan = plan_of(tmp_path, {"a.yaml": job("a")}, current)
    assert plan.removal_blocked.startswith("3 of 4 jobs would be removed in one sync")
    assert [c.name for c in plan.of_kind("kept")] == ["b", "c", "d"] and not plan.writes
    allowed = plan_of(tmp_path, {"a.yaml": job("a")}, current, RemovalGuard(allowed=True))
    assert [c.name for c in allowed.of_kind("removed")] == ["b", "c", "d"]
    # removing one of four is within the share
    assert [c.name for c in plan_of(tmp_path, {f"{n}.yaml": job(n) for n in "abc"},
                                    current).of_kind("removed")] == ["d"]


def test_an_empty_checkout_removes_nothing(tmp_path: Path) -> None:
    current = synced(tmp_path, {"a.yaml": job("a")})
    for file in tmp_path.glob("*.yaml"):
        file.unlink()
    plan = build_plan(load_config_paths([tmp_path]), current)
    assert plan.removal_blocked.startswith("no YAML file found") and not plan.writes


def test_an_invalid_change_keeps_the_last_valid_spec(tmp_path: Path) -> None:
    current = synced(tmp_path, {"a.yaml": job("a"), "b.yaml": job("b")})
    plan = plan_of(tmp_path, {"a.yaml": job("a", parallelism=0), "b.yaml": job("b")}, current)
    [held] = plan.of_kind("invalid")
    assert held.name == "a" and held.record is None and "spec.job.parallelism" in held.error
    assert plan.writes == []


def test_a_broken_file_holds_every_job_it_held(tmp_path: Path) -> None:
    current = synced(tmp_path, {"ab.yaml": job("a") + "---\n" + job("b"), "c.yaml": job("c")})
    plan = plan_of(tmp_path, {"ab.yaml": "kind: [unclosed\n", "c.yaml": job("c")}, current)
    assert [c.name for c in plan.of_kind("invalid")] == ["a", "b"]
    assert "YAML syntax error" in plan.of_kind("invalid")[0].error
    assert plan.writes == [] and not plan.removal_blocked


def test_a_job_moved_to_another_file_keeps_its_generation_and_gets_no_event(
    tmp_path: Path,
) -> None:
    current = synced(tmp_path, {"a.yaml": job("a")})
    [change] = plan_of(tmp_path, {"b.yaml": job("a")}, current).changes
    assert change.kind == "unchanged" and written(change).generation == 1
    assert written(change).source.endswith("b.yaml:1")
    assert ConfigSync(MemoryStore(), "m", tmp_path)._event_text(change) == ""
