"""A TCP proxy a test controls: forward, refuse connections like a server that is down,
black-hole traffic like a network partition, or slow it down.

A black-holed connection stays open but nothing crosses it, so the client sees silence
(timeouts), not a reset, the way a partition looks from both ends. A slowed one holds each
chunk of data for a while before passing it on, the way an overloaded server answers.

A proxy shared by a test run's processes runs in a process of its own,

    python -m tests.tcpproxy --listen PORT --target PORT --control PORT

and is cut and healed by any of them through `RemoteProxy`, one line a command.
"""

from __future__ import annotations

import argparse
import select
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Callable


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1",
                 listen_port: int = 0) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", listen_port))
        self._listener.settimeout(0.2)
        self._partitioned = threading.Event()
        self._refusing = threading.Event()
        self.delay = 0.0  # seconds each chunk waits before it is passed on
        # Shown each chunk the server sends, with the connection it came on (its number).
        self.inspect: Callable[[int, bytes], None] | None = None
        self._connections = 0
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

    def refuse(self) -> None:
        """Reset every open connection, and each new one at once: the peer is down, and its
        clients learn of it immediately."""
        self._refusing.set()
        self._close_all()

    def heal(self) -> None:
        """Drop the connections the partition broke; new ones forward again."""
        self._partitioned.clear()
        self._refusing.clear()
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
            if self._refusing.is_set():
                client.close()
                continue
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
            self._connections += 1
            threading.Thread(target=self._pump, args=(client, upstream, self._connections),
                             daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket, number: int) -> None:
        peers = {client: upstream, upstream: client}
        try:
            while not self._closed.is_set():
                readable, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is upstream and self.inspect is not None:
                        self.inspect(number, data)
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


class RemoteProxy:
    """A TcpProxy in a process of its own, commanded over its control port."""

    def __init__(self, port: int, control_port: int) -> None:
        self.port = port
        self.control_port = control_port

    def _command(self, line: str) -> None:
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=10) as sock:
            sock.sendall(line.encode() + b"\n")
            answer = sock.makefile().readline().strip()
        if answer != "ok":
            raise RuntimeError(f"proxy on port {self.port}: {line!r} answered {answer!r}")

    def partition(self) -> None:
        self._command("partition")

    def heal(self) -> None:
        self._command("heal")


def serve(listen: int, target: int, control: int) -> None:
    proxy = TcpProxy(target, listen_port=listen)
    commands = {"partition": proxy.partition, "heal": proxy.heal}

    class Control(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline().decode().strip()
            command = commands.get(line)
            if command is None:
                self.wfile.write(f"unknown command {line!r}\n".encode())
                return
            command()
            self.wfile.write(b"ok\n")

    server = socketserver.TCPServer(("127.0.0.1", control), Control)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    finally:
        server.server_close()
        proxy.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="A TCP proxy commanded over a control port.")
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--target", type=int, required=True)
    parser.add_argument("--control", type=int, required=True)
    args = parser.parse_args()
    serve(args.listen, args.target, args.control)


if __name__ == "__main__":
    main()
