"""Manifests, indexes and platforms: which bytes a registry may answer and which entry of an
index this host runs (image-spec, distribution's manifest-v2-2, moby's pull_v2)."""

from __future__ import annotations

import hashlib
import json
import platform as _platform
from dataclasses import dataclass, field

from shoal.errors import InvalidParameter, ShoalError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
ACCEPT = f"{OCI_INDEX}, {DOCKER_LIST}, {DOCKER_MANIFEST}, {OCI_MANIFEST}"

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"
# old registries label configs loosely (distribution/distribution#1621): moby takes these as images
IMAGE_CONFIG_TYPES = (DOCKER_CONFIG, OCI_CONFIG, "application/octet-stream", "application/json", "text/html", "")

DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
LAYER_TYPES = (DOCKER_LAYER, DOCKER_FOREIGN_LAYER, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD,
               "application/vnd.oci.image.layer.nondistributable.v1.tar",
               "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
               "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")

SCHEMA1_TYPES = ("application/vnd.docker.distribution.manifest.v1+json",
                 "application/vnd.docker.distribution.manifest.v1+prettyjws")
SCHEMA1_MESSAGE = ("Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed. "
                   "Suggest the author of {ref} to upgrade the image to the OCI Format or Docker Image manifest "
                   "v2, schema 2. More information at https://docs.docker.com/go/deprecated-image-specs/")
ATTESTATION = "attestation-manifest"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, d: object) -> Descriptor:
        if not isinstance(d, dict) or not isinstance(d.get("digest"), str) or not isinstance(d.get("size"), int):
            raise InvalidParameter("invalid manifest: a descriptor needs a digest and a size")
        p = d.get("platform")
        plat = (normalize(Platform(str(p.get("os", "")), str(p.get("architecture", "")), str(p.get("variant", ""))))
                if isinstance(p, dict) else None)
        ann = d.get("annotations") if isinstance(d.get("annotations"), dict) else {}
        return cls(str(d.get("mediaType", "")), d["digest"], d["size"], plat, dict(ann), tuple(d.get("urls") or ()))


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


def detect_media_type(content_type: str | None, body: bytes, ref: str = "") -> str:
    """The manifest's type: the Content-Type without parameters when it is one we know,
    else the body's `mediaType`, else its shape, as moby does for loose registries."""
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    data = _json(body)
    declared = data.get("mediaType", "")
    if ctype in SCHEMA1_TYPES or declared in SCHEMA1_TYPES or ("fsLayers" in data and "layers" not in data):
        raise InvalidParameter(SCHEMA1_MESSAGE.format(ref=ref or "this image"))
    if ctype in INDEX_TYPES + MANIFEST_TYPES:
        if declared and declared != ctype:
            raise InvalidParameter(f"invalid manifest: mediaType {declared!r} does not match Content-Type {ctype!r}")
        return ctype
    if declared in INDEX_TYPES + MANIFEST_TYPES:
        return declared
    if declared:
        raise InvalidParameter(f"unsupported media type {declared}")
    if "config" in data or "layers" in data:
        return OCI_MANIFEST
    if "manifests" in data:
        return OCI_INDEX
    raise InvalidParameter("unsupported manifest format")


