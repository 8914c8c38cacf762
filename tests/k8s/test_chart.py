"""The Helm chart, rendered by Helm's own engine (helm-python-sdk): lint, every object loads
into the kubernetes client's models, the schema rejects bad values, the RBAC Role is what the
runtime calls, and the worker Pods the runtime makes from the rendered template."""

from __future__ import annotations

import copy
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from kubernetes import client
from packaging.requirements import Requirement

from scheduler.cli.main import cli
from scheduler.devstack import prometheus
from scheduler.master.pool.kubernetes import RBAC_RULES, KubernetesRuntime
from tests.k8s.conftest import NAMESPACE, Emulator, expected_pod, master_deployment, pods
from worker.targets.application.kubernetes import RBAC_RULES as APP_RBAC_RULES

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "flinksched"
RELEASE = "fs"
REQUIRED = {"gitSync": {"repo": "https://git.example.com/acme/flink-jobs.git"}}
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "portal-off": {"portal": {"enabled": False}},
    "portal-ingress": {"portal": {"ingress": {"enabled": True, "host": "flink.example.com",
                                              "className": "nginx"}}},
    "portal-links": {"portal": {"links": {"logs": "https://logs.example/?job=$job&a=$attempt"},
                                "actions": {"enabled": True, "trustedHeader": "X-Forwarded-User",
                                            "tokensSecret": "portal-tokens"}}},
    "ha-off-git-mode": {"master": {"replicas": 1, "extraArgs": [
        "--config-git=https://git.example.com/acme/flink-jobs.git", "--branch=main"]},
        "gitSync": {"enabled": False}},
    "service-monitor-and-rules": {"metrics": {"serviceMonitor": {"enabled": True},
                                              "prometheusRule": {"enabled": True}}},
    "network-policy": {"networkPolicy": {"enabled": True, "metricsFrom": [
        {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]}},
    "git-sync-ssh": {"gitSync": {"repo": "git@git.example.com:acme/flink-jobs.git",
                                 "subPath": "jobs", "auth": {"type": "ssh",
                                                             "existingSecret": "git-ssh"}}},
    "token-and-zk-auth-and-worker-shape": {
        "gitSync": {"auth": {"type": "token", "existingSecret": "git-token"}},
        "zookeeper": {"auth": {"existingSecret": "zk-digest", "readIdentityKey": "reader"}},
        "worker": {"nodeSelector": {"pool": "flink"}, "priorityClassName": "high",
                   "allowedJars": ["/opt/flink/usrlib", "https://artifacts.example.com/flink/"],
                   "tolerations": [{"key": "flink", "operator": "Exists"}],
                   "affinity": {"nodeAffinity": {}},
                   "env": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
                   "envFrom": [{"secretRef": {"name": "flink-rest-credentials"}}]},
    },
    "application-clusters": {"applicationClusters": {"enabled": True}},
}
CRDS = {"ServiceMonitor", "PrometheusRule"}


