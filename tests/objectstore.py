"""The test run's S3 bucket as a test reads and changes it: objects put, listed and deleted
behind flinksched's back (a jar uploaded, a checkpoint's `_metadata` lost)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scheduler.devstack.seaweedfs import ACCESS_KEY, REGION, SECRET_KEY, S3Server


def state_on(s3: S3Server, root: str) -> dict[str, str]:
    """A job's flinkConfiguration keeping its checkpoints and savepoints under `root`."""
    return {"execution.checkpointing.dir": s3.uri(f"{root}/checkpoints"),
            "execution.checkpointing.savepoint-dir": s3.uri(f"{root}/savepoints")}


class Bucket:
    def __init__(self, server: S3Server) -> None:
        from obstore.store import S3Store

        self.server = server
        self.store: Any = S3Store(server.bucket, endpoint=server.endpoint,
                                  access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY,
                                  region=REGION, virtual_hosted_style_request=False,
                                  client_options={"allow_http": True})

    def key(self, uri: str) -> str:
        prefix = self.server.uri()
        assert uri.startswith(prefix), f"{uri} is not in bucket {self.server.bucket}"
        return uri[len(prefix):]

    def put(self, uri: str, source: Path) -> None:
        import obstore

        obstore.put(self.store, self.key(uri), source.read_bytes())

    def objects(self, prefix_uri: str) -> dict[str, int]:
        """URI -> size of every object under the prefix."""
        import obstore

        return {self.server.uri(item["path"]): int(item["size"])
                for batch in obstore.list(self.store, prefix=self.key(prefix_uri))
                for item in batch}

    def delete(self, uri: str) -> None:
        import obstore

        obstore.delete(self.store, self.key(uri))

    def checkpoints(self, directory_uri: str, job_id: str) -> list[int]:
        """The complete checkpoints (with `_metadata`) of one attempt, in numeric order."""
        base = f"{directory_uri.rstrip('/')}/{job_id}/"
        found = [uri[len(base):].split("/") for uri in self.objects(base)]
        return sorted(int(parts[0].removeprefix("chk-")) for parts in found
                      if len(parts) == 2 and parts[0].startswith("chk-")
                      and parts[1] == "_metadata")

    def attempt_directories(self, directory_uri: str) -> set[str]:
        """The job-id directories under a checkpoint directory that hold any object."""
        base = directory_uri.rstrip("/") + "/"
        return {uri[len(base):].split("/", 1)[0] for uri in self.objects(base)}
