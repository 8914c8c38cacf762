from __future__ import annotations

import hashlib
import http.server
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.httpserve import serving
from worker.jars import JarCache, JarError, allowed


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
