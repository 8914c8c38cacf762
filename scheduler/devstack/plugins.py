"""A Flink plugins dir (FLINK_PLUGINS_DIR) with the distribution's own plugins and Flink's S3
filesystems from Maven Central: flink-s3-fs-presto (checkpoints and savepoints, Flink's
recommendation; `s3://` and `s3p://`) and flink-s3-fs-hadoop (for sinks; `s3a://`), each in
a directory of its own as Flink loads plugins.

Maven Central serves these plugins of the 1.20 line at 1.20.0 only (1.20.1 to 1.20.3 are
not there): a 1.20.x cluster loads the 1.20.0 plugins, whose Flink interfaces its patch
releases keep. The 2.x lines have theirs at the cluster's own version.
"""

from __future__ import annotations

from pathlib import Path

from common.flink.versions import parse_version
from scheduler.devstack.maven import artifact

S3_PLUGINS = ("flink-s3-fs-presto", "flink-s3-fs-hadoop")
PUBLISHED = {(1, 20): "1.20.0"}  # a line whose plugins are published at one release only


def plugin_version(flink_version: str) -> str:
    parsed = parse_version(flink_version)
    return PUBLISHED.get((parsed.major, parsed.minor), flink_version)


def s3_plugin_jars(flink_version: str) -> list[Path]:
    version = plugin_version(flink_version)
    return [artifact("org.apache.flink", name, version) for name in S3_PLUGINS]


def link_plugins_dir(home: Path, plugins_dir: Path, flink_version: str) -> Path:
    """The distribution's plugins and the S3 filesystems, linked, not copied; links already
    right are left alone (a running JobManager may be reading them)."""
    plugins_dir.mkdir(parents=True, exist_ok=True)
    wanted = {entry.name: entry.resolve() for entry in sorted((home / "plugins").iterdir())
              if entry.is_dir()}
    for jar in s3_plugin_jars(flink_version):
        directory = plugins_dir / jar.name.rsplit("-", 1)[0].removeprefix("flink-")
        directory.mkdir(exist_ok=True)
        link = directory / jar.name
        if not link.is_symlink() or link.resolve() != jar.resolve():
            link.unlink(missing_ok=True)
            link.symlink_to(jar)
        wanted.pop(directory.name, None)
    for name, target in wanted.items():
        link = plugins_dir / name
        if not link.is_symlink() or link.resolve() != target:
            if link.is_symlink():
                link.unlink()
            link.symlink_to(target)
    return plugins_dir
