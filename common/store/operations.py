"""An operator's requests, as the CLI and the portal make them: each written to ZooKeeper (a
command node the owning worker carries out, or an override the master applies) and recorded
as an event naming who asked and through what (`cli alice@host`, `portal alice`)."""

from __future__ import annotations

import time

from common.store.records import CommandKind
from common.store.zookeeper import Store


def request_restart(store: Store, job: str, who: str, via: str, from_path: str = "",
                    from_empty: bool = False) -> str:
    """A new attempt from the newest checkpoint (or `from_path`, or empty state)."""
    store.add_command(job, CommandKind.RESTART, by=who, fromEmpty=from_empty,
                      fromPath=from_path)
    what = ("restart from empty state" if from_empty else
            f"restart from {from_path}" if from_path else "restart")
    store.append_event(job, f"{via} {who}", f"{what} requested by {who}")
    return what


def request_savepoint(store: Store, job: str, who: str, via: str) -> str:
    """A savepoint of the running attempt; returns the command node it is answered under."""
    node = store.add_command(job, CommandKind.SAVEPOINT, by=who)
    store.append_event(job, f"{via} {who}", f"savepoint requested by {who}")
    return node


def suspend(store: Store, job: str, who: str, via: str, reason: str) -> None:
    """Stopped with a savepoint and held until `resume`, whatever its config says."""
    store.set_override(job, {"state": "suspended", "reason": reason, "by": who,
                             "at": time.time()})
    store.append_event(job, f"{via} {who}", f"suspended by {who}: {reason}")


def resume(store: Store, job: str, who: str, via: str) -> bool:
    """The suspension lifted; False when there was none to lift."""
    if not store.clear_override(job):
        return False
    store.append_event(job, f"{via} {who}", f"resumed by {who}")
    return True
