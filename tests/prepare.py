"""Everything the test stacks need that needs no running process, fetched and built before
the tests start (`make test` runs `python -m tests.prepare` first): both Flink distributions
with their S3 plugins, a PyFlink of each, the example job built against each, the status
listener, ZooKeeper, Prometheus, Chromium and the portal's htmx.

On a machine with nothing cached this is minutes of downloads and builds; done inside the
first test that needs a cluster it would count against that test's timeout, on a machine
busy with the other tests. With everything cached it checks and returns in seconds.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from common.errors import FlinkschedError
from scheduler.devstack import prometheus
from scheduler.devstack.htmx import ensure_htmx
from scheduler.devstack.stack import DevStack, StackConfig
from tests.browser import ensure_chromium
from tests.stack import BUILD_DIRS, PRIMARY_VERSION, PUSH_ROOT


def stacks(scratch: Path) -> list[StackConfig]:
    """The session clusters' configurations, as far as preparing them reads them: each
    version's, with its build directory, and the status listener where the primary pushes
    (the fixtures in tests/conftest.py start them from the same)."""
    return [StackConfig(state_dir=scratch / version, flink_version=version, build_dir=build,
                        push_root=PUSH_ROOT if version == PRIMARY_VERSION else None)
            for version, build in BUILD_DIRS.items()]


def main() -> int:
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="flinksched-prepare-") as scratch:
            for config in stacks(Path(scratch)):
                DevStack(config, progress=lambda step: print(f"  {step}", flush=True)).prepare()
        prometheus.ensure_prometheus()
        ensure_chromium()  # the portal's tests drive it
        ensure_htmx()
    except FlinkschedError as exc:
        print(f"preparing the test stacks failed: {exc}", file=sys.stderr)
        return 1
    print(f"test stacks prepared in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
