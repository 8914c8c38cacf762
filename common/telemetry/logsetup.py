"""Logging set-up: one line per decision, for a human or (--log-format json) a machine."""

from __future__ import annotations

import json
import logging
import sys
import time

CONTEXT_FIELDS = ("job", "attempt", "flinkJobId")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:  # passed as `extra=` by the decision logs
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        )
    handler.set_name("flinksched")
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if h.get_name() != "flinksched"] + [handler]
    root.setLevel(level.upper())
    for noisy in ("kazoo", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # Early wake-ups of the master cycle are skipped by design; that is not worth a warning.
    logging.getLogger("apscheduler").setLevel(max(logging.ERROR, root.level))
