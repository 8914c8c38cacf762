"""Artifacts from Maven Central, fetched once into the cache and checked against the SHA-1
Maven Central publishes beside each (Flink's filesystem plugins, connectors, Kafka)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import httpx

from common.errors import DevStackError
from scheduler.devstack.flinkhome import cache_dir

CENTRAL = os.environ.get("FLINKSCHED_MAVEN_REPOSITORY", "https://repo.maven.apache.org/maven2")


def artifact(group: str, name: str, version: str, classifier: str = "") -> Path:
    """The jar `group:name:version[:classifier]`, from the cache or Maven Central."""
    suffix = f"-{classifier}" if classifier else ""
    file = f"{name}-{version}{suffix}.jar"
    target = cache_dir() / "maven" / group / name / version / file
    if target.is_file():
        return target
    url = f"{CENTRAL}/{group.replace('.', '/')}/{name}/{version}/{file}"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{file}.{os.getpid()}.{threading.get_ident()}")
    try:
        with httpx.Client(follow_redirects=True, timeout=120) as client:
            expected = client.get(url + ".sha1")
            expected.raise_for_status()
            digest = hashlib.sha1(usedforsecurity=False)
            with client.stream("GET", url) as response, partial.open("wb") as out:
                response.raise_for_status()
                for chunk in response.iter_bytes():
                    digest.update(chunk)
                    out.write(chunk)
        if digest.hexdigest() != expected.text.split()[0].strip():
            raise DevStackError(f"{url}: its SHA-1 is {digest.hexdigest()}, Maven Central "
                                f"says {expected.text.strip()}")
        partial.replace(target)
    except httpx.HTTPError as exc:
        raise DevStackError(f"cannot fetch {group}:{name}:{version} from {url}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return target
