"""A chaos run: several jobs on the real stack (a three-server ZooKeeper ensemble, the Flink
session cluster, two masters, three workers), faults injected at random times in random order,
and the checker's invariants throughout.

Every worker reaches ZooKeeper through its own proxies (one per server) and every worker
reaches Flink's REST API through one shared proxy, so a partition or slowness is a real
network condition the processes cannot tell from the real thing.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from common.flink.jobids import attempt_of, flink_job_id
from common.store.records import Phase
from scheduler.devstack.services import kill, running_pid, wait_for
from scheduler.devstack.stack import DevStack
from tests.chaos.checker import Checker, Findings
from tests.chaos.ensemble import Ensemble
from tests.objectstore import Bucket, state_on
from tests.stack import Cluster, ControlPlane
from tests.tcpproxy import TcpProxy
from tests.zkserver import store_on
from tests.zksessions import SessionTap

RECOVERY_BOUND = 90.0  # every job RUNNING again within this long after a fault heals
WORKER_SLOTS = 2
SLOW_REST_DELAY = 1.0  # seconds each chunk of a Flink REST exchange is held
# The chaos jobs prove a generation stable in seconds, so a broken one pushed has something
# to roll back to.
ROLLBACK = {"stableAfter": "5s", "readinessTimeout": "60s"}
BROKEN_WAIT = 60.0  # a broken generation pushed is fixed once rolled back, or after this
SLOW_S3_DELAY = 1.0  # seconds each chunk between Flink and the S3 server is held


@dataclass
class Recovery:
    kind: str
    seconds: float | None  # healed -> every job healthy; None: not within the bound
    disrupted: float | None = None  # injected -> every job healthy
    detail: str = ""


@dataclass
class Report:
    recoveries: list[Recovery] = field(default_factory=list)
    findings: Findings = field(default_factory=Findings)
    log_problems: list[str] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return sorted({r.kind for r in self.recoveries})

    def table(self) -> str:
        lines = ["| fault | injected | recovered within bound | median / worst recovery "
                 "(healed → all jobs healthy) | worst from injection |",
                 "|---|---|---|---|---|"]
        for kind in self.kinds():
            runs = [r for r in self.recoveries if r.kind == kind]
            done = sorted(r.seconds for r in runs if r.seconds is not None)
            spans = [r.disrupted for r in runs if r.disrupted is not None]
            if len(done) < len(runs):
                worst = "NOT RECOVERED"
            else:
                worst = f"{done[len(done) // 2]:.1f} s / {done[-1]:.1f} s"
            from_injection = f"{max(spans):.1f} s" if spans else "-"
            lines.append(f"| {kind} | {len(runs)} | {len(done)} | {worst} | {from_injection} |")
        found = self.findings
        lines += [
            "",
            f"faults injected: {len(self.recoveries)}; invariant samples: {found.samples}; "
            f"restores checked: {found.restores_checked} (and {found.restores_unjudgeable} "
            "restarted attempts ended by a later fault before reporting one)",
            f"duplicates (two RUNNING attempts of one job): {len(found.duplicates)}",
            f"state regressions (restore older than a completed checkpoint): "
            f"{len(found.regressions)}",
            f"jobs vanished from ZooKeeper: {len(found.vanished)}",
            f"unhandled exceptions in logs: {len(self.log_problems)}",
            f"recovery bound: {RECOVERY_BOUND:g} s after the fault heals",
        ]
        return "\n".join(lines)


class ChaosStack:
    """`jobs` jobs, the second half of them with their state in the S3 bucket (the others on
    local disk), which Flink reaches through `flink_to_s3`."""

    def __init__(self, devstack: DevStack, cluster: Cluster, flink_to_s3: TcpProxy,
                 workdir: Path, jobs: int = 4, workers: int = 3) -> None:
        assert cluster.s3 is not None
        self.devstack = devstack
        self.s3 = cluster.s3
        self.bucket = Bucket(cluster.s3)
        self.flink_to_s3 = flink_to_s3
        self.real_cluster = cluster
        self.real_rest_url = cluster.rest_url
        self.ensemble = Ensemble(workdir / "ensemble")
        self.ensemble.start()
        self.ensemble.wait_serving()
        rest_port = int(cluster.rest_url.rsplit(":", 1)[1])
        self.rest_proxy = TcpProxy(rest_port)
        proxied = Cluster(zk_hosts=self.ensemble.hosts,
                          rest_url=f"http://127.0.0.1:{self.rest_proxy.port}",
                          example_jar=cluster.example_jar, state_dir=cluster.state_dir,
                          s3=cluster.s3)
        self.control = ControlPlane(proxied, workdir)
        self.jobs = [f"chaos-{n}" for n in range(jobs)]
        self.on_s3 = {name: state_on(cluster.s3, f"chaos/{name}")
                      for name in self.jobs[jobs // 2:]}
        self.workdir = workdir
        self.pushes = 0  # generations the faults pushed
        for name in self.jobs:
            self.write_job(name)
        self.zk_proxies = [[TcpProxy(port) for port in self.ensemble.ports]
                           for _ in range(workers)]
        self.sessions = [SessionTap(*proxies) for proxies in self.zk_proxies]
        self.worker_names = [""] * workers
        self._generation = 0
        self.masters = ["master-a", "master-b"]
        for name in self.masters:
            self.control.start_master(name, "--spare-workers", "0")
        for slot in range(workers):
            self.start_worker(slot)
        self.cut_off: set[int] = set()  # slots partitioned from ZooKeeper
        self.checker = Checker(self.real_rest_url, self.ensemble.hosts, self.control.root,
                               self.jobs, self.sound_workers)

    def write_job(self, name: str, **changes: object) -> None:
        """A job's config as the run keeps it (`changes`: a generation a fault pushes)."""
        self.control.write_job(name, config=self.on_s3.get(name), rollback=ROLLBACK,
                               **changes)  # type: ignore[arg-type]

    def sound_workers(self) -> set[str]:
        return {name for slot, name in enumerate(self.worker_names)
                if slot not in self.cut_off and self.alive(name)}

    def start_worker(self, slot: int, env: dict[str, str] | None = None) -> None:
        """A new worker process in the slot (a new id: the old one's session may linger),
        with `env` over its environment."""
        self._generation += 1
        name = f"worker-{slot}-{self._generation}"
        hosts = ",".join(f"127.0.0.1:{proxy.port}" for proxy in self.zk_proxies[slot])
        self.control.start_worker(name, slots=WORKER_SLOTS, zk=hosts, env=env)
        self.worker_names[slot] = name

    def busy_slot(self, rng: random.Random) -> int:
        """A worker slot whose worker supervises jobs (any slot when none does yet)."""
        owners = set(self.checker.owners.values())
        busy = [slot for slot, name in enumerate(self.worker_names) if name in owners]
        return rng.choice(busy or list(range(len(self.worker_names))))

    def alive(self, name: str) -> bool:
        process = self.control.processes.get(name)
        return process is not None and process.poll() is None

    def leader(self) -> str | None:
        leader_id = self.checker.leader_id()
        return leader_id if leader_id in self.masters and self.alive(leader_id) else None

    def log_problems(self) -> list[str]:
        problems = []
        for log in sorted(self.control.workdir.glob("*.log")):
            for number, line in enumerate(log.read_text(errors="replace").splitlines(), 1):
                if "Traceback" in line or "unexpected error" in line:
                    problems.append(f"{log.name}:{number}: {line.strip()[:200]}")
        return problems

    def close(self) -> None:
        self.checker.close()
        self.control.stop_all()
        for proxies in self.zk_proxies:
            for proxy in proxies:
                proxy.close()
        self.rest_proxy.close()
        self.ensemble.stop()
        self.flink_to_s3.heal()
        self.flink_to_s3.delay = 0.0
        if running_pid(self.devstack.s3_service()) is None:
            self.devstack.start_s3()
        if running_pid(self.devstack.flink_service("jobmanager")) is None:
            self.devstack.start_jobmanager()
        self.real_cluster.cancel_all()