def _json(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidParameter("invalid manifest: not JSON") from None
    if not isinstance(data, dict):
        raise InvalidParameter("invalid manifest: not a JSON object")
    return data


def parse(body: bytes, media_type: str) -> Index | Manifest:
    data = _json(body)
    if media_type in INDEX_TYPES:
        entries = data.get("manifests")
        if not isinstance(entries, list):
            raise InvalidParameter("invalid manifest list: no manifests")
        return Index(media_type, tuple(Descriptor.from_json(e) for e in entries))
    if media_type not in MANIFEST_TYPES:
        raise InvalidParameter(f"unsupported media type {media_type}")
    layers = data.get("layers")
    if not isinstance(layers, list):
        raise InvalidParameter("invalid manifest: no layers")
    config = Descriptor.from_json(data.get("config"))
    check_config_type(config.media_type)
    return Manifest(media_type, config, tuple(Descriptor.from_json(layer) for layer in layers))


def check_config_type(media_type: str) -> None:
    """Only image configs: a plugin, a model (vnd.docker.ai.*) or a Helm chart is not a
    container image; Docker's message names what was found."""
    if media_type.lower().startswith("application/vnd.docker.ai."):
        raise InvalidParameter('AI models are not yet supported by the Engine, please use "docker model pull/run" instead')
    if media_type not in IMAGE_CONFIG_TYPES:
        cls = "plugin" if media_type == PLUGIN_CONFIG else "unknown"
        raise InvalidParameter(f'Encountered remote "{media_type}"({cls}) when fetching')


_ARCH = {"x86_64": "amd64", "x86-64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
         "i386": "386", "i686": "386", "386": "386", "armhf": "arm", "armel": "arm", "arm": "arm",
         "armv7l": "arm", "armv6l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
_OSES = {"linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos", "aix"}


def normalize(p: Platform) -> Platform:
    """containerd's normalisation, except arm64 keeps `v8` explicit (same meaning, one form)."""
    raw = p.architecture.lower()
    arch, variant = _ARCH.get(raw, raw), p.variant.lower()
    if arch == "arm64" and variant in ("", "8", "v8", "v8.0"):
        variant = "v8"
    elif arch == "arm":
        variant = {"armel": "v6", "armv6l": "v6"}.get(raw, variant or "v7")
        variant = variant if variant.startswith("v") else f"v{variant}"
    elif arch == "amd64" and variant == "v1":
        variant = ""
    return Platform(p.os.lower(), arch, variant)


def host_platform() -> Platform:
    return normalize(Platform("linux", _platform.machine()))


def parse_platform(text: str) -> Platform:
    """`--platform` / `platform=`: "linux/arm64/v8", "linux/amd64", or an arch or os alone."""
    parts = [p for p in text.strip().split("/")]
    if not text.strip() or len(parts) > 3 or any(not p for p in parts):
        raise InvalidParameter(f'"{text}": unknown operating system or architecture: invalid argument')
    host = host_platform()
    if len(parts) == 1:
        p = parts[0].lower()
        return host if p == host.os else Platform(p, host.architecture, host.variant) if p in _OSES \
            else normalize(Platform(host.os, p))
    return normalize(Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else ""))


def _acceptable(want: Platform) -> list[Platform]:
    """What `want` can run, best first (containerd's platforms.Only, reduced)."""
    out = [want]
    if want.architecture == "arm" and want.variant[1:].isdigit():
        out += [Platform(want.os, "arm", f"v{v}") for v in range(int(want.variant[1:]) - 1, 4, -1)]
    if want.architecture == "amd64" and want.variant[1:].isdigit():
        out += [Platform(want.os, "amd64", f"v{v}") for v in range(int(want.variant[1:]) - 1, 1, -1)]
        out.append(Platform(want.os, "amd64", ""))
    return out


def select_platform(index: Index, want: Platform | None = None) -> Descriptor:
    """The entry this host pulls: manifests and nested indexes only (unknown types and
    attestations skipped), matching the platform or carrying none, best match first."""
    want = normalize(want) if want else host_platform()
    accept = _acceptable(want)
    ranked = []
    for pos, d in enumerate(index.manifests):
        if d.media_type and d.media_type not in INDEX_TYPES + MANIFEST_TYPES:
            continue
        if d.annotations.get("vnd.docker.reference.type") == ATTESTATION:
            continue
        if d.platform is None:
            ranked.append((len(accept), pos, d))
        elif d.platform in accept:
            ranked.append((accept.index(d.platform), pos, d))
    if not ranked:
        raise ShoalError(f"no matching manifest for {want} in the manifest list entries")
    return min(ranked, key=lambda r: (r[0], r[1]))[2]
