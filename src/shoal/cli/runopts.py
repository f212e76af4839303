"""`shoal run` flags -> the `POST /containers/create` body, shaped as docker 28 sends it.

The body keeps docker's field order and zero values (HostConfig's long tail included), so a
daemon, a proxy or a test sees the same bytes from `shoal run` as from `docker run`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Mapping

from shoal.cli.errors import CliError

RUN_FAILURE = 125  # docker's status for "the daemon (or the flags) failed", not the container
_MAC = re.compile(r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$")
BUILTIN_MODES = ("default", "bridge", "host", "none")


class RunError(CliError):
    """A `run` failure docker reports as `docker: <message>` plus a help hint, status 125."""

    def __init__(self, message: str, exit_code: int = RUN_FAILURE, help_hint: bool = True) -> None:
        text = f"shoal: {message}" + ("\n\nRun 'shoal run --help' for more information" if help_hint else "")
        super().__init__(text, exit_code)


@dataclass(frozen=True)
class RunOptions:
    """What the user asked for; flag names follow docker's."""

    image: str
    args: tuple[str, ...] = ()
    detach: bool = False
    interactive: bool = False
    tty: bool = False
    rm: bool = False
    name: str = ""
    hostname: str = ""
    user: str = ""
    workdir: str = ""
    env: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    ip: str = ""
    ip6: str = ""
    mac_address: str = ""
    aliases: tuple[str, ...] = ()
    entrypoint: str | None = None  # None: flag not given; "" resets the image's entrypoint
    detach_keys: str = ""
    runtime: str = ""  # "": the daemon's --default-runtime

    @property
    def attach_stdin(self) -> bool:
        return self.interactive and not self.detach

    @property
    def attached(self) -> bool:
        """docker attaches stdout/stderr unless detached (there is no -a here)."""
        return not self.detach


def user_defined(mode: str) -> bool:
    """container.NetworkMode.IsUserDefined: not default/bridge/host/none/container:X."""
    return mode not in BUILTIN_MODES and not mode.startswith("container:")


def validate_env(value: str, environ: Mapping[str, str]) -> str:
    """opts.ValidateEnv: `K` alone takes the local value when there is one."""
    key, sep, _ = value.partition("=")
    if not key:
        raise RunError(f"invalid environment variable: {value}")
    if sep or key not in environ:
        return value
    return f"{key}={environ[key]}"