# -- faults: each injects, holds, heals, and says what it did -----------------------------
Fault = Callable[[ChaosStack, random.Random], str]


def leader_sigkill(stack: ChaosStack, rng: random.Random) -> str:
    leader = stack.leader()
    if leader is None:
        return "no leader to kill"
    stack.control.signal(leader, signal.SIGKILL)
    stack.control.processes[leader].wait()
    stack.control.start_master(leader, "--spare-workers", "0")  # back as the standby
    return f"killed leader {leader}"


def _worker_signal(stack: ChaosStack, rng: random.Random, sig: int) -> str:
    slot = stack.busy_slot(rng)
    name = stack.worker_names[slot]
    stack.control.signal(name, sig)
    stack.control.processes[name].wait(timeout=30)
    stack.start_worker(slot)
    return f"{signal.Signals(sig).name} {name}"


def worker_sigkill(stack: ChaosStack, rng: random.Random) -> str:
    return _worker_signal(stack, rng, signal.SIGKILL)


def worker_sigterm(stack: ChaosStack, rng: random.Random) -> str:
    return _worker_signal(stack, rng, signal.SIGTERM)


def zookeeper_restart(stack: ChaosStack, rng: random.Random) -> str:
    stack.ensemble.stop()
    stack.ensemble.start()
    stack.ensemble.wait_serving()
    return "restarted all three ZooKeeper servers"


