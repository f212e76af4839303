"""/_ping, /version, /info: what every client asks before anything else."""

from __future__ import annotations

import os
import platform
import socket
from typing import Any

from shoal import __version__
from shoal.api.app import MAX_API_VERSION, MIN_API_VERSION, Route
from shoal.api.http import Request, Response, json_response
from shoal.controller import Controller
from shoal.runtime import resources


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


class SystemRoutes:
    def __init__(self, ctl: Controller, data_root: str, pools: list[dict[str, Any]],
                 counts: Any = None, runtimes: dict[str, str] | None = None,
                 default_runtime: str = "runc") -> None:
        self.ctl = ctl
        self.runtimes = runtimes or {"runc": "runc"}
        self.default_runtime = default_runtime
        self.counts = counts
        self.data_root = data_root
        self.pools = pools

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/_ping", self.ping),
            Route("GET", "/version", self.version),
            Route("GET", "/info", self.info),
        ]

    async def ping(self, req: Request) -> Response:
        headers = [
            ("Cache-Control", "no-cache, no-store, must-revalidate"),
            ("Pragma", "no-cache"),
            ("Swarm", "inactive"),
        ]
        return Response(200, b"OK", headers)

    async def version(self, req: Request) -> Response:
        kernel = platform.release()
        return json_response({
            "Platform": {"Name": "shoal"},
            "Components": [{
                "Name": "Engine", "Version": __version__,
                "Details": {"ApiVersion": MAX_API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                            "Os": "linux", "Arch": _arch(), "KernelVersion": kernel},
            }],
            "Version": __version__,
            "ApiVersion": MAX_API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "shoal",
            "GoVersion": f"python{platform.python_version()}",
            "Os": "linux",
            "Arch": _arch(),
            "KernelVersion": kernel,
            "Experimental": False,
            "BuildTime": "",
        })

    def _warnings(self) -> list[str]:
        return _cluster_warnings(self.ctl)

    async def info(self, req: Request) -> Response:
        counts = self.counts() if self.counts else {"Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0,
                                        "ContainersStopped": 0, "Images": 0}
        drivers = sorted(self.ctl.drivers)
        return json_response({
            "ID": self.ctl.engine_id,
            **counts,
            "Driver": "overlay",
            "DriverStatus": [],
            "Plugins": {"Volume": [], "Network": drivers, "Authorization": None, "Log": ["json-file"]},
            **resources.host_support(),  # the limits shoald applies (runtime.resources)
            "IPv4Forwarding": True, "Debug": False,
            "NFd": len(os.listdir("/proc/self/fd")), "NGoroutines": 0,
            "SystemTime": "", "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs",
            "NEventsListener": 0,
            "KernelVersion": platform.release(),
            "OperatingSystem": _os_name(), "OSType": "linux", "Architecture": platform.machine(),
            "NCPU": os.cpu_count() or 1, "MemTotal": _mem_total(),
            "IndexServerAddress": "", "RegistryConfig": None,
            "DockerRootDir": self.data_root,
            "Name": socket.gethostname(),
            "Labels": [], "ExperimentalBuild": False,
            "ServerVersion": __version__,
            "Runtimes": {name: {"path": path} for name, path in self.runtimes.items()},
            "DefaultRuntime": self.default_runtime,
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                      "ControlAvailable": False, "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": True, "Isolation": "",
            "InitBinary": "", "SecurityOptions": [],
            "DefaultAddressPools": self.pools,
            # dockerd 20.10's fields for its classic cluster store (removed in Docker 23)
            "ClusterStore": self.ctl.cluster.kv.url if self.ctl.cluster else "",
            "ClusterAdvertise": self.ctl.cluster.advertise if self.ctl.cluster else "",
            "FirewallBackend": {"Driver": "none"},
            "Warnings": self._warnings(),
        })


def _cluster_warnings(ctl: Controller) -> list[str]:
    cluster = ctl.cluster
    if cluster is None:
        return []
    if cluster.joined:
        return [f"WARNING: the cluster store holds networks of an older shoal under {p}; they are not read: "
                f"remove them with that version, or delete the keys (etcdctl del --prefix {p})"
                for p in cluster.older_data]
    return [f"WARNING: not joined to the cluster store {cluster.kv.url} yet (global networks are unavailable); "
            "shoald keeps trying: check that etcd is running and reachable"]


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
