"""The embedded DNS server: one asyncio object in the daemon, listening in every sandbox.

Each sandbox gets a UDP socket and a listening TCP socket bound to 127.0.0.11:53 inside
its namespace (`shoal.dns.sockets`), served by the daemon's event loop; the socket tells
which sandbox is asking, and the shared `DnsRecords` says what that sandbox may see.
Docker instead binds random ports and DNATs 127.0.0.11:53 to them with iptables rules in
the container; binding :53 directly needs no firewall rules and gives the same view.

Local names are answered inside `datagram_received` (no task); forwards and TCP
connections run as tasks that `remove_sandbox` and `close` cancel.  The sockets keep the
namespace alive, so call `remove_sandbox` before the sandbox's netns is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.message

from shoal.dns.forward import Forwarder, parse_upstream
from shoal.dns.message import Resolver, SandboxConf
from shoal.dns.records import DnsRecords
from shoal.dns.sockets import open_listeners
from shoal.errors import ShoalError

ADDRESS = ("127.0.0.11", 53)
TCP_IDLE = 10.0  # seconds a TCP client may stay silent
MAX_TCP_PER_SANDBOX = 32


@dataclass(eq=False)
class _Listener:
    conf: SandboxConf
    path: str
    udp: asyncio.DatagramTransport | None = None
    tcp: asyncio.Server | None = None
    conns: set[asyncio.StreamWriter] = field(default_factory=set)
    tasks: set[asyncio.Task] = field(default_factory=set)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer, lst: _Listener):
        self.server, self.lst = server, lst
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        reply, query = self.server.resolver.prepare(self.lst.conf, data, udp=True)
        if reply is not None:
            self.transport.sendto(reply, addr)
        elif query is not None:
            self.server._spawn(self.lst, self._forward(query, addr))

    async def _forward(self, query: dns.message.Message, addr) -> None:
        reply = await self.server.resolver.forward(self.lst.conf, query, udp=True)
        if not self.transport.is_closing():
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        """ICMP for a client that went away: nothing to do."""


class DnsServer:
    """Docker's embedded resolver for all sandboxes of one daemon.

    `upstreams` are the default forward targets ("ip" or "ip:port"; at most 3 are used);
    a sandbox can get its own list in `add_sandbox` (`--dns`, or [] for no forwarding).
    """

    def __init__(
        self, upstreams: Sequence[str], records: DnsRecords, *, forward_timeout: float = 4.0,
        max_forwards: int = 1024, address: tuple[str, int] = ADDRESS, tcp_idle: float = TCP_IDLE,
    ):
        self.upstreams = _check_upstreams(upstreams)
        self.records = records
        self.forwarder = Forwarder(timeout=forward_timeout, max_concurrent=max_forwards)
        self.resolver = Resolver(records, self.forwarder)
        self.address = address
        self.tcp_idle = tcp_idle
        self._sandboxes: dict[str, _Listener] = {}

    @property
    def sandboxes(self) -> dict[str, str]:
        """sandbox id -> netns path of every sandbox served."""
        return {sid: lst.path for sid, lst in self._sandboxes.items()}

    async def add_sandbox(
        self, sandbox_id: str, netns_path: str, *, upstreams: Sequence[str] | None = None, ndots_set: bool = False,
    ) -> None:
        """Start serving 127.0.0.11:53 in `netns_path`.  Idempotent: again with the same path
        only updates the settings; with another path it moves the listeners."""
        ups = self.upstreams if upstreams is None else _check_upstreams(upstreams)
        conf = SandboxConf(sandbox_id, ups, ndots_set)
        current = self._sandboxes.get(sandbox_id)
        if current is not None and current.path == netns_path:
            current.conf = conf
            return
        if current is not None:
            await self.remove_sandbox(sandbox_id)
        try:
            udp_sock, tcp_sock = await open_listeners(netns_path, self.address)
        except OSError as exc:
            raise ShoalError(f"cannot start the embedded DNS server in sandbox {sandbox_id[:12]}: {exc}") from exc
        lst = _Listener(conf, netns_path)
        try:
            loop = asyncio.get_running_loop()
            lst.udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self, lst), sock=udp_sock)
            lst.tcp = await asyncio.start_server(
                lambda r, w: self._serve_tcp(lst, r, w), sock=tcp_sock, limit=2**16 + 2,
            )
        except BaseException:
            _close_listener(lst)
            udp_sock.close()
            tcp_sock.close()
            raise
        self._sandboxes[sandbox_id] = lst

    async def remove_sandbox(self, sandbox_id: str) -> None:
        """Stop serving the sandbox and drop every socket in it; unknown ids are fine."""
        lst = self._sandboxes.pop(sandbox_id, None)
        if lst is None:
            return
        _close_listener(lst)
        tasks = list(lst.tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if lst.tcp is not None:
            await lst.tcp.wait_closed()

    async def close(self) -> None:
        for sandbox_id in list(self._sandboxes):
            await self.remove_sandbox(sandbox_id)

    def _spawn(self, lst: _Listener, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        lst.tasks.add(task)
        task.add_done_callback(lst.tasks.discard)

    async def _serve_tcp(self, lst: _Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Length-framed messages, answered in order, until EOF, an error or TCP_IDLE."""
        if len(lst.conns) >= MAX_TCP_PER_SANDBOX or lst.udp is None or lst.udp.is_closing():
            writer.close()
            return
        lst.conns.add(writer)
        task = asyncio.current_task()
        if task is not None:
            lst.tasks.add(task)
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readexactly(2), self.tcp_idle)
                    wire = await asyncio.wait_for(reader.readexactly(int.from_bytes(head, "big")), self.tcp_idle)
                except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
                    return
                reply = await self.resolver.handle(lst.conf, wire, udp=False)
                if reply is None:
                    return
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        except ConnectionError:
            return
        finally:
            lst.conns.discard(writer)
            if task is not None:
                lst.tasks.discard(task)
            writer.close()


def _close_listener(lst: _Listener) -> None:
    if lst.udp is not None:
        lst.udp.close()
    if lst.tcp is not None:
        lst.tcp.close()
    for w in list(lst.conns):
        with contextlib.suppress(Exception):
            w.close()


def _check_upstreams(upstreams: Sequence[str]) -> tuple[str, ...]:
    """Validated now (InvalidParameter on a bad one) so queries never fail on parsing."""
    for u in upstreams:
        parse_upstream(u)
    return tuple(upstreams)
