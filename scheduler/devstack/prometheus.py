"""A real Prometheus for the local stack: Debian's `prometheus` package (server and promtool),
scraping the master and workers and evaluating flinksched's alert rules."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ruamel.yaml import YAML

from common.errors import DevStackError
from scheduler.devstack.debian import install_debian_packages

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "monitoring" / "flinksched.rules.yaml"
RULE_TESTS = REPO / "monitoring" / "flinksched.rules.test.yaml"
DASHBOARD = REPO / "monitoring" / "grafana-dashboard.json"


def ensure_prometheus() -> tuple[Path, Path]:
    """The `prometheus` and `promtool` binaries, installing Debian's package when missing
    and we are root."""
    found = shutil.which("prometheus"), shutil.which("promtool")
    if all(found):
        return Path(str(found[0])), Path(str(found[1]))
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise DevStackError("Prometheus is not installed: run `sudo apt-get install prometheus` "
                            "(it brings promtool too)")
    install_debian_packages(["prometheus"])
    found = shutil.which("prometheus"), shutil.which("promtool")
    if not all(found):
        raise DevStackError("installed the prometheus package but prometheus or promtool is "
                            "still missing from PATH")
    return Path(str(found[0])), Path(str(found[1]))


def write_config(state_dir: Path, masters: list[str], workers: list[str],
                 rules: Path = RULES, interval: str = "5s") -> Path:
    """prometheus.yml scraping the masters and workers (host:port) with flinksched's rules."""
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {"job_name": "flinksched-master", "static_configs": [{"targets": masters}]},
            {"job_name": "flinksched-worker", "static_configs": [{"targets": workers}]},
        ],
    }
    path = state_dir / "prometheus.yml"
    with path.open("w") as out:
        YAML(typ="safe", pure=True).dump(config, out)
    return path


def server_argv(binary: Path, config: Path, state_dir: Path, port: int) -> list[str]:
    return [str(binary), f"--config.file={config}",
            f"--storage.tsdb.path={state_dir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1d",
            "--log.level=warn"]
