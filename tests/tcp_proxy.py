"""A loopback TCP proxy that misbehaves on purpose: it drops a connection after N bytes
from the server (a truncated download), or flips one byte past an offset (a corrupt one).
It records what clients sent, so a test can see the Range header of a resumed download."""

from __future__ import annotations

import socket
import threading


class TcpProxy:
    def __init__(self, target_port: int, cut_after: int | None = None, cuts: int = 1,
                 flip_after: int | None = None) -> None:
        self.target = ("127.0.0.1", target_port)
        self.cut_after, self.cuts, self.flip_after = cut_after, cuts, flip_after
        self.sent = bytearray()  # everything clients sent, all connections
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True, name="shr-proxy").start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                with self._lock:
                    self.sent += data
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            _close(upstream)

    def _down(self, upstream: socket.socket, client: socket.socket) -> None:
        seen = 0
        try:
            while data := upstream.recv(65536):
                with self._lock:
                    cut = self.cut_after is not None and self.cuts > 0 and seen + len(data) > self.cut_after
                    if cut:
                        self.cuts -= 1
                if cut:
                    client.sendall(data[: self.cut_after - seen])
                    break
                if self.flip_after is not None and seen <= self.flip_after < seen + len(data):
                    i = self.flip_after - seen
                    data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
                seen += len(data)
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client)
            _close(upstream)

    def close(self) -> None:
        self._stop = True
        _close(self._listener)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