def merged(values: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(REQUIRED)
    for key, value in values.items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(merged(values), name=RELEASE, namespace=NAMESPACE)
    documents: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if path.endswith(".yaml"):
            documents.extend(d for d in yaml.safe_load_all(text) if d)
    return documents


def one(documents: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    [found] = [d for d in documents if d["kind"] == kind
               and (name is None or d["metadata"]["name"] == name)]
    return found


def worker_template(documents: list[dict[str, Any]]) -> dict[str, Any]:
    configmap = one(documents, "ConfigMap", f"{RELEASE}-flinksched-worker-template")
    template: dict[str, Any] = yaml.safe_load(configmap["data"]["worker-pod.yaml"])
    return template


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(values) for name, values in VALUE_SETS.items()}


def test_the_chart_lints_clean() -> None:
    for values in VALUE_SETS.values():
        report = helm.lint(str(CHART), merged(values), strict=True)
        assert report["errors"] == [], report
        assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_every_rendered_object_loads_into_the_kubernetes_models(
    rendered: dict[str, list[dict[str, Any]]], value_set: str
) -> None:
    api = client.ApiClient()
    documents = rendered[value_set]
    kinds = [d["kind"] for d in documents]
    for document in documents:
        if document["kind"] in CRDS:
            continue
        model = getattr(client, f"V1{document['kind']}")
        loaded = api._ApiClient__deserialize(document, model.__name__)  # type: ignore[attr-defined]
        # A field the model does not know (a typo) would be dropped: the round trip shows it.
        assert api.sanitize_for_serialization(loaded) == document, document["kind"]
    template = worker_template(documents)
    pod = api._ApiClient__deserialize({"apiVersion": "v1", "kind": "Pod", **template},  # type: ignore[attr-defined]
                                      "V1Pod")
    assert pod.spec.containers[0].name == "worker"
    assert ("PodDisruptionBudget" in kinds) == (value_set != "ha-off-git-mode")
    assert ("NetworkPolicy" in kinds) == (value_set == "network-policy")
    assert ("ServiceMonitor" in kinds) == ("PrometheusRule" in kinds) == (
        value_set == "service-monitor-and-rules")


def test_value_sets_shape_what_they_name(rendered: dict[str, list[dict[str, Any]]]) -> None:
    master = one(rendered["defaults"], "Deployment")
    assert master["spec"]["replicas"] == 2
    assert "podAntiAffinity" in master["spec"]["template"]["spec"]["affinity"]
    assert one(rendered["ha-off-git-mode"], "Deployment")["spec"]["replicas"] == 1
    args = {name: one(rendered[name], "Deployment")["spec"]["template"]["spec"]["containers"][0]
            ["args"] for name in ("defaults", "portal-off", "portal-links")}
    assert "--no-portal" in args["portal-off"] and "--no-portal" not in args["defaults"]
    assert "--portal-link=logs=https://logs.example/?job=$job&a=$attempt" in args["portal-links"]
    assert {"--portal-actions", "--portal-trusted-header=X-Forwarded-User",
            "--portal-tokens-file=/etc/flinksched-portal/tokens"} <= set(args["portal-links"])
    assert "--portal-actions" not in args["defaults"]
    portal = one(rendered["defaults"], "Service", "fs-flinksched-portal")["spec"]
    assert portal["ports"] == [{"name": "http", "port": 80, "targetPort": "metrics"}]
    assert not [d for d in rendered["portal-off"] if d["metadata"]["name"].endswith("-portal")]
    ingress = one(rendered["portal-ingress"], "Ingress")["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["rules"][0]["host"] == "flink.example.com"
    assert ingress["rules"][0]["http"]["paths"][0]["backend"]["service"] == {
        "name": "fs-flinksched-portal", "port": {"name": "http"}}
    tokens = one(rendered["portal-links"], "Deployment")["spec"]["template"]["spec"]
    assert {"name": "portal-tokens", "secret": {"secretName": "portal-tokens",
                                                "defaultMode": 0o400}} in tokens["volumes"]
    solo = one(rendered["ha-off-git-mode"], "Deployment")["spec"]["template"]["spec"]
    assert "affinity" not in solo
    assert [c["name"] for c in solo["containers"]] == ["master"]  # no git-sync sidecar
    assert "--config-dir=/config" in solo["containers"][0]["args"]
    assert {"name": "config", "mountPath": "/config"} in solo["containers"][0]["volumeMounts"]

    ssh = one(rendered["git-sync-ssh"], "Deployment")["spec"]["template"]["spec"]
    sync = next(c for c in ssh["containers"] if c["name"] == "git-sync")
    assert "--ssh-key-file=/etc/git-secret/ssh" in sync["args"]
    assert any(v.get("secret", {}).get("secretName") == "git-ssh" for v in ssh["volumes"])
    master_args = ssh["containers"][0]["args"]
    assert "--config-dir=/git/current/jobs" in master_args

    token = one(rendered["token-and-zk-auth-and-worker-shape"], "Deployment")
    sync = next(c for c in token["spec"]["template"]["spec"]["containers"]
                if c["name"] == "git-sync")
    assert "--password-file=/etc/git-secret/token" in sync["args"]
    worker = worker_template(rendered["token-and-zk-auth-and-worker-shape"])["spec"][
        "containers"][0]
    for container in (token["spec"]["template"]["spec"]["containers"][0], worker):
        secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]
                   if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]}
        assert secrets["FLINKSCHED_ZK_AUTH"] == {"name": "zk-digest", "key": "auth"}
        assert secrets["FLINKSCHED_ZK_READ_IDENTITY"] == {"name": "zk-digest", "key": "reader"}
    assert ("--allowed-jars=/opt/flink/usrlib,https://artifacts.example.com/flink/"
            in worker["args"])
    assert not any(a.startswith("--allowed-jars") for a in worker_template(
        rendered["defaults"])["spec"]["containers"][0]["args"]), "no allow-list unless set"

    monitor = one(rendered["service-monitor-and-rules"], "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = {d["metadata"]["name"]: d for d in rendered["service-monitor-and-rules"]
                if d["kind"] == "Service"}
    scraped = {name for name, s in services.items()
               if selector.items() <= s["metadata"]["labels"].items()}
    assert scraped == {f"{RELEASE}-flinksched-master-metrics",
                       f"{RELEASE}-flinksched-worker-metrics"}  # not the portal's

    policy = one(rendered["network-policy"], "NetworkPolicy")
    assert policy["spec"]["ingress"][0]["from"] == VALUE_SETS["network-policy"][
        "networkPolicy"]["metricsFrom"]