def _member_down(stack: ChaosStack, rng: random.Random,
                 while_down: Callable[[int], None]) -> int:
    """SIGKILL one server of the ensemble, do `while_down` to it, start it again."""
    member = rng.randrange(len(stack.ensemble.ports))
    stack.ensemble.kill(member)
    while_down(member)
    stack.ensemble.start(member)
    stack.ensemble.wait_serving()
    return member


def zookeeper_server_loss(stack: ChaosStack, rng: random.Random) -> str:
    # The fault's duration:
    member = _member_down(stack, rng, lambda _: time.sleep(rng.uniform(2.0, 8.0)))
    return f"lost ZooKeeper server {member + 1}"


def worker_partition(stack: ChaosStack, rng: random.Random) -> str:
    slot = stack.busy_slot(rng)
    stack.cut_off.add(slot)
    for proxy in stack.zk_proxies[slot]:
        proxy.partition()
    time.sleep(stack.control.session_timeout + rng.uniform(1.0, 4.0))  # past its session
    for proxy in stack.zk_proxies[slot]:
        proxy.heal()
    stack.cut_off.discard(slot)
    return f"partitioned {stack.worker_names[slot]} from ZooKeeper"


def sessions_expired(stack: ChaosStack, rng: random.Random) -> str:
    """ZooKeeper itself expires the sessions of every worker that supervises jobs, at once
    (what a loaded machine or a long pause brings): each learns of it when it reconnects,
    gets a new session at once, and must register again and own its jobs again."""
    owners = set(stack.checker.owners.values())
    slots = [slot for slot, name in enumerate(stack.worker_names) if name in owners]
    expired = []
    for slot in slots or [stack.busy_slot(rng)]:
        if stack.sessions[slot].session is not None:
            stack.sessions[slot].expire(stack.ensemble.hosts)
            expired.append(stack.worker_names[slot])
    return f"ZooKeeper expired the sessions of {', '.join(expired) or 'no worker'}"


def jobmanager_restart(stack: ChaosStack, rng: random.Random) -> str:
    jobmanager = stack.devstack.flink_service("jobmanager")
    kill(jobmanager)
    stack.devstack.start_jobmanager()
    return "SIGKILL and restart of the Flink JobManager"


# -- faults in state: what the processes read is wrong --------------------------------------
def _cancel_behind_their_backs(stack: ChaosStack, rng: random.Random,
                               wanted: Callable[[str, int], bool] = lambda name, a: True,
                               ) -> tuple[str, int, Path] | None:
    """With every worker cut off from Flink, cancel a running attempt directly: the workers
    see it ended only once the proxy heals, after the test has changed its state on disk.
    Returns the job, the attempt and its checkpoint directory; the proxy stays partitioned."""
    real = stack.real_rest_url
    listing = httpx.get(f"{real}/jobs", timeout=5).json().get("jobs", [])
    running = [(name, attempt) for job in listing if job["status"] == "RUNNING"
               for name in stack.jobs
               if (attempt := attempt_of(name, job["id"])) is not None and wanted(name, attempt)]
    if not running:
        return None
    name, attempt = rng.choice(sorted(running))
    job_id = flink_job_id(name, attempt)
    stack.rest_proxy.partition()
    httpx.patch(f"{real}/jobs/{job_id}", params={"mode": "cancel"}, timeout=5)
    wait_for(lambda: (httpx.get(f"{real}/jobs/{job_id}", timeout=5).json()
                      .get("state")) == "CANCELED", 30)
    return name, attempt, stack.real_cluster.state_dir / "checkpoints" / job_id


def _usable(directory: Path) -> list[Path]:
    """chk-N directories with their metadata, oldest first."""
    found = [d for d in directory.glob("chk-*") if (d / "_metadata").is_file()]
    return sorted(found, key=lambda d: int(d.name.split("-")[1]))


