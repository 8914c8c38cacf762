from __future__ import annotations

import hashlib
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.httpserve import serving
from worker.clients import FlinkClients
from worker.programs.jars import JarCache, JarError, allowed


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """A directory served over real HTTP on loopback."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "app.jar").write_bytes(b"PK jar bytes")
    with serving(partial(http.server.SimpleHTTPRequestHandler, directory=str(root))) as url:
        yield url


def test_http_jar_is_downloaded_once(served: str, tmp_path: Path) -> None:
    cache = JarCache(tmp_path / "cache")
    path = cache.local_path(f"{served}/app.jar")
    assert path.read_bytes() == b"PK jar bytes"
    assert cache.local_path(f"{served}/app.jar") == path


def test_missing_jar_is_a_clear_error(served: str, tmp_path: Path) -> None:
    cache = JarCache(tmp_path / "cache")
    with pytest.raises(JarError, match="download failed"):
        cache.local_path(f"{served}/missing.jar")
    with pytest.raises(JarError, match=r"jar file:///nowhere/app.jar does not exist"):
        cache.local_path("file:///nowhere/app.jar")


def test_checksum_mismatch_is_refused(served: str, tmp_path: Path) -> None:
    class NoCluster:
        rest_url = "http://unused"

        def jars(self) -> list[dict[str, str]]:
            return []

        def upload_jar(self, path: Path, name: str) -> str:
            return f"id-{name}"

    cache = JarCache(tmp_path / "cache")
    good = hashlib.sha256(b"PK jar bytes").hexdigest()
    jar_id = cache.jar_id(NoCluster(), f"{served}/app.jar", good)  # type: ignore[arg-type]
    assert jar_id == f"id-{good[:16]}-app.jar"
    with pytest.raises(JarError, match="has SHA-256"):
        JarCache(tmp_path / "other").jar_id(
            NoCluster(), f"{served}/app.jar", "0" * 64)  # type: ignore[arg-type]
    # Uploaded already for a job whose spec had the right digest: another's is checked too.
    with pytest.raises(JarError, match=f"has SHA-256 {good}, but the spec says 0000"):
        cache.jar_id(NoCluster(), f"{served}/app.jar", "0" * 64)  # type: ignore[arg-type]


def test_allow_list_matches_whole_segments_and_resolves_dot_dot(tmp_path: Path) -> None:
    jars = tmp_path / "jars"
    prefixes = (str(jars), "https://repo.example/jars/")
    assert allowed((jars / "app.jar").as_uri(), prefixes)
    assert allowed("https://repo.example/jars/team/app.jar", prefixes)
    assert not allowed(str(tmp_path / "jars-evil" / "app.jar"), prefixes)
    assert not allowed(str(jars / ".." / "elsewhere" / "app.jar"), prefixes)
    assert not allowed("https://repo.example/jarsx/app.jar", prefixes)
    assert allowed("/anything/app.jar", ())
    with pytest.raises(JarError, match="is not in an allowed location"):
        JarCache(tmp_path / "cache", prefixes).local_path(str(tmp_path / "other.jar"))


class SlowCluster:
    """Answers slowly and counts what it was asked, as a JobManager under a burst would."""

    rest_url = "http://unused"

    def __init__(self) -> None:
        self.listings = self.uploads = self.configs = 0

    def jars(self) -> list[dict[str, str]]:
        self.listings += 1
        time.sleep(0.05)  # the cluster's answer takes a while: the burst overlaps it
        return []

    def upload_jar(self, path: Path, name: str) -> str:
        self.uploads += 1
        time.sleep(0.05)  # likewise
        return f"id-{name}"

    def jobmanager_config(self) -> dict[str, str]:
        self.configs += 1
        time.sleep(0.05)  # likewise
        return {"execution.checkpointing.dir": "file:///checkpoints"}


def burst(call: Callable[[], object], threads: int = 20) -> list[object]:
    """`call` from many threads released at the same moment; their results."""
    gate = threading.Barrier(threads)
    results: list[object] = []

    def one() -> None:
        gate.wait()
        results.append(call())

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    return results


def test_supervisors_starting_together_upload_a_jar_once(served: str, tmp_path: Path) -> None:
    cluster, cache = SlowCluster(), JarCache(tmp_path / "cache")
    ids = burst(lambda: cache.jar_id(cluster, f"{served}/app.jar"))  # type: ignore[arg-type]
    assert len(ids) == 20 and len(set(ids)) == 1
    assert (cluster.listings, cluster.uploads) == (1, 1)


def test_supervisors_starting_together_read_the_cluster_config_once() -> None:
    cluster, clients = SlowCluster(), FlinkClients()
    configs = burst(lambda: clients.cluster_config(cluster))  # type: ignore[arg-type]
    assert len(configs) == 20 and cluster.configs == 1
