"""Image references the way distribution/reference parses them for the docker CLI.

The CLI needs three things from a reference: whether it is valid (docker refuses bad names
before any request, with these exact messages), its normalized name for the API
(`docker.io/library/busybox`, as `docker tag` and the pull after `run` send it), and its
familiar form for humans (`busybox:latest`, as `Unable to find image ...` prints it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_MAX = 255

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}"
_REFERENCE = re.compile(
    rf"^((?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)(?::({_TAG}))?(?:@({_DIGEST}))?$"
)
_HEX64 = re.compile(r"^[a-f0-9]{64}$")


@dataclass(frozen=True)
class Reference:
    """A normalized named reference: `domain/path[:tag][@digest]`."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    def name(self) -> str:
        """The full name the API expects, e.g. `docker.io/library/busybox`."""
        return f"{self.domain}/{self.path}"

    def familiar_name(self) -> str:
        """`busybox` for `docker.io/library/busybox`, `me/app` for `docker.io/me/app`."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name()
        return self.path.removeprefix(OFFICIAL_PREFIX) if self.path.count("/") == 1 else self.path

    def familiar_string(self) -> str:
        text = self.familiar_name()
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text

    def with_default_tag(self) -> "Reference":
        """reference.TagNameOnly: a bare name means `:latest`."""
        if self.tag or self.digest:
            return self
        return Reference(self.domain, self.path, DEFAULT_TAG)


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost" and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder


def parse_normalized(text: str) -> Reference:
    """reference.ParseNormalizedNamed; ValueError carries docker's message."""
    if _HEX64.match(text):
        raise ValueError(f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_domain(text)
    remote = remainder.split(":", 1)[0] if ":" in remainder else remainder
    if remote.lower() != remote:
        raise ValueError(f"invalid reference format: repository name ({remote}) must be lowercase")
    full = f"{domain}/{remainder}"
    if not full or full == "/":
        raise ValueError("repository name must have at least one component")
    match = _REFERENCE.match(full)
    if not match:
        raise ValueError("invalid reference format")
    name, tag, digest = match.group(1), match.group(2) or "", match.group(3) or ""
    if len(name) > NAME_MAX:
        raise ValueError(f"repository name must not be more than {NAME_MAX} characters")
    first, _, path = name.partition("/")
    return Reference(first, path, tag, digest)


def is_image_id(text: str) -> bool:
    """A full ID (`sha256:<64 hex>` or 64 hex) is not a name and is never pulled."""
    return bool(_HEX64.match(text.removeprefix("sha256:")))


def familiar(text: str) -> str:
    """Best-effort familiar form for display; unparsable text is shown as given."""
    try:
        return parse_normalized(text).familiar_string()
    except ValueError:
        return text


def image_path(name: str) -> str:
    """An image reference as the Go client puts it in a path: `/`, `:` and `@` stay as they are."""
    return quote(name, safe="/:@")
