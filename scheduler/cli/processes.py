"""The two long-running processes, `flinksched master` and `flinksched worker`: the place
that wires each from its parts (the composition root), so that neither the master's package
nor the worker's knows the other.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from common.errors import FlinkschedError
from common.settings import Timings, ZkSettings
from common.store.connect import close, keep_session
from common.store.zookeeper import Store
from common.telemetry.endpoints import Endpoints, all_of
from scheduler.cli.context import Context, Exit

if TYPE_CHECKING:
    from worker.programs.jars import JarCache
    from worker.targets.application.cluster import Launcher

logger = logging.getLogger(__name__)


def _serve(host: str, port: int) -> Endpoints | None:
    """/metrics, /healthz and /readyz; port 0 turns them off."""
    if not port:
        return None
    try:
        return Endpoints(host, port)
    except OSError as exc:
        click.echo(f"flinksched: cannot serve on {host}:{port}: {exc}", err=True)
        sys.exit(Exit.UNREACHABLE)


STOP_DEADLINE = 9.0  # SIGTERM ends a master or worker within this long, ZooKeeper or not


def _wait_for_signal() -> threading.Event:
    stop = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        if not stop.is_set():
            watchdog = threading.Timer(STOP_DEADLINE, _stop_overdue)
            watchdog.daemon = True
            watchdog.start()
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop


def _stop_overdue() -> None:
    """The orderly stop hung (a call that cannot finish): leave anyway. The Flink jobs run on;
    ownership nodes go with the session."""
    logger.error("not stopped within %gs of the signal; exiting without finishing", STOP_DEADLINE)
    logging.shutdown()
    os._exit(1)


def _unblock(store: Store) -> None:
    """Without a ZooKeeper connection every call would wait for one: close the client first,
    so that what is left to do fails at once instead of holding the process."""
    if not store.connected:
        logger.warning("ZooKeeper is not connected: stopping without handing jobs back; they "
                       "move when the session times out")
        close(store)


def _check_timings(timings: Timings) -> None:
    problems = timings.problems()
    if problems:
        for problem in problems:
            click.echo(f"flinksched: contradictory timing settings: {problem}", err=True)
        sys.exit(Exit.UNREACHABLE)


@click.command()
@click.option("--config-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory of job-config YAML: a git checkout kept fresh by a git-sync "
                   "sidecar, a plain directory, or where --config-git checks out.")
@click.option("--config-git", default=None, metavar="URL",
              help="Built-in git mode: clone URL into --config-dir and pull it periodically.")
@click.option("--branch", default="main", show_default=True, help="Branch for --config-git.")
@click.option("--git-interval", type=float, default=30.0, show_default=True,
              help="Seconds between pulls in --config-git mode.")
@click.option("--removal-grace", type=float, default=600.0, show_default=True,
              help="Seconds a removed job's final status stays before its metadata is deleted.")
@click.option("--max-removal-share", type=float, default=0.5, show_default=True,
              help="Refuse to remove more than this share of the jobs in one sync unless "
                   "`flinksched allow-removal` says so.")
@click.option("--id", "master_id", default=None, help="Master id (default: host-random).")
@click.option("--cycle-interval", type=float, default=1.0, show_default=True)
@click.option("--metrics-port", type=int, default=9250, show_default=True,
              help="Port for the portal, /metrics, /healthz and /readyz; 0 turns them off.")
@click.option("--metrics-host", default="0.0.0.0", show_default=True,
              help="Address /metrics, /healthz and /readyz listen on.")
@click.option("--runtime", type=click.Choice(["static", "local", "kubernetes"]),
              default="static", show_default=True,
              help="Who starts workers: nobody (static), this master as processes (local), "
                   "or this master as Pods (kubernetes).")
@click.option("--spare-workers", type=int, default=1, show_default=True,
              help="Idle workers kept warm so that reassignment never waits for a start.")
@click.option("--worker-slots", type=int, default=1, show_default=True,
              help="Slots of the workers this master starts.")
@click.option("--worker-log-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".flinksched-workers"), show_default=True,
              help="local runtime: where started workers log.")
@click.option("--namespace", envvar="POD_NAMESPACE", default="default", show_default=True,
              help="kubernetes runtime: namespace of the worker Pods (env POD_NAMESPACE).")
@click.option("--worker-template", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="kubernetes runtime: the worker Pod template (YAML).")
@click.option("--owner-deployment", envvar="FLINKSCHED_OWNER_DEPLOYMENT", default=None,
              help="kubernetes runtime: the master's Deployment, owner of the worker Pods.")
@click.option("--pool", default="flinksched", show_default=True,
              help="kubernetes runtime: pool label and pod name prefix of the workers.")
@click.option("--portal/--no-portal", default=True, show_default=True,
              help="Serve the read-only web portal (the fleet, each job's page) on the "
                   "metrics port.")
@click.option("--portal-link", "portal_links", multiple=True, metavar="LABEL=URL",
              help="A link on each job's portal page, $job, $cluster and $attempt filled in "
                   "(metrics, logs); repeat for more.")
@click.option("--portal-actions", is_flag=True,
              help="Let authenticated people restart, savepoint, suspend and resume jobs from "
                   "the portal (needs --portal-tokens-file or --portal-trusted-header).")
@click.option("--portal-tokens-file", type=click.Path(exists=True, dir_okay=False,
                                                      path_type=Path), default=None,
              envvar="FLINKSCHED_PORTAL_TOKENS_FILE",
              help="NAME:TOKEN lines: bearer tokens of the people who may act.")
@click.option("--portal-trusted-header", default="", metavar="HEADER",
              help="A header an authenticating proxy sets to the person's name (only where "
                   "nothing but the proxy reaches the portal), e.g. X-Forwarded-User.")
@click.pass_obj
def master(obj: Context, config_dir: Path, config_git: str | None, branch: str,
           git_interval: float, removal_grace: float, max_removal_share: float,
           master_id: str | None, cycle_interval: float, metrics_port: int, metrics_host: str,
           runtime: str,
           spare_workers: int, worker_slots: int,
           worker_log_dir: Path, namespace: str, worker_template: Path | None,
           owner_deployment: str | None, pool: str, portal: bool,
           portal_links: tuple[str, ...], portal_actions: bool,
           portal_tokens_file: Path | None, portal_trusted_header: str) -> None:
    """Run a master: leader election, config sync, assignment and the worker pool.

    \b
    Examples:
      flinksched --zk zk1:2181,zk2:2181 master --config-dir /srv/flink-jobs
      flinksched master --config-dir configs --runtime local --spare-workers 1
      flinksched master --config-dir /var/lib/flinksched/configs \
          --config-git git@github.com:acme/flink-jobs.git --branch main
    """
    from scheduler.master.changes import RemovalGuard
    from scheduler.master.gitsource import GitMirror
    from scheduler.master.process import Master

    if config_git is None and not config_dir.is_dir():
        raise click.BadParameter(f"{config_dir} is not a directory", param_hint="--config-dir")
    _check_timings(Timings(session_timeout=obj.settings.session_timeout,
                           cycle_interval=cycle_interval))
    links = _portal_links(portal_links)
    policy = _portal_policy(portal_actions, portal_tokens_file, portal_trusted_header)
    stop = _wait_for_signal()
    store = obj.connect(quiet=False)
    endpoints = _serve(metrics_host, metrics_port)
    master_id = master_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
    if endpoints is not None and portal:
        from scheduler.portal.app import portal_app
        from scheduler.portal.reading import PortalReader

        reader = PortalReader(store)
        reader.warm()
        endpoints.mount(portal_app(reader, links, master_id, policy))
    node = Master(store, master_id,
                  config_dir, cycle_interval, worker_slots=worker_slots,
                  spare_workers=spare_workers, removal=RemovalGuard(max_removal_share),
                  removal_grace=removal_grace, git_interval=git_interval,
                  git=GitMirror(config_git, branch, config_dir) if config_git else None,
                  manage_heap=True,  # this process is the master alone
                  supervision_grace=obj.settings.session_timeout)
    try:
        node.runtime = _runtime(runtime, obj.settings, node, worker_slots, worker_log_dir,
                                namespace, worker_template, owner_deployment, pool)
    except FlinkschedError as exc:
        click.echo(f"flinksched: {exc}", err=True)
        sys.exit(Exit.UNREACHABLE)
    keeper = keep_session(store, obj.settings)
    if endpoints is not None:
        endpoints.live, endpoints.ready = all_of(node.liveness, keeper.health), node.readiness
    node.start()
    stop.wait()
    keeper.stop()
    _unblock(store)
    node.stop()
    close(store)


def _portal_policy(enabled: bool, tokens_file: Path | None, header: str) -> Any:
    from scheduler.portal.actions import ActionPolicy, load_tokens

    try:
        tokens = load_tokens(tokens_file) if tokens_file else {}
    except FlinkschedError as exc:
        raise click.BadParameter(str(exc), param_hint="--portal-tokens-file") from None
    policy = ActionPolicy(enabled=enabled, tokens=tokens, trusted_header=header.lower())
    for problem in policy.problems():
        raise click.UsageError(problem)
    return policy


def _portal_links(given: tuple[str, ...]) -> dict[str, str]:
    links = {}
    for text in given:
        label, equals, pattern = text.partition("=")
        if not equals or not label.strip() or not pattern.strip():
            raise click.BadParameter(f"{text!r} is not LABEL=URL", param_hint="--portal-link")
        links[label.strip()] = pattern.strip()
    return links


def _runtime(kind: str, settings: ZkSettings, node: Any, slots: int, log_dir: Path,
             namespace: str, template: Path | None, owner: str | None, pool: str) -> Any:
    from scheduler.master.pool.runtime import StaticRuntime

    if kind == "local":
        from scheduler.master.pool.local import LocalRuntime

        argv = [sys.executable, "-m", "scheduler", "--zk", settings.hosts, "--root",
                settings.root, "--session-timeout", str(settings.session_timeout)]
        auth = {"FLINKSCHED_ZK_AUTH": settings.auth} if settings.auth else {}
        return LocalRuntime(argv, slots, log_dir, id_prefix=f"{node.id}-w", env=auth)
    if kind == "kubernetes":
        from ruamel.yaml import YAML

        from common.kube import api_client
        from scheduler.master.pool.kubernetes import KubernetesRuntime

        if template is None:
            raise FlinkschedError("--runtime kubernetes needs --worker-template")
        return KubernetesRuntime(api_client(), namespace,
                                 YAML(typ="safe").load(template.read_text()), pool, owner,
                                 on_change=lambda: node.wake("pool"))
    return StaticRuntime()


@click.command()
@click.option("--id", "worker_id", envvar="FLINKSCHED_WORKER_ID", default=None,
              help="Worker id (env FLINKSCHED_WORKER_ID; default: host-random).")
@click.option("--slots", type=int, default=1, show_default=True,
              help="How many jobs this worker supervises.")
@click.option("--metrics-port", type=int, default=0, show_default=True,
              help="Port for /metrics, /healthz and /readyz; 0 turns them off.")
@click.option("--metrics-host", default="0.0.0.0", show_default=True,
              help="Address /metrics, /healthz and /readyz listen on.")
@click.option("--allowed-jars", envvar="FLINKSCHED_ALLOWED_JARS", default="",
              metavar="PREFIX,...",
              help="Only submit jars under these locations (directories, file:// or "
                   "http(s):// prefixes, comma-separated; env FLINKSCHED_ALLOWED_JARS). "
                   "Default: any location.")
@click.option("--application-runtime", type=click.Choice(["local", "kubernetes"]),
              envvar="FLINKSCHED_APPLICATION_RUNTIME", default="local", show_default=True,
              help="Where the clusters of jobs on a cluster of their own (mode: application) "
                   "run: local processes, or Kubernetes workloads in --namespace.")
@click.option("--flink-home", "flink_homes", multiple=True, envvar="FLINKSCHED_FLINK_HOME",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A Flink distribution local application clusters start from, and Python "
                   "and SQL jobs take their driver from (the one of their cluster's Flink "
                   "line); repeat for more Flink versions (env FLINKSCHED_FLINK_HOME, "
                   "':'-separated). Its configuration is FLINK_CONF_DIR's when set, else its "
                   "conf/.")
@click.option("--applications-dir", envvar="FLINKSCHED_APPLICATIONS_DIR",
              type=click.Path(file_okay=False, path_type=Path),
              default=Path.home() / ".local" / "state" / "flinksched" / "applications",
              show_default="~/.local/state/flinksched/applications",
              help="Where local application clusters keep their logs and records.")
@click.option("--namespace", envvar="FLINKSCHED_NAMESPACE", default="default",
              show_default=True, help="Namespace of Kubernetes application clusters.")
@click.pass_obj
def worker(obj: Context, worker_id: str | None, slots: int, metrics_port: int,
           metrics_host: str, allowed_jars: str, application_runtime: str,
           flink_homes: tuple[Path, ...], applications_dir: Path, namespace: str) -> None:
    """Run a worker: own assigned jobs and keep them running in Flink.

    \b
    Example:
      flinksched --zk zk1:2181 worker --slots 4 --metrics-port 9251
    """
    from worker.process import Worker

    timings = Timings(session_timeout=obj.settings.session_timeout)
    _check_timings(timings)
    stop = _wait_for_signal()
    store = obj.connect(quiet=False)
    endpoints = _serve(metrics_host, metrics_port)
    node = Worker(store, worker_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}",
                  slots=slots, metrics_port=endpoints.port if endpoints else 0,
                  act_deadline=timings.act_deadline,
                  allowed_jars=tuple(p.strip() for p in allowed_jars.split(",") if p.strip()),
                  make_launcher=_launcher(application_runtime, flink_homes, applications_dir,
                                          namespace), flink_homes=flink_homes)
    keeper = keep_session(store, obj.settings)
    if endpoints is not None:
        endpoints.live, endpoints.ready = all_of(node.liveness, keeper.health), node.readiness

    def before_shutdown() -> None:
        keeper.stop()
        _unblock(store)

    node.run(stop, before_shutdown)
    close(store)


def _launcher(runtime: str, homes: tuple[Path, ...], applications_dir: Path,
              namespace: str) -> Callable[[JarCache], Launcher] | None:
    """How this worker starts the clusters of jobs that run on one of their own."""
    if runtime == "kubernetes":
        from common.kube import api_client
        from worker.targets.application.kubernetes import KubernetesLauncher

        client = api_client()
        return lambda jars: KubernetesLauncher(client, namespace, jars)
    if not homes:
        return None  # such jobs are refused with the reason; the others run as ever
    from worker.targets.application.local import LocalLauncher

    conf = os.environ.get("FLINK_CONF_DIR")
    return lambda jars: LocalLauncher(applications_dir, list(homes), jars,
                                      Path(conf) if conf else None)
