"""An image record and Docker's reference forms (familiar names, tags, repo digests)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from shoal.errors import InvalidParameter
from shoal.runtime.imageconfig import ImageConfig, chain_ids, check_digest

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")


@dataclass(frozen=True)
class Image:
    id: str  # "sha256:<64 hex>": the config digest (migrated images keep their older id)
    repo_tags: tuple[str, ...]
    created: int  # unix seconds
    size: int  # bytes of its layers' files
    architecture: str
    os: str
    config: ImageConfig
    config_digest: str = ""
    diff_ids: tuple[str, ...] = ()
    layers: tuple[tuple[str, str], ...] = ()  # (blob digest, media type), bottom first
    repo_digests: tuple[str, ...] = ()
    manifests: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # repo digest -> (digest, type)
    comment: str = ""  # the config's `comment` (inspect's Comment)

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    @property
    def top_layer(self) -> str | None:
        return chain_ids(self.diff_ids)[-1] if self.diff_ids else None

    def record(self) -> dict:
        return {"id": self.id, "config_digest": self.config_digest, "repo_tags": list(self.repo_tags),
                "repo_digests": list(self.repo_digests), "created": self.created, "size": self.size,
                "layers": [list(x) for x in self.layers],
                "manifests": {k: list(v) for k, v in self.manifests.items()}}


def _split_name(ref: str) -> tuple[str, str]:
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        name, tag = ref, "latest"
    return name, tag


def familiar(name: str) -> str:
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def normalize_name(ref: str) -> str:
    """`docker.io/library/busybox` -> `busybox:latest`; validates the reference format."""
    name, tag = _split_name(ref)
    name = familiar(name)
    if "@" in ref or not _NAME_RE.match(name) or not _TAG_RE.match(tag):
        raise InvalidParameter(f"invalid reference format: {ref!r}")
    return f"{name}:{tag}"


def normalize_digest_ref(ref: str) -> str:
    """`docker.io/library/alpine@sha256:...` -> `alpine@sha256:...`."""
    name, sep, digest = ref.partition("@")
    name = familiar(name)
    if not sep or not _NAME_RE.match(name):
        raise InvalidParameter(f"invalid reference format: {ref!r}")
    check_digest(digest)
    return f"{name}@{digest}"


