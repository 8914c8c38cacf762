"""One lock per key, so that many threads wanting the same missing value fetch it once.

A worker's supervisors start together; without this a hundred of them would each list the
cluster's jars, upload the same jar, or read the cluster's configuration at the same moment.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable


class KeyedLocks:
    def __init__(self) -> None:
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()

    def __call__(self, key: Hashable) -> threading.Lock:
        """The lock of `key` (the same object for every caller). Hold it while fetching, and
        look in the cache again once it is held: another thread may have filled it."""
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.Lock()
            return lock
