"""Object storage in memory, for tests of what reads it (the real one is tested against a
real S3 server)."""

from __future__ import annotations

from pathlib import Path

from common.errors import StorageUnavailable
from common.objstore.storage import Entry, Storage


class FakeStorage(Storage):
    """`objects`: uri -> size; `down`: every call fails, saying so."""

    def __init__(self, objects: dict[str, int], down: str = "") -> None:
        super().__init__()
        self.objects = dict(objects)
        self.down = down
        self.modified: dict[str, float] = {}

    def _check(self, uri: str) -> None:
        if self.down:
            raise StorageUnavailable(f"{uri}: {self.down}")

    def exists(self, uri: str) -> bool:
        self._check(uri)
        return uri in self.objects

    def list(self, prefix: str) -> list[Entry]:
        self._check(prefix)
        return [Entry(uri, size, self.modified.get(uri, 0.0))
                for uri, size in sorted(self.objects.items()) if uri.startswith(prefix)]

    def delete_tree(self, directory: str) -> tuple[int, int]:
        self._check(directory)
        gone = [u for u in self.objects if u.startswith(directory.rstrip("/") + "/")]
        size = sum(self.objects.pop(u) for u in gone)
        return len(gone), size

    def download(self, uri: str, target: Path) -> None:
        self._check(uri)
        if uri not in self.objects:
            raise StorageUnavailable(f"{uri} does not exist")
        target.write_bytes(b"x" * self.objects[uri])
