"""Which Flink a cluster runs, as its REST API says (GET /config, `flink-version`), what
flinksched supports, and the configuration keys Flink 2.0 renamed.

flinksched is tested against Flink 1.20 (the long-term-support line) and 2.x. Flink 1.20
reads both the 1.x and the 2.x names of the renamed keys, and so does 2.x (the 1.x names as
deprecated ones); a cluster's `GET /jobmanager/config` reports a key under the name its
configuration file used, so flinksched reads each key under either name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# The lines the test suite runs against; `flinksched dev up` runs any release of them.
TESTED_LINES = ("1.20", "2.2", "2.3")
_VERSION = re.compile(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, order=True)
class FlinkVersion:
    major: int
    minor: int
    patch: int = 0
    text: str = field(default="", compare=False)  # as the cluster spelled it: "2.3.0-sim"

    @classmethod
    def parse(cls, text: object) -> FlinkVersion | None:
        """The version in a cluster's `flink-version`; None for anything that is not one."""
        if not isinstance(text, str):
            return None
        match = _VERSION.match(text)
        if match is None:
            return None
        return cls(int(match[1]), int(match[2]), int(match[3] or 0), text.strip())

    @property
    def line(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def supported(self) -> bool:
        """Flink 1.20 or any 2.x: the REST calls and keys flinksched uses are all there."""
        return (self.major, self.minor) >= (1, 20) and self.major <= 2

    @property
    def has_status_listener(self) -> bool:
        """Flink 2.x loads job status listeners (JobStatusChangedListener); 1.20 has none, so
        a 1.20 cluster is watched by polling alone."""
        return self.major >= 2

    def __str__(self) -> str:
        return self.text or f"{self.major}.{self.minor}.{self.patch}"


def parse_version(text: str) -> FlinkVersion:
    """A version a person or the environment gave (`FLINKSCHED_FLINK_VERSION`); ValueError
    names what is wrong."""
    version = FlinkVersion.parse(text)
    if version is None or not re.fullmatch(r"\d+\.\d+\.\d+", text.strip()):
        raise ValueError(f"{text!r} is not a Flink release such as 1.20.3 or 2.3.0")
    return version


@dataclass(frozen=True)
class ConfigKey:
    """A configuration key and the names it had before Flink 2.0 renamed it."""

    name: str  # the 2.x name; Flink 1.20 reads it too
    legacy: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.legacy)

    def configured_name(self, version: FlinkVersion) -> str:
        """The name a cluster of `version` is typically configured with: the 1.x name on
        Flink 1.x (as clusters configured before 2.0 have it), else the 2.x one."""
        return self.legacy[0] if version.major < 2 and self.legacy else self.name

    def read(self, *configs: Mapping[str, str]) -> str | None:
        """The first non-empty value under any of the key's names, in `configs` in order (a
        job's own setting before its cluster's)."""
        for config in configs:
            for name in self.names:
                if config.get(name):
                    return config[name]
        return None


CHECKPOINT_DIR = ConfigKey("execution.checkpointing.dir", ("state.checkpoints.dir",))
SAVEPOINT_DIR = ConfigKey("execution.checkpointing.savepoint-dir", ("state.savepoints.dir",))
RETAINED_CHECKPOINTS = ConfigKey("execution.checkpointing.num-retained",
                                 ("state.checkpoints.num-retained",))
# The same name in 1.20 and 2.x.
CHECKPOINT_RETENTION = ConfigKey("execution.checkpointing.externalized-checkpoint-retention")
CHECKPOINT_INTERVAL = ConfigKey("execution.checkpointing.interval")
# How a restored job treats the point it came from (NO_CLAIM unless configured).
CLAIM_MODE = ConfigKey("execution.state-recovery.claim-mode",
                       ("execution.savepoint-restore-mode",))
