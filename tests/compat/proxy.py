"""A loopback TCP proxy that a test can cut: clients keep their session but lose the network.

with TcpProxy(server_port) as proxy:
    client = KazooClient(hosts=proxy.connect_string)
    ...
    proxy.cut()      # drop every connection and refuse (accept-and-close) new ones
    ...              # change things while the client is away
    proxy.restore()  # let it reconnect
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
from typing import Self

from tests.compat.servers import HOST

log = logging.getLogger(__name__)


class TcpProxy:
    def __init__(self, upstream_port: int, upstream_host: str = HOST) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._cut = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.accepted = 0

    @property
    def connect_string(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> TcpProxy:
        thread = threading.Thread(target=self._accept_loop, name=f"proxy-{self.port}", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def cut(self) -> None:
        """Drop all current connections and refuse new ones until `restore`."""
        with self._lock:
            self._cut = True
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            _close(a)
            _close(b)

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self._stop.set()
        self.cut()
        _close(self._listener)
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                refused = self._cut
            if refused:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._pairs.append((client, upstream))
                self.accepted += 1
            thread = threading.Thread(target=self._pump, args=(client, upstream), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(a, selectors.EVENT_READ, b)
            selector.register(b, selectors.EVENT_READ, a)
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.2):
                    try:
                        data = key.fileobj.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    try:
                        key.data.sendall(data)
                    except OSError:
                        return
        except (OSError, ValueError):  # a socket closed under us by cut()
            return
        finally:
            selector.close()
            _close(a)
            _close(b)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