def broken_newest_checkpoint(stack: ChaosStack, rng: random.Random) -> str:
    """The newest checkpoint of an attempt that ended is unreadable (garbage metadata):
    Flink rejects it, and the next attempt must start from the one before."""
    found = _cancel_behind_their_backs(
        stack, rng, lambda name, attempt: len(_usable(
            stack.real_cluster.state_dir / "checkpoints" / flink_job_id(name, attempt))) >= 2)
    if found is None:
        return "no attempt with two checkpoints to break"
    name, attempt, directory = found
    *_, before, newest = _usable(directory)
    (newest / "_metadata").write_bytes(b"not a checkpoint")
    stack.checker.spoiled(name, attempt, int(before.name.split("-")[1]))
    stack.rest_proxy.heal()
    return f"broke {newest.name} of {name} attempt {attempt} after cancelling it"


def checkpoint_dir_deleted(stack: ChaosStack, rng: random.Random) -> str:
    """Every checkpoint of the attempt that ended is gone: the restore comes from an older
    attempt's retained checkpoints (jobs whose older attempts left some)."""
    root = stack.real_cluster.state_dir / "checkpoints"

    def older_kept(name: str, attempt: int) -> bool:
        return any(_usable(root / flink_job_id(name, a)) for a in range(1, attempt))

    found = _cancel_behind_their_backs(stack, rng, older_kept)
    if found is None:
        return "no job with an older attempt's checkpoints; nothing deleted"
    name, attempt, directory = found
    shutil.rmtree(directory, ignore_errors=True)
    stack.checker.spoiled(name, attempt, None)
    stack.rest_proxy.heal()
    return f"deleted the checkpoint directory of {name} attempt {attempt} after cancelling it"


# -- faults in storage: the S3 server and what the bucket holds --------------------------------
def s3_server_restart(stack: ChaosStack, rng: random.Random) -> str:
    """Killed while the jobs on S3 checkpoint (their checkpoints fail, and so may they), and
    started again after a while: nothing starts from an older point or empty state for want
    of it, and every job runs again once it answers."""
    kill(stack.devstack.s3_service())
    time.sleep(rng.uniform(2.0, 8.0))  # the fault's duration
    stack.devstack.start_s3()
    return "SIGKILL of the S3 server, started again after a while"


def s3_slowed(stack: ChaosStack, rng: random.Random) -> str:
    stack.flink_to_s3.delay = SLOW_S3_DELAY
    time.sleep(rng.uniform(3.0, 10.0))
    stack.flink_to_s3.delay = 0.0
    return f"Flink's S3 traffic slowed by {SLOW_S3_DELAY:g} s a chunk"


def _usable_in_bucket(stack: ChaosStack, name: str, attempt: int) -> list[int]:
    directory = stack.on_s3[name]["execution.checkpointing.dir"]
    return stack.bucket.checkpoints(directory, flink_job_id(name, attempt))


def s3_newest_metadata_deleted(stack: ChaosStack, rng: random.Random) -> str:
    """The `_metadata` object of an ended attempt's newest checkpoint is gone from the
    bucket: the next attempt must start from the one before."""
    found = _cancel_behind_their_backs(
        stack, rng, lambda name, attempt: name in stack.on_s3 and len(
            _usable_in_bucket(stack, name, attempt)) >= 2)
    if found is None:
        return "no attempt on S3 with two checkpoints to delete one of"
    name, attempt, _ = found
    *_, before, newest = _usable_in_bucket(stack, name, attempt)
    directory = stack.on_s3[name]["execution.checkpointing.dir"]
    stack.bucket.delete(f"{directory}/{flink_job_id(name, attempt)}/chk-{newest}/_metadata")
    stack.checker.spoiled(name, attempt, before)
    stack.rest_proxy.heal()
    return f"deleted the _metadata of chk-{newest} of {name} attempt {attempt} in the bucket"


def s3_credentials_rotated(stack: ChaosStack, rng: random.Random) -> str:
    """A busy worker is replaced by one whose storage secret no longer works, which is
    replaced in turn by one with the right secret: what fails meanwhile waits for it."""
    slot = stack.busy_slot(rng)
    stack.control.processes[stack.worker_names[slot]].terminate()
    stack.start_worker(slot, env={"AWS_SECRET_ACCESS_KEY": "rotated-away"})
    time.sleep(rng.uniform(4.0, 10.0))  # the fault's duration
    stack.control.processes[stack.worker_names[slot]].terminate()
    stack.start_worker(slot)
    return f"worker slot {slot} ran with a rotated-away storage secret for a while"


def _ensemble_data(stack: ChaosStack) -> list[Path]:
    return [service.state_dir / "zookeeper" / "version-2" for service in stack.ensemble.services]