def _labels(values: tuple[str, ...]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for value in values:
        key, _, val = value.partition("=")
        labels[key] = val
    return dict(sorted(labels.items()))  # a Go map: encoding/json sorts the keys


def endpoint_settings(ipam: dict[str, str] | None, aliases: list[str], mac: str) -> dict[str, Any]:
    """network.EndpointSettings with docker's zero values."""
    return {
        "IPAMConfig": ipam or None, "Links": None, "Aliases": aliases or None, "MacAddress": mac,
        "DriverOpts": None, "GwPriority": 0, "NetworkID": "", "EndpointID": "", "Gateway": "",
        "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0, "DNSNames": None,
    }


def endpoints_config(opts: RunOptions) -> tuple[str, dict[str, Any]]:
    """(NetworkMode, EndpointsConfig) as docker's parseNetworkOpts builds them."""
    if opts.mac_address and not _MAC.match(opts.mac_address):
        raise RunError(f"{opts.mac_address} is not a valid mac address")
    modes = list(opts.networks) or ["default"]
    kinds = {user_defined(m) for m in modes}
    if len(kinds) > 1:
        raise RunError("conflicting options: cannot attach both user-defined and non-user-defined network-modes")
    if opts.aliases and not user_defined(modes[0]):
        raise RunError("network-scoped aliases are only supported for user-defined networks")
    endpoints: dict[str, Any] = {}
    for index, mode in enumerate(modes):
        if mode in endpoints:
            raise RunError(f'network "{mode}" is specified multiple times')
        ipam: dict[str, str] = {}
        aliases: list[str] = []
        mac = ""
        if index == 0:
            ipam = {k: v for k, v in (("IPv4Address", opts.ip), ("IPv6Address", opts.ip6)) if v}
            aliases, mac = list(opts.aliases), opts.mac_address
        customized = bool(ipam or aliases or mac)
        # docker omits a lone, explicitly named network without options (the daemon adds it),
        # but always sends the implicit "default" one.
        if index == 0 and len(modes) == 1 and opts.networks and not customized:
            continue
        endpoints[mode] = endpoint_settings(ipam, aliases, mac)
    return modes[0], endpoints


def host_config(network_mode: str, auto_remove: bool, console: tuple[int, int], runtime: str = "") -> dict[str, Any]:
    """container.HostConfig exactly as the docker 28 CLI serializes its defaults (Runtime is
    omitempty, after ShmSize)."""
    out = {
        "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}},
        "NetworkMode": network_mode, "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": auto_remove, "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": list(console),
        "CapAdd": None, "CapDrop": None, "CgroupnsMode": "", "Dns": [], "DnsOptions": [], "DnsSearch": [],
        "ExtraHosts": None, "GroupAdd": None, "IpcMode": "", "Cgroup": "", "Links": None, "OomScoreAdj": 0,
        "PidMode": "", "Privileged": False, "PublishAllPorts": False, "ReadonlyRootfs": False,
        "SecurityOpt": None, "UTSMode": "", "UsernsMode": "", "ShmSize": 0, "Isolation": "", "CpuShares": 0,
        "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [],
        "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": [], "DeviceCgroupRules": None,
        "DeviceRequests": None, "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": -1,
        "OomKillDisable": False, "PidsLimit": 0, "Ulimits": [], "CpuCount": 0, "CpuPercent": 0,
        "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "MaskedPaths": None, "ReadonlyPaths": None,
    }
    if not runtime:
        return out
    keys = list(out)
    at = keys.index("ShmSize") + 1
    return {k: out[k] for k in keys[:at]} | {"Runtime": runtime} | {k: out[k] for k in keys[at:]}


def build_create_body(opts: RunOptions, console: tuple[int, int] = (0, 0),
                      environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The `POST /containers/create` body for `opts` (query: `?name=` when named)."""
    environ = os.environ if environ is None else environ
    if len(opts.hostname) > 64:
        raise RunError(f"invalid hostname ({opts.hostname}): hostname cannot exceed 64 characters")
    env = [validate_env(v, environ) for v in opts.env]
    mode, endpoints = endpoints_config(opts)
    entrypoint: list[str] | None = None
    if opts.entrypoint:
        entrypoint = [opts.entrypoint]
    elif opts.entrypoint is not None:
        entrypoint = [""]
    attach_out = opts.attached
    return {
        "Hostname": opts.hostname, "Domainname": "", "User": opts.user,
        "AttachStdin": opts.attach_stdin, "AttachStdout": attach_out, "AttachStderr": attach_out,
        "Tty": opts.tty, "OpenStdin": opts.interactive, "StdinOnce": opts.attach_stdin,
        "Env": env or None, "Cmd": list(opts.args) or None, "Image": opts.image, "Volumes": {},
        "WorkingDir": opts.workdir, "Entrypoint": entrypoint, "OnBuild": None, "Labels": _labels(opts.labels),
        "HostConfig": host_config(mode, opts.rm, console, opts.runtime),
        "NetworkingConfig": {"EndpointsConfig": endpoints},
    }


def start_failure_status(message: str) -> int:
    """runStartContainerErr: 127 for a missing command, 126 for a non-executable one."""
    text = message.removeprefix("Error response from daemon: ")
    if any(s in text for s in ("executable file not found", "no such file or directory",
                                "system cannot find the file specified")):
        return 127
    if "permission denied" in text or "is a directory" in text:
        return 126
    return RUN_FAILURE
