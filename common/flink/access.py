"""How a worker reaches one Flink cluster's REST API: its URL, the CA bundle it trusts, and
the credentials it sends, from the FlinkCluster document's `tls` and `auth`.

Credentials are references (a file, an environment variable), read when a request is made:
a rotated token or password file is picked up without a restart, and no secret value is
ever part of a job record, a status, an event or a log line.
"""

from __future__ import annotations

import base64
import os
import ssl
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from common.errors import FlinkUnreachable


@dataclass(frozen=True)
class Secret:
    """A reference to a secret value; its repr names the source, never the value."""

    file: str | None = None
    env: str | None = None

    @classmethod
    def of(cls, ref: Mapping[str, Any]) -> Secret:
        return cls(file=ref.get("file"), env=ref.get("env"))

    def __str__(self) -> str:
        return f"file {self.file}" if self.file else f"environment variable {self.env}"

    def read(self) -> str:
        if self.env:
            value = os.environ.get(self.env)
            if not value:
                raise FlinkUnreachable(f"the secret in {self} is not set")
            return value
        assert self.file is not None
        try:
            return Path(self.file).read_text().strip()
        except OSError as exc:
            raise FlinkUnreachable(f"cannot read the secret in {self}: "
                                   f"{exc.strerror or exc}") from None


@dataclass(frozen=True)
class ClusterAccess:
    rest_url: str
    ca_file: str | None = None
    username: str | None = None
    password: Secret | None = None
    token: Secret | None = None

    @classmethod
    def of(cls, cluster_spec: Mapping[str, Any]) -> ClusterAccess:
        tls = cluster_spec.get("tls") or {}
        auth = cluster_spec.get("auth") or {}
        basic = auth.get("basic") or {}
        return cls(
            rest_url=str(cluster_spec["restUrl"]).rstrip("/"),
            ca_file=tls.get("caFile"),
            username=basic.get("username"),
            password=Secret.of(basic["password"]) if basic else None,
            token=Secret.of(auth["bearer"]) if auth.get("bearer") else None,
        )

    def verify(self) -> ssl.SSLContext | bool:
        """The TLS trust for the client: the CA bundle when given, else the system's."""
        if not self.ca_file:
            return True
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise FlinkUnreachable(f"{self.rest_url}: cannot load the CA bundle "
                                   f"{self.ca_file}: {exc}") from None

    def auth(self) -> httpx.Auth | None:
        return SecretAuth(self) if self.password or self.token else None


class SecretAuth(httpx.Auth):
    """Basic or bearer credentials, read from their source for every request."""

    def __init__(self, access: ClusterAccess) -> None:
        self.access = access

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        access = self.access
        if access.token is not None:
            request.headers["Authorization"] = f"Bearer {access.token.read()}"
        elif access.password is not None:
            pair = f"{access.username or ''}:{access.password.read()}".encode()
            request.headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        yield request
