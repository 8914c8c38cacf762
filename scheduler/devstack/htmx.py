"""htmx for the portal, from the npm registry: the release's tarball, fetched once into the
cache and checked against the integrity the registry publishes (pinned here), then
`dist/htmx.min.js` copied to where the portal serves it from (`scheduler/portal/static`).

`make` runs this after installing the virtualenv, the Dockerfile when it builds the image:

    python -m scheduler.devstack.htmx
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import sys
import tarfile
from pathlib import Path

import httpx

from common.errors import DevStackError, FlinkschedError
from scheduler.devstack.flinkhome import cache_dir
from scheduler.portal.app import HTMX

VERSION = "2.0.8"
# The sha512 `npm view htmx.org@2.0.8 dist.integrity` gives.
INTEGRITY = ("sha512-fm297iru0iWsNJlBrjvtN7V9zjaxd+69Oqjh4F/Vq9Wwi2kFisLcrLCiv5oBX0KLfOX/zG8AUo9"
             "ROMU5XUB44Q==")
REGISTRY = os.environ.get("FLINKSCHED_NPM_REGISTRY", "https://registry.npmjs.org")
MEMBER = "package/dist/htmx.min.js"


def _checked(data: bytes, url: str) -> bytes:
    algorithm, _, expected = INTEGRITY.partition("-")
    found = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if found != expected:
        raise DevStackError(f"{url}: its {algorithm} is {found}, the pinned integrity says "
                            f"{expected}")
    return data


def tarball() -> bytes:
    """The release's tarball, from the cache or the registry (checked either way)."""
    cached = cache_dir() / "npm" / f"htmx.org-{VERSION}.tgz"
    url = f"{REGISTRY}/htmx.org/-/htmx.org-{VERSION}.tgz"
    if cached.is_file():
        return _checked(cached.read_bytes(), str(cached))
    try:
        response = httpx.get(url, follow_redirects=True, timeout=60)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise DevStackError(f"could not download htmx {VERSION} from {url}: {exc}") from exc
    data = _checked(response.content, url)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f".{cached.name}.{os.getpid()}")
    partial.write_bytes(data)
    partial.rename(cached)
    return data


def ensure_htmx(target: Path = HTMX) -> Path:
    """htmx.min.js where the portal serves it from; fetched when missing or of another
    release (its first line names the version)."""
    if target.is_file() and f"htmx {VERSION}" in _first_bytes(target):
        return target
    with tarfile.open(fileobj=io.BytesIO(tarball()), mode="r:gz") as archive:
        member = archive.extractfile(MEMBER)
        if member is None:
            raise DevStackError(f"htmx {VERSION}'s tarball has no {MEMBER}")
        script = member.read()
    marked = f"/* htmx {VERSION}, from the npm registry's htmx.org */\n".encode() + script
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    partial.write_bytes(marked)
    partial.rename(target)
    return target


def _first_bytes(path: Path) -> str:
    with path.open("rb") as handle:
        return handle.read(200).decode("utf-8", "replace")


def main() -> int:
    try:
        print(f"htmx {VERSION}: {ensure_htmx()}")
    except FlinkschedError as exc:
        print(f"htmx: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
