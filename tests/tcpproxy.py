"""A TCP proxy a test controls: forward, black-hole traffic like a network partition, or
slow it down.

A black-holed connection stays open but nothing crosses it, so the client sees silence
(timeouts), not a reset, the way a partition looks from both ends. A slowed one holds each
chunk of data for a while before passing it on, the way an overloaded server answers.
"""

from __future__ import annotations

import select
import socket
import threading
import time


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._partitioned = threading.Event()
        self.delay = 0.0  # seconds each chunk waits before it is passed on
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def partition(self) -> None:
        """From now on nothing crosses, on open connections or new ones."""
        self._partitioned.set()

    def heal(self) -> None:
        """Drop the connections the partition broke; new ones forward again."""
        self._partitioned.clear()
        self._close_all()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(2)
        self._listener.close()
        self._close_all()

    def _close_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._sockets.append(client)
            if self._partitioned.is_set():
                continue  # accepted, never answered: what a partitioned peer looks like
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.append(upstream)
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        try:
            while not self._closed.is_set():
                readable, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if self.delay:
                        time.sleep(self.delay)  # the slowness itself, not a synchronisation
                    if not self._partitioned.is_set():
                        peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in peers:
                try:
                    sock.close()
                except OSError:
                    pass
