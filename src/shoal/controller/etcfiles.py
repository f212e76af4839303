"""The files shoal writes for each container: /etc/hosts, /etc/hostname, /etc/resolv.conf."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shoal.model import Endpoint

if TYPE_CHECKING:
    from shoal.controller.controller import Controller

HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


@dataclass(frozen=True)
class EtcPaths:
    hosts: Path
    hostname: Path
    resolv_conf: Path


def host_resolv_conf(path: str = "/etc/resolv.conf") -> list[str]:
    """The host's resolv.conf without loopback nameservers (unreachable from a container)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split()
        if parts[:1] == ["nameserver"] and len(parts) > 1 and (
            parts[1].startswith("127.") or parts[1] == "::1"
        ):
            continue
        out.append(line)
    return out


class EtcFiles:
    def __init__(self, resolv_source: str = "/etc/resolv.conf") -> None:
        self.resolv_source = resolv_source

    def prepare(self, directory: Path, hostname: str) -> EtcPaths:
        directory.mkdir(parents=True, exist_ok=True)
        paths = EtcPaths(directory / "hosts", directory / "hostname", directory / "resolv.conf")
        paths.hosts.write_text(HOSTS_HEADER)
        paths.hostname.write_text(hostname + "\n")
        paths.resolv_conf.write_text("\n".join(host_resolv_conf(self.resolv_source)) + "\n")
        return paths

    def write(self, directory: Path, hostname: str, eps: list[Endpoint], ctl: Controller) -> None:
        lines = [HOSTS_HEADER]
        for ep in eps:
            for cidr in (ep.ipv4, ep.ipv6):
                if cidr:
                    lines.append(f"{cidr.split('/')[0]}\t{hostname}\n")
        (directory / "hosts").write_text("".join(lines))
