"""Object storage and local disk through one interface: does an object exist (and its size
and age), what lies under a prefix, delete a directory, fetch an object into a file. Object
storage goes through obstore (one Rust core for S3, GCS and Azure); local disk through the
filesystem.

Locations are URIs as Flink writes them: `s3://` (also `s3a://` and `s3p://`, Flink's two S3
filesystems), `gs://`, `az://` / `abfs(s)://`, `file:` or an absolute path. Credentials and
endpoints come from the environment, under the variables the field uses (AWS_ENDPOINT,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, GOOGLE_SERVICE_ACCOUNT_PATH,
AZURE_STORAGE_ACCOUNT_NAME, ...): never in a spec, so never in ZooKeeper, events or logs.
Every failure but "no such object" is a StorageUnavailable naming the location.
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from common.errors import StorageUnavailable

REMOTE = {"s3": "s3", "s3a": "s3", "s3p": "s3", "gs": "gs", "az": "az", "abfs": "abfs",
          "abfss": "abfss"}
# A request gives up after this long (obstore's default would wait 30 s, and retry).
CLIENT = {"timeout": timedelta(seconds=10), "connect_timeout": timedelta(seconds=3)}
RETRIES = {"max_retries": 2, "retry_timeout": timedelta(seconds=10)}


@dataclass(frozen=True)
class Entry:
    uri: str  # spelt as the listing was asked for
    size: int  # bytes
    modified: float  # seconds since the epoch


def remote(uri: str) -> bool:
    """The location is on object storage."""
    return urlparse(uri).scheme in REMOTE


def local(uri: str) -> Path | None:
    """The path of a local location (`file:` or an absolute path), else None."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None


def supported(uri: str) -> bool:
    return remote(uri) or local(uri) is not None


