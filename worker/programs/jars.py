"""Jar uploads: once per content hash per cluster, again when a restarted JobManager forgot it."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from common.errors import FlinkRequestFailed, FlinkschedError, StorageUnavailable
from common.flink.client import FlinkClient
from common.keyedlocks import KeyedLocks
from common.objstore.storage import Storage, remote
from common.spec.programs import Program

logger = logging.getLogger(__name__)


class JarError(FlinkschedError):
    """The jar named by the spec cannot be read or fetched."""


def normalized(location: str) -> str:
    """A jar location as compared with the allow-list: a local path or file:// URI as an
    absolute path with `..` and links resolved, a URL as written."""
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        return str(Path(unquote(parsed.path)).resolve())
    return location


def allowed(jar_uri: str, prefixes: tuple[str, ...]) -> bool:
    """No allow-list allows everything; else the jar must be a listed location or lie
    under one (a whole path segment: /jars does not allow /jars-evil)."""
    if not prefixes:
        return True
    target = normalized(jar_uri)
    for prefix in prefixes:
        base = normalized(prefix).rstrip("/")
        if target == base or target.startswith(base + "/"):
            return True
    return False


class JarCache:
    def __init__(self, download_dir: Path, allowed_prefixes: tuple[str, ...] = (),
                 storage: Storage | None = None) -> None:
        self.download_dir = download_dir
        self.allowed_prefixes = allowed_prefixes
        self.storage = storage or Storage()  # jars on object storage are fetched with it
        # (rest url, file identity) -> (jar id, its SHA-256)
        self._ids: dict[tuple[str, str], tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._resolving = KeyedLocks()

    def check_allowed(self, jar_uri: str) -> None:
        if not allowed(jar_uri, self.allowed_prefixes):
            raise JarError(f"jar {jar_uri} is not in an allowed location (allowed: "
                           f"{', '.join(self.allowed_prefixes)}; see --allowed-jars)")

    def check_program(self, program: Program) -> None:
        """Every file the program names lies in an allowed location."""
        for uri in program.uris:
            self.check_allowed(uri)

    def local_path(self, jar_uri: str, what: str = "jar", trusted: bool = False) -> Path:
        """The file on this host: a local one, or one downloaded once. `what` names it in
        errors (a jar, or a SQL script's file); a `trusted` one (a driver from the worker's
        Flink distribution) is not the allow-list's to judge."""
        if not trusted:
            self.check_allowed(jar_uri)
        parsed = urlparse(jar_uri)
        if parsed.scheme in ("", "file"):
            path = Path(unquote(parsed.path))
            if not path.is_file():
                raise JarError(f"{what} {jar_uri} does not exist")
            return path
        if parsed.scheme in ("http", "https"):
            return self._download(jar_uri, what)
        if remote(jar_uri):
            return self._fetch(jar_uri, what)
        if parsed.scheme == "local":
            raise JarError(f"{what} {jar_uri}: local:// names a path in an application cluster's "
                           "image; a session cluster needs file://, http(s)://, object storage "
                           "(s3://, gs://, az://) or a path")
        raise JarError(f"{what} {jar_uri}: unsupported scheme {parsed.scheme!r}")

    def _download(self, url: str, what: str) -> Path:
        target = self.download_dir / hashlib.sha256(url.encode()).hexdigest()[:16] / Path(
            urlparse(url).path
        ).name
        if target.is_file():
            return target
        with self._resolving(("download", url)):  # one download however many want the jar
            if target.is_file():
                return target
            target.parent.mkdir(parents=True, exist_ok=True)
            # Private to this process and thread; renamed into place whole.
            partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
            try:
                with httpx.stream("GET", url, follow_redirects=True, timeout=60) as response:
                    response.raise_for_status()
                    with partial.open("wb") as out:
                        for chunk in response.iter_bytes():
                            out.write(chunk)
                partial.replace(target)
            except httpx.HTTPError as exc:
                partial.unlink(missing_ok=True)
                raise JarError(f"{what} {url}: download failed: {exc}") from exc
        return target

    def _fetch(self, uri: str, what: str) -> Path:
        """A jar on object storage, fetched once per content: a new object at the same key
        (another size or modification time) is fetched again. Its content is checked against
        the spec's jarSHA256 by the caller, every time it is used."""
        try:
            found = self.storage.stat(uri)
        except StorageUnavailable as exc:
            raise JarError(f"{what} {uri}: not fetched: {exc}") from exc
        if found is None:
            raise JarError(f"{what} {uri} does not exist")
        version = hashlib.sha256(f"{uri}|{found.size}|{found.modified}".encode()).hexdigest()
        target = self.download_dir / version[:16] / (uri.rstrip("/").rsplit("/", 1)[-1]
                                                     or "job.jar")
        if target.is_file():
            return target
        with self._resolving(("download", uri)):
            if target.is_file():
                return target
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.storage.download(uri, target)
            except StorageUnavailable as exc:
                raise JarError(f"{what} {uri}: not fetched: {exc}") from exc
        return target

    def jar_id(self, client: FlinkClient, jar_uri: str, sha256: str | None = None,
               trusted: bool = False) -> str:
        """The cluster's id for this jar, uploading it when the cluster does not list it.

        With `sha256` (the spec's jarSHA256) a jar whose content differs is refused.
        """
        path = self.local_path(jar_uri, trusted=trusted)
        stat = path.stat()
        key = (client.rest_url, f"{path}:{stat.st_size}:{stat.st_mtime_ns}")
        with self._lock:
            known = self._ids.get(key)
        if known is None:
            with self._resolving(key):  # one upload however many supervisors want the jar
                with self._lock:
                    known = self._ids.get(key)
                if known is None:
                    known = self._resolve(client, jar_uri, path, key, sha256)
        jar_id, digest = known
        if sha256 and digest != sha256.lower():  # another job's spec uploaded it
            raise JarError(digest_mismatch(jar_uri, digest, sha256))
        return jar_id

    def text(self, uri: str, what: str) -> str:
        """A program's text file (a SQL script), read where it is or downloaded once."""
        path = self.local_path(uri, what)
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise JarError(f"{what} {uri} cannot be read: {exc}") from exc

    def verified_path(self, jar_uri: str, sha256: str | None = None,
                      trusted: bool = False) -> Path:
        """The jar's local path, its content checked against the spec's jarSHA256."""
        path = self.local_path(jar_uri, trusted=trusted)
        check_digest(path, jar_uri, sha256)
        return path

    def _resolve(self, client: FlinkClient, jar_uri: str, path: Path, key: tuple[str, str],
                 sha256: str | None) -> tuple[str, str]:
        digest = check_digest(path, jar_uri, sha256)
        upload_name = f"{digest[:16]}-{path.name}"
        for listed in client.jars():
            if listed.get("name") == upload_name:
                jar_id = str(listed["id"])
                break
        else:
            try:
                jar_id = client.upload_jar(path, upload_name)
            except FlinkRequestFailed as exc:
                raise JarError(f"jar {jar_uri}: upload rejected: {exc.message}") from exc
            logger.info("uploaded %s to %s as %s", path, client.rest_url, jar_id)
        with self._lock:
            self._ids[key] = (jar_id, digest)
        return jar_id, digest

    def forget(self, client: FlinkClient) -> None:
        """Drop every id known for this cluster: a restarted JobManager forgot them all."""
        with self._lock:
            for key in [k for k in self._ids if k[0] == client.rest_url]:
                del self._ids[key]


def digest_mismatch(jar_uri: str, digest: str, sha256: str) -> str:
    return f"jar {jar_uri} has SHA-256 {digest}, but the spec says {sha256}"


def check_digest(path: Path, jar_uri: str, sha256: str | None) -> str:
    """The jar's SHA-256; with `sha256` (the spec's jarSHA256) a jar whose content differs
    is refused."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if sha256 and digest != sha256.lower():
        raise JarError(digest_mismatch(jar_uri, digest, sha256))
    return digest
