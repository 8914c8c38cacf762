"""Keeps one server running, as a production host's supervisor would (a Kubernetes pod's
restart policy, systemd's Restart=): the dev stack runs its session TaskManager under it.

A job can end the TaskManager it runs on for every job there: Flink makes an exception in a
cancelled task's clean-up fatal to the whole JVM, and its Python runner throws one now and
then (a reference count in Beam's bundle factory going negative while a Python job is
cancelled). A TaskManager nobody restarts leaves every later job without slots; this one
comes back, registers with the JobManager, and the jobs that were on it are restarted from
their checkpoints as after any TaskManager loss.

    python -m scheduler.devstack.respawn --name taskmanager -- COMMAND ARG...

SIGTERM or SIGINT stops the server and this process (the dev stack signals the process
group, which reaches both); the server exiting by itself is logged and started again after
`restart_delay`.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from types import FrameType

FIRST_DELAY = 1.0
LONGEST_DELAY = 30.0
# A server that ran this long before exiting was not crash-looping: back to the first delay.
HEALTHY_RUN = 60.0


def restart_delay(previous: float | None, lived: float) -> float:
    """Seconds to wait before starting again a server that exited after `lived` seconds:
    one at first and after a healthy run, doubling up to LONGEST_DELAY while it keeps
    exiting soon after each start (a bad configuration must not spin a CPU)."""
    if previous is None or lived >= HEALTHY_RUN:
        return FIRST_DELAY
    return min(previous * 2, LONGEST_DELAY)


def _log(name: str, message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} respawn[{name}]: {message}", file=sys.stderr, flush=True)


def run(name: str, command: list[str]) -> int:
    """Run `command` until a stop signal; its exit code then."""
    stopping = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    delay: float | None = None
    while True:
        started = time.monotonic()
        child = subprocess.Popen(command)
        code = child.wait()
        if stopping.is_set():
            return code
        lived = time.monotonic() - started
        delay = restart_delay(delay, lived)
        _log(name, f"{name} exited with code {code} after {lived:.0f} s; starting it again "
                   f"in {delay:.0f} s")
        if stopping.wait(delay):
            return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="what the server is, for the log")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    return run(args.name, command)


if __name__ == "__main__":
    sys.exit(main())