class Storage:
    """One client per bucket, made on first use and kept."""

    def __init__(self) -> None:
        self._stores: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    # -- object storage --------------------------------------------------------------------
    def _remote(self, uri: str) -> tuple[Any, str, str]:
        """The store for `uri`, the key in it, and the URI its keys are relative to."""
        parsed = urlparse(uri)
        scheme, bucket = REMOTE[parsed.scheme], parsed.netloc
        with self._lock:
            store = self._stores.get((scheme, bucket))
            if store is None:
                from obstore.store import from_url  # loaded by the processes that need it

                options: dict[str, Any] = {"retry_config": RETRIES, "client_options": {
                    **CLIENT, "allow_http": _allow_http()}}
                try:
                    store = from_url(f"{scheme}://{bucket}/", **options)
                except Exception as exc:  # a configuration obstore cannot use
                    raise StorageUnavailable(f"{uri}: cannot be reached: {_said(exc)}") from exc
                self._stores[(scheme, bucket)] = store
        return store, parsed.path.lstrip("/"), f"{parsed.scheme}://{bucket}/"

    # -- what callers use --------------------------------------------------------------------
    def exists(self, uri: str) -> bool:
        """The object (a file) is there; False when it is not."""
        return self.stat(uri) is not None

    def stat(self, uri: str) -> Entry | None:
        """The object's size and modification time; None when there is no such object."""
        path = local(uri)
        if path is not None:
            try:
                found = path.stat()
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise StorageUnavailable(f"{uri}: {exc.strerror or exc}") from exc
            return Entry(uri, found.st_size, found.st_mtime) if path.is_file() else None
        import obstore

        store, key, _ = self._remote(uri)
        try:
            meta = obstore.head(store, key)
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise StorageUnavailable(f"{uri}: {_said(exc)}") from exc
        return Entry(uri, int(meta["size"]), meta["last_modified"].timestamp())

    def list(self, prefix: str) -> list[Entry]:
        """Every object whose location starts with `prefix` (`<dir>/` for what a directory
        holds; `<dir>/<name start>` for the entries whose names start so), spelt as
        `prefix` is."""
        path = local(prefix)
        if path is not None:
            return _list_local(prefix, path)
        import obstore

        store, key, base = self._remote(prefix)
        try:
            if not key or key.endswith("/"):
                directories, objects = [key], []
            else:  # object stores match prefixes by whole segments: the last one by name
                parent, _, start = key.rpartition("/")
                listed = obstore.list_with_delimiter(store, prefix=parent or None)
                directories = [p for p in listed["common_prefixes"]
                               if p.rpartition("/")[2].startswith(start)]
                objects = [o for o in listed["objects"]
                           if o["path"].rpartition("/")[2].startswith(start)]
            objects += [item for one in directories
                        for batch in obstore.list(store, prefix=one.rstrip("/") or None)
                        for item in batch]
            return [Entry(base + item["path"], int(item["size"]),
                          item["last_modified"].timestamp()) for item in objects]
        except FileNotFoundError:
            return []
        except Exception as exc:
            raise StorageUnavailable(f"{prefix}: {_said(exc)}") from exc

    def delete_tree(self, directory: str) -> tuple[int, int]:
        """Delete a directory and everything under it; (objects, bytes) deleted."""
        entries = self.list(directory.rstrip("/") + "/")
        path = local(directory)
        if path is not None:
            try:
                shutil.rmtree(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise StorageUnavailable(f"{directory}: not deleted: {exc}") from exc
        elif entries:
            import obstore

            store, _, base = self._remote(directory)
            try:
                obstore.delete(store, [entry.uri[len(base):] for entry in entries])
            except Exception as exc:
                raise StorageUnavailable(f"{directory}: not deleted: {_said(exc)}") from exc
        return len(entries), sum(entry.size for entry in entries)

    def download(self, uri: str, target: Path) -> None:
        """The object's bytes into `target` (written whole, under a temporary name first)."""
        import obstore

        store, key, _ = self._remote(uri)
        partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            with partial.open("wb") as out:
                for chunk in obstore.get(store, key).stream():
                    out.write(chunk)
            partial.replace(target)
        except FileNotFoundError:
            raise StorageUnavailable(f"{uri} does not exist") from None
        except Exception as exc:
            raise StorageUnavailable(f"{uri}: {_said(exc)}") from exc
        finally:
            partial.unlink(missing_ok=True)


def _list_local(prefix: str, path: Path) -> list[Entry]:
    """The files under a local prefix: a directory's (`prefix` ends with /), or those of the
    entries of its parent whose names start with its last part."""
    directory, start = (path, "") if prefix.endswith("/") else (path.parent, path.name)
    spelt = prefix.removesuffix(path.name) if start else prefix
    if not spelt.endswith("/"):
        spelt += "/"
    found = []
    try:
        tops = [entry for entry in directory.iterdir() if entry.name.startswith(start)]
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StorageUnavailable(f"{prefix}: {exc.strerror or exc}") from exc
    for top in tops:
        walked = [top] if top.is_file() else _files_under(top)
        for file in walked:
            try:
                stat = file.stat()
            except OSError:
                continue  # gone meanwhile
            found.append(Entry(spelt + file.relative_to(directory).as_posix(), stat.st_size,
                               stat.st_mtime))
    return found


def _files_under(top: Path) -> list[Path]:
    """The files under a directory, skipping what is deleted while it is walked (Flink drops
    subsumed checkpoints at any moment); a directory that cannot be read is an error, not a
    part of the job's state silently left out."""
    def unreadable(exc: OSError) -> None:
        if not isinstance(exc, FileNotFoundError):
            raise StorageUnavailable(f"{exc.filename or top}: {exc.strerror or exc}") from exc

    return [Path(root) / name for root, _, files in os.walk(top, onerror=unreadable)
            for name in files]


def _allow_http() -> bool:
    """Plain HTTP only where the environment says so (a loopback server's)."""
    return os.environ.get("AWS_ALLOW_HTTP", "").lower() in ("1", "true", "yes")


def _said(exc: Exception) -> str:
    """obstore's message, its first line (the rest is a dump of the request)."""
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
