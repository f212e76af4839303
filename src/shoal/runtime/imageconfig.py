"""An image's config as the image spec writes it, and the part of it a container inherits.

The raw config bytes are what the image id hashes, so they are kept as received (store.py);
`ImageConfig` is the parsed view shoal acts on. Keys it does not know stay in the raw bytes
and so survive push and save unchanged.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shoal.errors import InvalidParameter

DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chain_id(parent: str | None, diff_id: str) -> str:
    """ChainID per the image spec: equal lower stacks give equal ids, which is how layers are
    shared between images."""
    if parent is None:
        return diff_id
    return sha256_digest(f"{parent} {diff_id}".encode())


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    out: list[str] = []
    for diff in diff_ids:
        out.append(chain_id(out[-1] if out else None, diff))
    return out


def check_digest(digest: str) -> str:
    """Only sha256 digests are stored; the hex part names files, so it is checked strictly."""
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise InvalidParameter(f"invalid digest: {digest!r}")
    return hexpart


def host_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def _strings(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):  # Docker accepts a bare string for Cmd/Entrypoint in configs
        return (value,)
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class ImageConfig:
    """The `config` object of an image config: what a container inherits and inspect shows."""

    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = (DEFAULT_PATH_ENV,)
    working_dir: str = ""
    entrypoint: tuple[str, ...] | None = None
    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    volumes: tuple[str, ...] = ()
    stop_signal: str = ""
    healthcheck: Mapping[str, Any] | None = None

    def to_json(self) -> dict:
        return {"Cmd": list(self.cmd) if self.cmd is not None else None,
                "Env": list(self.env), "WorkingDir": self.working_dir,
                "Entrypoint": list(self.entrypoint) if self.entrypoint is not None else None,
                "User": self.user,
                "ExposedPorts": {p: {} for p in self.exposed_ports} or None,
                "Labels": dict(self.labels) or None,
                "Volumes": {v: {} for v in self.volumes} or None,
                "StopSignal": self.stop_signal or None,
                "Healthcheck": dict(self.healthcheck) if self.healthcheck else None}

    def to_spec(self) -> dict:
        """The `config` object as an image config writes it (empty fields left out)."""
        return {k: v for k, v in self.to_json().items() if v not in (None, "", [], {})}

    @classmethod
    def from_json(cls, data: Mapping | None) -> ImageConfig:
        data = data or {}
        env = data.get("Env")
        return cls(cmd=_strings(data.get("Cmd")),
                   env=tuple(env) if env is not None else (DEFAULT_PATH_ENV,),
                   working_dir=data.get("WorkingDir") or "",
                   entrypoint=_strings(data.get("Entrypoint")),
                   user=data.get("User") or "",
                   exposed_ports=tuple(sorted(data.get("ExposedPorts") or {})),
                   labels=dict(data.get("Labels") or {}),
                   volumes=tuple(sorted(data.get("Volumes") or {})),
                   stop_signal=data.get("StopSignal") or "",
                   healthcheck=dict(data["Healthcheck"]) if data.get("Healthcheck") else None)


def merge_env(image_env: Sequence[str], user_env: Sequence[str]) -> tuple[str, ...]:
    """Docker's merge: a user variable replaces the image's of the same name in place, new
    ones follow (a process sees one value per name)."""
    out = list(image_env)
    where = {e.split("=", 1)[0]: i for i, e in enumerate(out)}
    for entry in user_env:
        key = entry.split("=", 1)[0]
        if key in where:
            out[where[key]] = entry
        else:
            where[key] = len(out)
            out.append(entry)
    return tuple(out)


def container_args(config: ImageConfig, entrypoint: Sequence[str] | None, cmd: Sequence[str] | None
                   ) -> tuple[str, ...]:
    """Docker's Entrypoint + Cmd: the image's Cmd unless the user gives one; the image's
    Entrypoint unless the user gives one (`--entrypoint ""`, sent as [""], clears it and with
    it the image's Cmd)."""
    if entrypoint:
        ep = () if tuple(entrypoint) == ("",) else tuple(entrypoint)
        return ep + tuple(cmd or ())
    args = tuple(cmd) if cmd else tuple(config.cmd or ())
    ep = tuple(config.entrypoint or ()) if entrypoint is None else ()
    return ep + args


def inherited_config(request: Mapping[str, Any], image: ImageConfig) -> dict:
    """The container's Config with what Docker takes from the image when the request has
    none: ExposedPorts and Volumes (merged, as dockerd's `merge`), StopSignal, Healthcheck."""
    out = dict(request)
    if image.exposed_ports:
        out["ExposedPorts"] = {**{p: {} for p in image.exposed_ports}, **(request.get("ExposedPorts") or {})}
    if image.volumes:
        out["Volumes"] = {**(request.get("Volumes") or {}), **{v: {} for v in image.volumes}}
    if image.stop_signal and not request.get("StopSignal"):
        out["StopSignal"] = image.stop_signal
    if image.healthcheck and not request.get("Healthcheck"):
        out["Healthcheck"] = dict(image.healthcheck)
    return out


@dataclass(frozen=True)
class ParsedConfig:
    """The top of an image config that the store needs."""

    architecture: str
    os: str
    created: int  # unix seconds (0 when absent)
    diff_ids: tuple[str, ...]
    config: ImageConfig
    raw: Mapping[str, Any]


def parse_config(config: bytes) -> ParsedConfig:
    try:
        data = json.loads(config)
        rootfs = data["rootfs"]
        if rootfs.get("type") != "layers":
            raise ValueError(f"rootfs type {rootfs.get('type')!r}")
        diff_ids = tuple(rootfs.get("diff_ids") or ())
        for diff in diff_ids:
            check_digest(diff)
    except (ValueError, KeyError, TypeError, AttributeError, InvalidParameter) as err:
        raise InvalidParameter(f"invalid image config: {err}") from None
    return ParsedConfig(architecture=data.get("architecture") or "", os=data.get("os") or "",
                        created=_unix(data.get("created")), diff_ids=diff_ids,
                        config=ImageConfig.from_json(data.get("config")), raw=data)


def rfc3339_nano(when: float) -> str:
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(when)))
    frac = f"{when - int(when):.9f}"[2:].rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def _unix(text: Any) -> int:
    if not isinstance(text, str) or len(text) < 19:
        return 0
    try:
        return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0


def synthesise_config(diff_ids: Sequence[str], config: ImageConfig | None, *, created: float | None = None,
                      comment: str = "Imported from -") -> bytes:
    """The config dockerd writes for `docker import`: the host's platform, the import time,
    one history entry, and the --change settings. Its digest is the image id, so two imports
    of one tar are two images (as in Docker) sharing one layer on disk."""
    stamp = rfc3339_nano(time.time() if created is None else created)
    doc = {"architecture": host_arch(), "os": "linux", "created": stamp, "comment": comment,
           "config": (config or ImageConfig()).to_spec(),
           "history": [{"created": stamp, "comment": comment}],
           "rootfs": {"type": "layers", "diff_ids": list(diff_ids)}}
    return json.dumps(doc, separators=(",", ":")).encode()