def zookeeper_wiped(stack: ChaosStack, rng: random.Random) -> str:
    """Every server restarts with an empty data directory: fresh sessions, the configs synced
    again, the running attempts adopted."""
    stack.ensemble.stop()
    for data in _ensemble_data(stack):
        shutil.rmtree(data, ignore_errors=True)
    stack.checker.data_lost()
    stack.ensemble.start()
    stack.ensemble.wait_serving()
    return "wiped the data of all three ZooKeeper servers"


def zookeeper_server_wiped(stack: ChaosStack, rng: random.Random) -> str:
    member = _member_down(stack, rng, lambda member: shutil.rmtree(
        _ensemble_data(stack)[member], ignore_errors=True))
    return f"wiped the data of ZooKeeper server {member + 1}"


def zookeeper_rolled_back(stack: ChaosStack, rng: random.Random) -> str:
    """A copy of the data is taken, a job moves on (a new attempt), and the ensemble is then
    restored from the copy: statuses name older attempts than Flink runs."""
    stack.ensemble.stop()
    copies = []
    for data in _ensemble_data(stack):
        copy = data.with_name("version-2.backup")
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(data, copy)
        copies.append((copy, data))
    stack.ensemble.start()
    stack.ensemble.wait_serving()
    moved = _cancel_behind_their_backs(stack, rng)
    stack.rest_proxy.heal()
    if moved is not None:  # its restart, once the workers see the cancellation
        name, attempt, _ = moved
        wait_for(lambda: any(attempt_of(name, j["id"]) == attempt + 1 and j["status"] == "RUNNING"
                             for j in httpx.get(f"{stack.real_rest_url}/jobs", timeout=5)
                             .json().get("jobs", [])), 60)
    stack.ensemble.stop()
    for copy, data in copies:
        shutil.rmtree(data, ignore_errors=True)
        copy.rename(data)
    stack.checker.data_lost()
    stack.ensemble.start()
    stack.ensemble.wait_serving()
    what = f"{moved[0]} moved to attempt {moved[1] + 1} since" if moved else "nothing moved"
    return f"restored ZooKeeper from an older copy of its data ({what})"


def slow_rest(stack: ChaosStack, rng: random.Random) -> str:
    stack.rest_proxy.delay = SLOW_REST_DELAY
    time.sleep(rng.uniform(3.0, 10.0))
    stack.rest_proxy.delay = 0.0
    return f"Flink REST slowed by {SLOW_REST_DELAY:g} s a chunk"


def lying_push(stack: ChaosStack, rng: random.Random) -> str:
    """What a status listener pushes is not trusted: for a few seconds (longer than a worker
    looks at an unconfirmed push) ZooKeeper says a running job's attempt FAILED, or holds
    junk, or another job's id, while Flink's REST API says the attempt runs."""
    name, other = rng.sample(stack.jobs, 2)
    lie = rng.choice(["its attempt FAILED", "junk", "another job's attempt FAILED"])
    with store_on(stack.ensemble.hosts, stack.control.root) as store:
        current = store.status(name)[0].flink_job_id or flink_job_id(name, 1)
        named = current if lie == "its attempt FAILED" else flink_job_id(other, 1)
        data = b"\x00not json" if lie == "junk" else json.dumps(
            {"jobId": named, "from": "RUNNING", "to": "FAILED",
             "time": int(time.time() * 1000), "cause": "forged by the chaos run",
             "sequence": rng.randrange(1 << 30)}).encode()
        store.register_push(name)
        store.zk.set(store.events_path(name), data)
        time.sleep(rng.uniform(3.0, 6.0))  # the fault's duration
    return f"a push that lies about {name}: {lie}"


def broken_generation(stack: ChaosStack, rng: random.Random) -> str:
    """A push whose program cannot start (its entry class does not exist) or fails on every
    record; once the job rolled back (or, with no stable generation yet, failed), a fixed
    generation is pushed."""
    name = rng.choice(stack.jobs)
    marker = stack.workdir / f"fail-always-{name}"
    marker.touch()
    broken: dict[str, object] = rng.choice([
        {"entry_class": "dev.flinksched.examples.NoSuchJob"},
        {"args": ["--fail-always-marker", str(marker)]}])
    stack.pushes += 1
    stack.write_job(name, **broken)
    deadline = time.monotonic() + BROKEN_WAIT
    outcome = f"not rolled back within {BROKEN_WAIT:g}s"
    with store_on(stack.ensemble.hosts, stack.control.root) as store:
        while time.monotonic() < deadline:
            status = store.status(name)[0]
            if status.phase == Phase.ROLLED_BACK:
                outcome = "rolled back"
                break
            if status.phase in (Phase.SUBMIT_FAILED, Phase.CRASH_LOOP, Phase.ROLLBACK_FAILED):
                outcome = f"{status.phase} (no generation was stable yet)"
                break
            time.sleep(0.2)  # polling the job's status, bounded by the deadline
    marker.unlink()
    stack.write_job(name, args=["--keys", str(8 + stack.pushes)])
    kind = "entry class missing" if "entry_class" in broken else "fails on every record"
    return f"a broken generation of {name} pushed ({kind}): {outcome}; then a fixed one"


