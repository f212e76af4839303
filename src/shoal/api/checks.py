"""What dockerd refuses in a well-typed request, refused here before anything is created.

These run after the Go type check (api.gotypes), so every value has its declared JSON kind.
Wording follows dockerd v20.10 where it has a message (daemon/container.go, opts/,
pkg/signal); elsewhere the message says what to change.
"""

from __future__ import annotations

import json
import re
import signal
from typing import Any

from shoal.errors import InvalidParameter
from shoal.model import validate
from shoal.runtime import resources
from shoal.runtime.logfile import check_log_config

_PORT = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?(?:/([a-z]+))?")
PROTOS = ("tcp", "udp", "sctp")
MIN_DURATION_NS = 1_000_000  # container.MinimumDuration: 1ms


def go_quote(text: str) -> str:
    """Close to Go's %q: a double-quoted string with escapes."""
    return json.dumps(text, ensure_ascii=False)


def no_nul(value: Any, field: str = "") -> None:
    """A NUL byte cannot reach argv, the environment, a file name or the kernel: execve and
    every path system call stop at it, so the process would get something else than asked."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidParameter(
                f"invalid {field or 'request'}: it contains a NUL byte (\\u0000), which a command, "
                "its environment, a file or the kernel cannot take; remove it")
    elif isinstance(value, dict):
        for key, item in value.items():
            no_nul(key, field or "request")
            no_nul(item, f"{field}.{key}" if field else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            no_nul(item, f"{field}[{i}]")


def port_range(text: str, ranges: bool = True) -> tuple[int, int, str] | None:
    """`PORT[/PROTO]` or `START-END[/PROTO]` -> (start, end, proto); None if it is neither."""
    m = _PORT.fullmatch(text)
    if m is None or (m.group(2) and not ranges):
        return None
    start = int(m.group(1))
    end = int(m.group(2) or start)
    proto = m.group(3) or "tcp"
    if proto not in PROTOS or not 1 <= start <= end <= 65535:
        return None
    return start, end, proto


def check_port_keys(ports: Any, ranges: bool) -> None:
    for key in ports or {}:
        if port_range(key, ranges) is None:
            raise InvalidParameter(f"invalid port specification: {go_quote(key)}")


def check_host_port(text: str) -> None:
    """HostPort: empty (any free port), a port or a range; dockerd parses it with nat.NewPort."""
    m = re.fullmatch(r"(\d{1,5})(?:-(\d{1,5}))?", text)
    if text and (m is None or not int(m.group(1)) <= int(m.group(2) or m.group(1)) <= 65535):
        raise InvalidParameter(f"invalid port specification: {go_quote(text)}")


def check_port_bindings(bindings: Any) -> None:
    """dockerd v20.10 parses a PortBindings key with nat.ParsePort: one port, not a range."""
    check_port_keys(bindings, ranges=False)
    for targets in (bindings or {}).values():
        for target in targets or ():
            check_host_port((target or {}).get("HostPort") or "")


def check_working_dir(path: str) -> None:
    if path and not path.startswith("/"):
        raise InvalidParameter(f"the working directory '{path}' is invalid, it needs to be an absolute path")


def check_env(env: Any) -> None:
    for item in env or ():
        if (item or "").partition("=")[0] == "":
            raise InvalidParameter(f"invalid environment variable: {item or ''}")


def is_ip(text: str) -> bool:
    return validate.ip_address(text.strip())


def check_resolver(host: dict) -> None:
    """What lands in the container's /etc/hosts and /etc/resolv.conf, one token each."""
    for item in host.get("ExtraHosts") or ():
        validate.extra_host(item or "")
    for item in host.get("Dns") or ():
        validate.dns_server(item or "")
    for item in host.get("DnsSearch") or ():
        validate.dns_search(item or "")
    for item in host.get("DnsOptions") or ():
        validate.dns_option(item or "")


def check_sysctls(host: dict) -> None:
    """runc's rules, at create: shoal gives every container its own IPC and UTS namespaces,
    and its own network namespace unless NetworkMode is host."""
    host_net = (host.get("NetworkMode") or "") == "host"
    for key, value in (host.get("Sysctls") or {}).items():
        validate.sysctl(key, value or "", host_net=host_net)


def check_restart(policy: Any, auto_remove: bool) -> None:
    name = (policy or {}).get("Name") or ""
    retries = (policy or {}).get("MaximumRetryCount") or 0
    if name in ("always", "unless-stopped", "no") and retries != 0:
        raise InvalidParameter(f"maximum retry count cannot be used with restart policy '{name}'")
    if name == "on-failure" and retries < 0:
        raise InvalidParameter("maximum retry count cannot be negative")
    if name not in ("", "no", "always", "unless-stopped", "on-failure"):
        raise InvalidParameter(f"invalid restart policy '{name}'")
    if auto_remove and name not in ("", "no"):
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")


def check_healthcheck(health: Any) -> None:
    health = health or {}
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        value = health.get(key) or 0
        if value and value < MIN_DURATION_NS:
            raise InvalidParameter(f"{key} in Healthcheck cannot be less than 1ms")
    if (health.get("Retries") or 0) < 0:
        raise InvalidParameter("Retries in Healthcheck cannot be negative")


def check_stop_signal(name: str) -> None:
    """pkg/signal.ParseSignal: a non-zero number, or a name with or without SIG."""
    if not name:
        return
    if name.isdigit():
        ok = int(name) != 0
    else:
        bare = name.upper().removeprefix("SIG")
        ok = "SIG" + bare in signal.Signals.__members__ or re.fullmatch(r"RT(MIN|MAX)([+-]\d+)?", bare) is not None
    if not ok:
        raise InvalidParameter(f"Invalid signal: {name}")


def check_config(config: dict) -> None:
    """container.Config, as dockerd's validateContainerConfig and the runtime need it."""
    check_working_dir(config.get("WorkingDir") or "")
    if config.get("Hostname"):
        validate.hostname(config["Hostname"])
    check_env(config.get("Env"))
    check_port_keys(config.get("ExposedPorts"), ranges=True)
    check_healthcheck(config.get("Healthcheck"))
    check_stop_signal(config.get("StopSignal") or "")


def check_host_config(host: dict, exposed: Any) -> None:
    """container.HostConfig, as dockerd's validateHostConfig does, plus what shoal reads."""
    check_port_bindings(host.get("PortBindings"))
    check_resolver(host)
    check_sysctls(host)
    check_restart(host.get("RestartPolicy"), bool(host.get("AutoRemove")))
    check_log_config(host.get("LogConfig"))
    resources.check(host)
    if host.get("PublishAllPorts"):
        for key in exposed or {}:
            if "-" in key:
                raise InvalidParameter(
                    f"cannot publish the port range {go_quote(key)} with PublishAllPorts: shoal publishes "
                    "single ports only; expose each port of the range")
