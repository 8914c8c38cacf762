"""Connection and timing settings shared by the master, the worker and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_ZK = "127.0.0.1:2181"
DEFAULT_ROOT = "/flinksched"


@dataclass(frozen=True)
class ZkSettings:
    hosts: str = DEFAULT_ZK
    root: str = DEFAULT_ROOT
    session_timeout: float = 10.0
    # digest "user:password": kept out of repr, so that no log line can carry it
    auth: str | None = field(default=None, repr=False)
    # "user:password" of an identity given read access to every node this one creates
    read_identity: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Timings:
    """The clocks the processes run on, checked against each other before anything starts."""

    session_timeout: float = 10.0
    poll_interval: float = 1.0
    cycle_interval: float = 1.0

    @property
    def act_deadline(self) -> float:
        """How long a worker may keep acting while disconnected: well inside the session."""
        return self.session_timeout / 2

    def problems(self) -> list[str]:
        found = []
        if self.session_timeout < 2:
            found.append(f"ZooKeeper session timeout {self.session_timeout}s is below 2s")
        if self.poll_interval <= 0 or self.cycle_interval <= 0:
            found.append("poll and cycle intervals must be positive")
        if self.poll_interval >= self.act_deadline:
            found.append(
                f"poll interval {self.poll_interval}s must be shorter than the local deadline "
                f"{self.act_deadline}s (half the session timeout), or a worker could act after "
                "its ownership lapsed"
            )
        if self.cycle_interval >= self.session_timeout:
            found.append(
                f"master cycle {self.cycle_interval}s must be shorter than the session timeout "
                f"{self.session_timeout}s"
            )
        return found