FAULTS: dict[str, Fault] = {
    "leader SIGKILL": leader_sigkill,
    "worker SIGKILL": worker_sigkill,
    "worker SIGTERM": worker_sigterm,
    "ZooKeeper restart": zookeeper_restart,
    "ZooKeeper server loss (1 of 3)": zookeeper_server_loss,
    "worker partitioned from ZooKeeper": worker_partition,
    "ZooKeeper sessions of busy workers expired": sessions_expired,
    "JobManager SIGKILL + restart (Flink forgets every attempt)": jobmanager_restart,
    "slow Flink REST": slow_rest,
    "newest checkpoint broken": broken_newest_checkpoint,
    "last attempt's checkpoint directory deleted": checkpoint_dir_deleted,
    "ZooKeeper data wiped (all servers)": zookeeper_wiped,
    "ZooKeeper data wiped (one server)": zookeeper_server_wiped,
    "ZooKeeper restored from an older copy": zookeeper_rolled_back,
    "Flink status push that lies": lying_push,
    "S3 server SIGKILL + restart": s3_server_restart,
    "Flink's S3 traffic slowed": s3_slowed,
    "newest checkpoint's _metadata deleted in the bucket": s3_newest_metadata_deleted,
    "storage credentials rotated under a worker": s3_credentials_rotated,
    "a broken generation pushed": broken_generation,
}


def schedule(count: int, rng: random.Random) -> list[str]:
    """`count` faults in random order, the kinds as evenly as count allows (200 faults: ten
    of each of the twenty kinds)."""
    kinds = list(FAULTS)
    chosen = kinds * (count // len(kinds)) + rng.sample(kinds, count % len(kinds))
    rng.shuffle(chosen)
    return chosen


def run(stack: ChaosStack, faults: int, seed: int,
        progress: Callable[[str], None] = print,
        after_fault: Callable[[Report], None] = lambda report: None) -> Report:
    """Inject `faults` faults; `after_fault` sees the report so far after each one."""
    rng = random.Random(seed)
    report = Report()
    stack.checker.start()
    first = _wait_recovered(stack, time.monotonic(), 180.0)
    if first is None:
        raise AssertionError(f"the jobs never all ran before the faults: {stack.checker.unhealthy}")
    for number, kind in enumerate(schedule(faults, rng), start=1):
        time.sleep(rng.uniform(0.0, 3.0))  # a random moment: part of the fault model
        injected = time.monotonic()
        detail = FAULTS[kind](stack, rng)
        healed = time.monotonic()
        recovered = _wait_recovered(stack, healed, RECOVERY_BOUND)
        seconds = None if recovered is None else max(0.0, recovered - healed)
        disrupted = None if recovered is None else max(0.0, recovered - injected)
        report.recoveries.append(Recovery(kind, seconds, disrupted, detail))
        progress(f"fault {number}/{faults}: {detail}: " + (
            f"all jobs healthy {seconds:.1f}s after it healed" if seconds is not None else
            f"NOT RECOVERED within {RECOVERY_BOUND:g}s: {stack.checker.unhealthy}"))
        report.findings = stack.checker.found
        after_fault(report)
    # The last restarts' restore points are judged once each new attempt has checkpointed.
    deadline = time.monotonic() + 60
    while stack.checker.unjudged_restores() and time.monotonic() < deadline:
        time.sleep(0.2)  # polling the checker's verdict
    report.findings = stack.checker.found
    report.log_problems = stack.log_problems()
    return report


def _wait_recovered(stack: ChaosStack, healed: float, bound: float) -> float | None:
    deadline = healed + bound
    while time.monotonic() < deadline:
        recovered = stack.checker.recovered_at(healed)
        if recovered is not None:
            return recovered
        time.sleep(0.1)  # polling the checker's verdict, not waiting for a state
    return None
