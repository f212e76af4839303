"""One check per kind of string that reaches the kernel, a file or nft, used by every entry
point (API, drivers, firewall, controller) so a value is judged the same way wherever it comes in.

Measured against dockerd 20.10 (2026-12-01): dockerd's daemon takes most of these unchecked
and leaves them to the kernel or runc at start (a 500), or writes them into /etc/hosts and
/etc/resolv.conf as they are (a newline in a search domain adds a line). Here each is refused
at the edge with a 400 and nothing created. Where dockerd (or the docker CLI, or runc) has a
message for the same thing, it is used word for word: add-host, MAC addresses, sysctls.
"""

from __future__ import annotations

import ipaddress
import re

from shoal.errors import InvalidParameter

IFNAMSIZ = 16  # the kernel's buffer, NUL included: 15 bytes of name
HOST_NAME_MAX = 64  # sethostname(2) refuses longer (dockerd: a 500 from runc at start)
DOMAIN_MAX = 255  # the docker CLI's limit for --dns-search
_IFNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]*")
_MAC = re.compile(r"[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}|[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}")
_SYSCTL = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_@-]+)*")
# runc's list (libcontainer/configs/validate): the IPC namespace's sysctls
IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
               "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def _quote(text: str) -> str:
    """Close to Go's %q, as dockerd's messages print the value."""
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return '"' + "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in out) + '"'


def _has_control(text: str) -> bool:
    """Control characters and other unprintables (line separators included): in a file
    written line by line, any of them can end a line or hide what follows."""
    return not text.isprintable()


def ifname(name: str, what: str = "interface name", room: int = 0) -> str:
    """A Linux interface name that nft can also quote: 1-15 bytes (less `room`, for a number
    the daemon appends) of letters, digits and `_.@-`, not starting with `.`, `@` or `-`.
    The kernel also takes other bytes (but no '/', ':' or white space, and not '.' or '..');
    those are refused here because they would need escaping in nft's text or, like `*`,
    mean something there."""
    limit = IFNAMSIZ - 1 - room
    if not name:
        raise InvalidParameter(f"invalid {what}: it is empty")
    if len(name.encode()) > limit:
        raise InvalidParameter(f"invalid {what} {_quote(name)}: it is too long, at most {limit} bytes")
    if not _IFNAME.fullmatch(name):
        raise InvalidParameter(f"invalid {what} {_quote(name)}: use letters, digits and _ . @ -, "
                               "starting with a letter, digit or _")
    return name


def hostname(name: str) -> str:
    """What /etc/hostname, /etc/hosts and sethostname(2) can take: at most 64 bytes, no white
    space or control characters (dockerd takes anything and fails at start if the kernel
    refuses; a newline would add a line to /etc/hosts)."""
    if len(name.encode()) > HOST_NAME_MAX:
        raise InvalidParameter(f"invalid hostname {_quote(name)}: it is longer than {HOST_NAME_MAX} bytes")
    if _has_control(name) or any(c.isspace() for c in name):
        raise InvalidParameter(f"invalid hostname {_quote(name)}: it contains white space or a control character")
    return name


def ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def extra_host(item: str) -> tuple[str, str]:
    """`NAME:IP` for /etc/hosts (dockerd's opts.ValidateExtraHost; IP may be host-gateway).
    dockerd lets control characters through into the file; here they are refused."""
    name, sep, ip = item.partition(":")
    if not sep or not name:
        raise InvalidParameter(f"bad format for add-host: {_quote(item)}")
    if ip != "host-gateway" and not ip_address(ip):
        raise InvalidParameter(f"invalid IP address in add-host: {_quote(ip)}")
    if _has_control(name):
        raise InvalidParameter(f"bad format for add-host: {_quote(item)}: the name contains a control character")
    return name, ip


def dns_server(text: str) -> str:
    if not ip_address(text.strip()):
        raise InvalidParameter(f"invalid HostConfig.Dns: {text} is not an ip address")
    return text


def dns_search(domain: str) -> str:
    """A search domain for resolv.conf: one token (no white space, no control character), at
    most 255 bytes; "." stands for none. The docker CLI says "is not a valid domain"."""
    if not domain or len(domain.encode()) > DOMAIN_MAX or _has_control(domain) or any(c.isspace() for c in domain):
        raise InvalidParameter(f"{domain} is not a valid domain")
    return domain


def dns_option(option: str) -> str:
    """A resolv.conf option: one token, as `ndots:2` or `rotate`."""
    if not option or _has_control(option) or any(c.isspace() for c in option):
        raise InvalidParameter(f"invalid DNS option {_quote(option)}: one word such as ndots:2 or rotate")
    return option


def mac(text: str) -> str:
    """An interface's EUI-48 address in one of Go's net.ParseMAC spellings, as dockerd's
    message words it; a multicast one (lowest bit of the first byte) no interface can take.
    Returns it as `02:42:ac:11:00:02`."""
    if not _MAC.fullmatch(text):
        raise InvalidParameter(f"address {text}: invalid MAC address")
    digits = re.sub(r"[:.-]", "", text).lower()
    if int(digits[:2], 16) & 1:
        raise InvalidParameter(f"invalid MAC address {text}: a multicast address cannot be an interface's address")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def sysctl(key: str, value: str, *, host_net: bool = False, host_ipc: bool = False, host_uts: bool = False) -> None:
    """A container sysctl, as runc allows it (its words): only those of a namespace the
    container has of its own. The key must be a plain dotted name, so that it names a file
    under /proc/sys and nothing else."""
    if not _SYSCTL.fullmatch(key) or key.startswith("-"):
        raise InvalidParameter(f"invalid sysctl {_quote(key)}: a dotted name such as net.ipv4.ip_forward")
    if _has_control(value):
        raise InvalidParameter(f"invalid value for sysctl {_quote(key)}: it contains a control character")
    if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
        if host_ipc:
            raise InvalidParameter(f"sysctl {_quote(key)} is not allowed in the hosts ipc namespace")
        return
    if key.startswith("net."):
        if host_net:
            raise InvalidParameter(f"sysctl {_quote(key)} not allowed in host network namespace")
        return
    if not host_uts and key == "kernel.domainname":
        return
    if not host_uts and key == "kernel.hostname":
        raise InvalidParameter(f'sysctl {_quote(key)} is not allowed as it conflicts with the OCI "hostname" field')
    raise InvalidParameter(f"sysctl {_quote(key)} is not in a separate kernel namespace")
