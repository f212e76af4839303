"""The files shoal writes for each container: /etc/hosts, /etc/hostname, /etc/resolv.conf.

Content comes from shoal.dns.conf (Docker's rules): a container on at least one
user-defined network gets the embedded resolver (127.0.0.11); one only on the default
bridge gets the upstream servers directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shoal.dns import render_hosts, render_resolv_conf
from shoal.model import Endpoint


@dataclass(frozen=True)
class EtcPaths:
    hosts: Path
    hostname: Path
    resolv_conf: Path


def read_host_resolv_conf(path: str = "/etc/resolv.conf") -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


class EtcFiles:
    def __init__(self, host_resolv: str = "", dns: tuple[str, ...] = ()) -> None:
        self.host_resolv = host_resolv
        self.dns = tuple(dns)

    def paths(self, directory: Path) -> EtcPaths:
        return EtcPaths(directory / "hosts", directory / "hostname", directory / "resolv.conf")

    def prepare(self, directory: Path, hostname: str) -> EtcPaths:
        directory.mkdir(parents=True, exist_ok=True)
        paths = self.paths(directory)
        paths.hosts.write_text(render_hosts(hostname, []))
        paths.hostname.write_text(hostname + "\n")
        paths.resolv_conf.write_text(render_resolv_conf(self.host_resolv, embedded=False, dns=self.dns))
        return paths

    def write(self, directory: Path, hostname: str, eps: list[Endpoint], *, embedded: bool,
              dns: tuple[str, ...] = (), dns_search: tuple[str, ...] = (), dns_options: tuple[str, ...] = (),
              extra_hosts: tuple[tuple[str, str], ...] = ()) -> None:
        paths = self.paths(directory)
        first = eps[0] if eps else None
        ips = [a for a in ((first.ipv4, first.ipv6) if first else ()) if a]
        paths.hosts.write_text(render_hosts(hostname, ips, extra_hosts))
        self.write_resolv(directory, embedded=embedded, dns=dns, dns_search=dns_search, dns_options=dns_options)

    def write_resolv(self, directory: Path, *, embedded: bool, dns: tuple[str, ...] = (),
                     dns_search: tuple[str, ...] = (), dns_options: tuple[str, ...] = ()) -> None:
        """Rewritten in place (same inode), so the file bind-mounted into a running
        container changes under it: a default-bridge container connected to a user network
        switches to the embedded resolver at once, as Docker's does."""
        self.paths(directory).resolv_conf.write_text(render_resolv_conf(
            self.host_resolv, embedded=embedded, dns=dns or self.dns, dns_search=dns_search,
            dns_options=dns_options,
        ))