def test_the_prometheus_rule_is_the_plain_rules_file(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    rule = one(rendered["service-monitor-and-rules"], "PrometheusRule")
    plain = yaml.safe_load(prometheus.RULES.read_text())
    assert rule["spec"] == plain
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    _, promtool = prometheus.ensure_prometheus()
    checked = subprocess.run([str(promtool), "check", "rules", str(tmp_path / "rules.yaml")],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    based = render({"metrics": {"prometheusRule": {"enabled": True,
                                                   "runbookBaseUrl": "https://docs.example/"}}})
    urls = {r["annotations"]["runbook_url"] for g in one(based, "PrometheusRule")["spec"]["groups"]
            for r in g["rules"]}
    assert all(u.startswith("https://docs.example/docs/runbooks.md#") for u in urls)


@pytest.mark.parametrize(("values", "complaint"), [
    ({"worker": {"slots": 0}}, "/worker/slots"),
    ({"zookeeper": {"hosts": "zk1"}}, "/zookeeper/hosts"),
    ({"gitSync": {"auth": {"type": "kerberos"}}}, "/gitSync/auth/type"),
    ({"master": {"replicaz": 2}}, "additional properties 'replicaz' not allowed"),
    ({"gitSync": {"repo": ""}}, "/gitSync/repo"),
    ({"gitSync": {"auth": {"type": "ssh"}}}, "/gitSync/auth/existingSecret"),
    ({"master": {"maxRemovalShare": 2}}, "/master/maxRemovalShare"),
])
def test_the_schema_rejects_bad_values_naming_them(values: dict[str, Any], complaint: str) -> None:
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(chart.merge_values(merged({})))
        with pytest.raises(helm.HelmValuesError) as failure:
            chart.validate_schema(chart.merge_values(merged(values)))
    assert complaint in str(failure.value)


def test_the_role_grants_exactly_what_the_runtime_calls(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    documents = rendered["defaults"]
    role = one(documents, "Role")
    rules = [{k: v for k, v in rule.items() if k != "resourceNames"} for rule in role["rules"]]
    assert rules == RBAC_RULES
    master = one(documents, "Deployment")
    env = {e["name"]: e.get("value") for e in master["spec"]["template"]["spec"]["containers"][0]
           ["env"]}
    [named] = [r["resourceNames"] for r in role["rules"] if "resourceNames" in r]
    assert named == [env["FLINKSCHED_OWNER_DEPLOYMENT"]] == [master["metadata"]["name"]]
    binding = one(documents, "RoleBinding")
    assert binding["subjects"][0]["name"] == master["spec"]["template"]["spec"][
        "serviceAccountName"] == one(documents, "ServiceAccount")["metadata"]["name"]


def test_workers_of_own_clusters_get_exactly_the_verbs_their_launcher_calls(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    assert [d for d in rendered["defaults"] if d["metadata"]["name"].endswith("-worker")
            and d["kind"] in ("Role", "RoleBinding", "ServiceAccount")] == []
    assert worker_template(rendered["defaults"])["spec"][
        "automountServiceAccountToken"] is False, "no API access unless it is needed"
    documents = rendered["application-clusters"]
    name = f"{RELEASE}-flinksched-worker"
    role = one(documents, "Role", name)
    assert role["rules"] == APP_RBAC_RULES
    binding = one(documents, "RoleBinding", name)
    assert binding["roleRef"]["name"] == name
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name,
                                    "namespace": NAMESPACE}]
    assert one(documents, "ServiceAccount", name)
    pod = worker_template(documents)["spec"]
    assert pod["serviceAccountName"] == name and pod["automountServiceAccountToken"] is True
    container = pod["containers"][0]
    assert "--application-runtime=kubernetes" in container["args"]
    assert {"name": "FLINKSCHED_NAMESPACE", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.namespace"}}} in container["env"]


def test_the_rendered_arguments_are_ones_the_cli_accepts(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    mounted_template = tmp_path / "worker-pod.yaml"  # the CLI checks that the file exists
    mounted_template.write_text("{}")
    mounted_tokens = tmp_path / "tokens"
    mounted_tokens.write_text("alice:a-token-of-sixteen-or-more\n")
    for documents in rendered.values():
        master = one(documents, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        worker = worker_template(documents)["spec"]["containers"][0]
        master_args = [a.replace("/etc/flinksched/worker-pod.yaml", str(mounted_template))
                       .replace("/etc/flinksched-portal/tokens", str(mounted_tokens))
                       for a in master["args"]]
        for args in (master_args, worker["args"]):
            command = next(a for a in args if not a.startswith("--"))
            split = args.index(command)
            context = cli.make_context("flinksched", list(args[:split]))
            subcommand = cli.get_command(context, command)
            assert subcommand is not None, command
            subcommand.make_context(command, list(args[split + 1:]), parent=context)
        mounted = {m["mountPath"]: m["name"] for m in master["volumeMounts"]}
        assert "--worker-template=/etc/flinksched/worker-pod.yaml" in master["args"]
        assert mounted["/etc/flinksched"] == "worker-template"


@pytest.fixture
def chart_api(emulator: Emulator) -> Iterator[client.ApiClient]:
    configuration = client.Configuration()
    configuration.host = emulator.url
    api = client.ApiClient(configuration)
    master_deployment(api, f"{RELEASE}-flinksched-master")
    try:
        yield api
    finally:
        api.close()


def test_worker_pods_are_the_rendered_template_plus_the_per_worker_fields(
    rendered: dict[str, list[dict[str, Any]]], chart_api: client.ApiClient
) -> None:
    documents = rendered["token-and-zk-auth-and-worker-shape"]
    template = worker_template(documents)
    master = one(documents, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    pool = re.search(r"--pool=(\S+)", " ".join(master["args"]))
    assert pool is not None
    runtime = KubernetesRuntime(chart_api, NAMESPACE, template, pool.group(1),
                                f"{RELEASE}-flinksched-master")
    assert runtime.reconcile(2, {}, set()).count("created pod") == 2
    created = pods(chart_api)
    assert len(created) == 2
    for name, pod in created.items():
        assert pod == expected_pod(template, name, "flinksched", f"{RELEASE}-flinksched-master")
        spec = pod["spec"]
        assert spec["nodeSelector"] == {"pool": "flink"} and spec["priorityClassName"] == "high"
        assert {"secretRef": {"name": "flink-rest-credentials"}} in spec["containers"][0][
            "envFrom"]
    service = one(documents, "Service", f"{RELEASE}-flinksched-worker-metrics")
    assert service["spec"]["selector"].items() <= next(iter(created.values()))["metadata"][
        "labels"].items()


def test_the_image_is_non_root_and_installs_the_locked_dependencies() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim", dockerfile, re.M)
    assert re.search(r"^USER 10001", dockerfile, re.M)
    assert 'ENTRYPOINT ["flinksched"]' in dockerfile
    assert "--no-index" in dockerfile and "requirements.lock" in dockerfile
    assert "flink-dist" not in dockerfile and "apache-flink" not in dockerfile
    locked = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            locked[name.lower().replace("_", "-")] = version
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for dependency in project["dependencies"]:
        requirement = Requirement(dependency)
        name = requirement.name.lower().replace("_", "-")
        assert name in locked, f"{name} is not in requirements.lock"
        assert requirement.specifier.contains(locked[name]), (dependency, locked[name])
