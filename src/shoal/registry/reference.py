"""Image references as Docker normalises them (distribution's reference/normalize.go).

`docker pull alpine` and `docker pull docker.io/library/alpine:latest` must land on the same
repository, and errors must read as dockerd's do, because users paste them into searches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shoal.errors import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_MAX = 255

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
_REFERENCE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")
_TAG_ONLY = re.compile(rf"^{_TAG}$")
_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")


def invalid(detail: str = "") -> InvalidParameter:
    return InvalidParameter("invalid reference format" + (f": {detail}" if detail else ""))


@dataclass(frozen=True)
class Reference:
    """A normalised reference: `domain` is never empty, `path` has `library/` where Docker
    adds it, and at least one of `tag` and `digest` is set (`tag` defaults to latest)."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The fully qualified repository name, "docker.io/library/alpine"."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The name as the CLI prints it: no docker.io/, no library/ for official images."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        short = self.path.removeprefix(OFFICIAL_PREFIX)
        return short if "/" not in short else self.path

    @property
    def remote(self) -> str:
        """The repository's path on the registry ("library/alpine")."""
        return self.path

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    @property
    def familiar(self) -> str:
        return self.familiar_name + self._suffix()

    @property
    def canonical(self) -> str:
        return self.name + self._suffix()

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest when there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_tag(self, tag: str) -> Reference:
        if not _TAG_ONLY.match(tag):
            raise InvalidParameter("invalid tag format")
        return Reference(self.domain, self.path, tag, self.digest)

    def with_digest(self, digest: str) -> Reference:
        """The digest form that RepoDigests show: no tag."""
        return Reference(self.domain, self.path, None, check_digest(digest))

    def __str__(self) -> str:
        return self.familiar


def check_digest(digest: str) -> str:
    if not _SHA256.match(digest):
        if re.match(r"^[a-z0-9]+:", digest) and not digest.startswith("sha256:"):
            raise InvalidParameter(f"unsupported digest algorithm: {digest.split(':', 1)[0]}")
        raise InvalidParameter("invalid checksum digest format")
    return digest


def split_domain(name: str) -> tuple[str, str]:
    """Docker's rule: the first component is a registry if it has a `.` or `:` or is
    localhost; otherwise the name is on Docker Hub."""
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"):
        domain, rest = DEFAULT_DOMAIN, name
    else:
        domain = first
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in rest:
        rest = OFFICIAL_PREFIX + rest
    return domain, rest


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """A reference as typed by a user; without tag or digest it gets `latest`
    (unless `default_tag` is False, as `from_api` needs). Checks in dockerd's order, so
    the same input fails with the same message."""
    if _HEX64.match(text):
        raise InvalidParameter(f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    domain, rest = split_domain(text)
    remote = rest.split(":", 1)[0]
    if remote.lower() != remote:
        raise invalid("repository name must be lowercase")
    m = _REFERENCE.match(f"{domain}/{rest}")
    if not m:
        raise invalid()
    name, tag, digest = m.groups()
    if len(name) > NAME_MAX:
        raise InvalidParameter(f"repository name must not be more than {NAME_MAX} characters")
    if digest is not None:
        check_digest(digest)
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, name[len(domain) + 1:], tag, digest)


def from_api(from_image: str, tag: str | None) -> Reference:
    """`POST /images/create?fromImage=&tag=` as dockerd reads it: a trailing `:` is dropped
    (old `pull -a`), and `tag` may be a digest, which replaces any tag in the name."""
    image = from_image.removesuffix(":")
    ref = parse(image, default_tag=False)
    if tag:
        if tag.startswith("sha256:") or re.match(r"^[a-z0-9]+:[0-9a-fA-F]{32,}$", tag):
            ref = Reference(ref.domain, ref.path, None, check_digest(tag))
        else:
            ref = ref.with_tag(tag)
    if ref.tag is None and ref.digest is None:
        ref = Reference(ref.domain, ref.path, DEFAULT_TAG, None)
    return ref

