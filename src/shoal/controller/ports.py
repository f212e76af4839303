"""Host ports for published container ports: chosen, checked and held while in use.

A host port is free when no other container publishes it on an overlapping address and no
process of the host holds it.  The second check binds a socket to it in the daemon's host
namespace; the socket is kept open (bound, never listening) while the container runs, so
no host process can take the port later either.  Packets never reach it: the firewall's
DNAT rewrites them first.  No userland proxy process exists per port.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass, field

from shoal.errors import Conflict, InvalidParameter, Unavailable
from shoal.model.ports import PortBinding, PortRequest

EPHEMERAL = (49153, 60999)


def _overlaps(a: str, b: str) -> bool:
    """Same family, and the same address or either one is the wildcard."""
    if a == b:
        return True
    if ipaddress.ip_address(a).version != ipaddress.ip_address(b).version:
        return False
    return a in ("0.0.0.0", "::") or b in ("0.0.0.0", "::")


@dataclass
class _Held:
    owner: str
    binding: PortBinding
    sock: socket.socket | None = field(default=None, repr=False)


class PortAllocator:
    def __init__(self, ephemeral: tuple[int, int] = EPHEMERAL) -> None:
        self.ephemeral = ephemeral
        self._held: list[_Held] = []

    def holdings(self) -> dict[str, list[PortBinding]]:
        """owner -> its bindings; a binding whose socket was closed is left out (not held)."""
        out: dict[str, list[PortBinding]] = {}
        for h in self._held:
            if h.sock is not None and h.sock.fileno() != -1:
                out.setdefault(h.owner, []).append(h.binding)
        return out

    def bindings_of(self, owner: str) -> list[PortBinding]:
        return [h.binding for h in self._held if h.owner == owner]

    def taken_by_container(self, proto: str, host_ip: str, port: int) -> bool:
        return any(h.binding.proto == proto and h.binding.host_port == port
                   and _overlaps(h.binding.host_ip, host_ip) for h in self._held)

    def allocate(self, owner: str, req: PortRequest, container_ip: str) -> PortBinding:
        """Reserve one binding; raises Conflict with Docker's wording when the port is taken."""
        family = ipaddress.ip_address(container_ip).version
        host_ip = req.host_ip or ("0.0.0.0" if family == 4 else "::")
        if req.host_port:
            candidates = [req.host_port]
        else:
            candidates = list(range(*self.ephemeral))
        for port in candidates:
            if self.taken_by_container(req.proto, host_ip, port):
                if req.host_port:
                    raise Conflict(f"Bind for {_show(host_ip)}:{port} failed: port is already allocated")
                continue
            sock = _reserve(req.proto, host_ip, port)
            if sock is None:
                if req.host_port:
                    raise Conflict(
                        f"failed to bind host port for {_show(host_ip)}:{port}: address already in use"
                    )
                continue
            binding = PortBinding(req.proto, host_ip, port, container_ip, req.container_port)
            self._held.append(_Held(owner, binding, sock))
            return binding
        raise Unavailable("no free host port left in the ephemeral range")

    def release(self, owner: str, only: list[PortBinding] | tuple[PortBinding, ...] | None = None) -> None:
        """`only`: just these of the owner's bindings (one CNI attachment of a sandbox
        that has several)."""
        for held in [h for h in self._held if h.owner == owner and (only is None or h.binding in only)]:
            if held.sock is not None:
                held.sock.close()
            self._held.remove(held)


def _show(host_ip: str) -> str:
    return f"[{host_ip}]" if ":" in host_ip else host_ip


def _reserve(proto: str, host_ip: str, port: int) -> socket.socket | None:
    """Bind (no listen) so that host processes cannot take the port; None if one has it."""
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind((host_ip, port))
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            return None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise InvalidParameter(f"cannot publish on {host_ip}: not an address of this host") from None
        raise
    return sock


def parse_port_bindings(host_config: dict, exposed: dict | None = None) -> list[PortRequest]:
    """HostConfig.PortBindings {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]} -> requests."""
    out = []
    bindings = host_config.get("PortBindings") or {}
    if not isinstance(bindings, dict):
        raise InvalidParameter("HostConfig.PortBindings must be an object")
    for key, targets in bindings.items():
        port_s, _, proto = str(key).partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidParameter(f"invalid proto: {proto}")
        if proto == "sctp":
            raise InvalidParameter("sctp ports are not supported by shoal")
        try:
            cport = int(port_s)
        except ValueError:
            raise InvalidParameter(f"invalid port: {key}") from None
        for t in targets or [{}]:
            out.append(_request(cport, proto, t or {}))
    if host_config.get("PublishAllPorts") and exposed:
        known = {(r.container_port, r.proto) for r in out}
        for key in exposed:
            port_s, _, proto = str(key).partition("/")
            if (int(port_s), proto or "tcp") not in known:
                out.append(PortRequest(int(port_s), proto or "tcp"))
    return out


def _request(cport: int, proto: str, target: dict) -> PortRequest:
    host_ip = target.get("HostIp") or ""
    if host_ip:
        try:
            host_ip = str(ipaddress.ip_address(host_ip.strip("[]")))
        except ValueError:
            raise InvalidParameter(f"invalid IP address: {host_ip}") from None
    raw = target.get("HostPort") or ""
    try:
        hport = int(raw.split("-")[0]) if raw else 0
    except ValueError:
        raise InvalidParameter(f"invalid host port: {raw}") from None
    if not 0 <= hport <= 65535 or not 1 <= cport <= 65535:
        raise InvalidParameter(f"invalid port: {hport}:{cport}")
    return PortRequest(cport, proto, host_ip, hport)
