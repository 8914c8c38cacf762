from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from worker.jars import JarCache, JarError


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """A directory served over real HTTP on loopback."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "app.jar").write_bytes(b"PK jar bytes")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


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
