"""Rows for `shoal ps` and `shoal images`: docker's formatter contexts, column by column.

docker renders `ps`/`images` templates against row objects whose fields are methods
(`.ID`, `.Command`, `.RunningFor`, ...); `{{json .}}` marshals every method. These classes
reproduce the docker 28 CLI's methods, headers, humanized times and sizes.
"""

from __future__ import annotations

import time
import unicodedata
from datetime import datetime
from typing import Any, Callable

from shoal.cli.govalues import GoValue, encode_json
from shoal.cli.netviews import truncate_id
from shoal.cli.refs import Reference, parse_normalized
from shoal.cli.template_funcs import go_quote
from shoal.humanize import human_duration

CONTAINER_TABLE_FORMAT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
CONTAINER_RAW_FORMAT = (
    "container_id: {{.ID}}\nimage: {{.Image}}\ncommand: {{.Command}}\ncreated_at: {{.CreatedAt}}\n"
    "state: {{- pad .State 1 0}}\nstatus: {{- pad .Status 1 0}}\nnames: {{.Names}}\n"
    "labels: {{- pad .Labels 1 0}}\nports: {{- pad .Ports 1 0}}\n"
)
CONTAINER_HEADERS = {
    "ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
    "Labels": "LABELS", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS",
    "Platform": "PLATFORM",
}
IMAGE_TABLE_FORMAT = (
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
)
IMAGE_RAW_FORMAT = (
    "repository: {{ .Repository }}\ntag: {{.Tag}}\nimage_id: {{.ID}}\ncreated_at: {{.CreatedAt}}\n"
    "virtual_size: {{.Size}}\n"
)
IMAGE_HEADERS = {
    "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS", "VirtualSize": "SIZE",
    "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
}
_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


# ---------------------------------------------------------------------------------------------
# go-units and Go's time/fmt


def human_size(size: float, precision: int = 4) -> str:
    """units.HumanSizeWithPrecision: decimal units, `%.*g`."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.{precision}g}{units[i]}"


def go_unix_time(seconds: int) -> str:
    """time.Unix(s, 0).String() in the local zone: `2024-05-01 10:00:00 +0200 CEST`."""
    try:
        local = datetime.fromtimestamp(seconds).astimezone()
    except (OverflowError, OSError, ValueError):
        return str(seconds)
    return local.strftime("%Y-%m-%d %H:%M:%S %z ") + (local.tzname() or local.strftime("%z"))


def ellipsis(text: str, width: int) -> str:
    """formatter.Ellipsis: cut to `width` display cells, ending in `…`."""
    if width <= 0:
        return ""
    cells = [2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text]
    if sum(cells) <= width:
        return text
    if width == 1:
        return text[:1]
    total = 0
    for i, cell in enumerate(cells):
        if total + cell > width - 1:
            return text[:i] + "…"
        total += cell
    return text


def _since(created: int, now: float | None) -> str:
    return human_duration((time.time() if now is None else now) - created) + " ago"


class NilPointer(GoValue):
    """A nil *T: `<nil>` in templates, `null` in JSON (docker's Platform column)."""

    go_type = "*formatter.Platform"

    def go_str(self) -> str:
        return "<nil>"

    def go_json(self) -> str:
        return "null"

    def truthy(self) -> bool:
        return False


class MethodRow(GoValue):
    """A row whose columns are zero-argument methods named in `FIELDS`."""

    FIELDS: tuple[str, ...] = ()
    EXTRA: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.used: set[str] = set()  # columns a template touched (ps asks for sizes if .Size is)

    def method(self, name: str) -> Callable[..., Any] | None:
        if name in self.FIELDS or name in self.EXTRA:
            self.used.add(name)
            return getattr(self, name)
        return None

    def go_json(self) -> str:
        """formatter.MarshalJSON: every column, keys sorted; json.Marshal escapes HTML."""
        for name in self.FIELDS:
            self.used.add(name)
        text = encode_json({name: getattr(self, name)() for name in self.FIELDS})
        for char, escaped in _HTML.items():
            text = text.replace(char, escaped)
        return text

    def go_str(self) -> str:
        return "&{" + " ".join(str(getattr(self, name)()) for name in self.FIELDS) + "}"


# ---------------------------------------------------------------------------------------------
# ps


class ContainerRow(MethodRow):
    """formatter.ContainerContext over one `GET /containers/json` entry."""

    go_type = "*formatter.ContainerContext"
    FIELDS = ("Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts", "Names", "Networks",
              "Platform", "Ports", "RunningFor", "Size", "State", "Status")
    EXTRA = ("Label",)

    def __init__(self, summary: dict[str, Any], trunc: bool = True, now: float | None = None) -> None:
        super().__init__()
        self.c = summary
        self.trunc = trunc
        self.now = now

    def _str(self, key: str) -> str:
        value = self.c.get(key)
        return value if isinstance(value, str) else ""

    def ID(self) -> str:  # noqa: N802 - Go method names are the template field names
        return truncate_id(self._str("Id")) if self.trunc else self._str("Id")

    def Names(self) -> str:  # noqa: N802
        names = [str(n).removeprefix("/") for n in self.c.get("Names") or []]
        if self.trunc:
            return next((n for n in names if "/" not in n), "")
        return ",".join(names)

    def Image(self) -> str:  # noqa: N802
        image = self._str("Image")
        if not image:
            return "<no image>"
        if not self.trunc:
            return image
        if truncate_id(self._str("ImageID")) == truncate_id(image):
            return truncate_id(image)
        try:
            ref = parse_normalized(image)
        except ValueError:
            return image
        return Reference(ref.domain, ref.path, ref.tag).familiar_string()  # digest dropped, tag kept

    def Command(self) -> str:  # noqa: N802
        command = self._str("Command")
        return go_quote(ellipsis(command, 20) if self.trunc else command)

    def CreatedAt(self) -> str:  # noqa: N802
        return go_unix_time(int(self.c.get("Created") or 0))

    def RunningFor(self) -> str:  # noqa: N802
        return _since(int(self.c.get("Created") or 0), self.now)

    def Platform(self) -> GoValue:  # noqa: N802
        return NilPointer()

    def Ports(self) -> str:  # noqa: N802
        return display_ports(self.c.get("Ports") or [])

    def State(self) -> str:  # noqa: N802
        return self._str("State")

    def Status(self) -> str:  # noqa: N802
        return self._str("Status")

    def Size(self) -> str:  # noqa: N802
        rw, root = int(self.c.get("SizeRw") or 0), int(self.c.get("SizeRootFs") or 0)
        text = human_size(rw, 3)
        return f"{text} (virtual {human_size(root, 3)})" if root > 0 else text

    def Labels(self) -> str:  # noqa: N802
        labels = self.c.get("Labels") or {}
        return ",".join(sorted(f"{k}={v}" for k, v in labels.items()))

    def Label(self, name: str) -> str:  # noqa: N802
        return str((self.c.get("Labels") or {}).get(name, ""))

    def Mounts(self) -> str:  # noqa: N802
        names = []
        for mount in self.c.get("Mounts") or []:
            name = mount.get("Name") or mount.get("Source") or ""
            names.append(ellipsis(name, 15) if self.trunc else name)
        return ",".join(names)

    def LocalVolumes(self) -> str:  # noqa: N802
        return str(sum(1 for m in self.c.get("Mounts") or [] if m.get("Driver") == "local"))

    def Networks(self) -> str:  # noqa: N802
        """Comma-joined network names, sorted (Go's map order makes docker's unstable)."""
        return ",".join(sorted(((self.c.get("NetworkSettings") or {}).get("Networks") or {}).keys()))


def display_ports(ports: list[dict[str, Any]]) -> str:
    """formatter.DisplayablePorts, for the common shapes (published and exposed ports)."""
    published, exposed = [], []
    for port in sorted(ports, key=lambda p: (p.get("PrivatePort", 0), p.get("IP", ""), p.get("PublicPort", 0))):
        private, kind = port.get("PrivatePort", 0), port.get("Type", "tcp")
        if port.get("IP"):
            host = f"[{port['IP']}]" if ":" in port["IP"] else port["IP"]
            published.append(f"{host}:{port.get('PublicPort', 0)}->{private}/{kind}")
        else:
            exposed.append(f"{private}/{kind}")
    return ", ".join(exposed + published)


# ---------------------------------------------------------------------------------------------
# images


class ImageRow(MethodRow):
    """formatter.imageContext: one (repository, tag) of one image."""

    go_type = "*formatter.imageContext"
    FIELDS = ("Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository", "SharedSize", "Size",
              "Tag", "UniqueSize", "VirtualSize")

    def __init__(self, summary: dict[str, Any], repo: str, tag: str, digest: str, trunc: bool = True,
                 now: float | None = None) -> None:
        super().__init__()
        self.i = summary
        self.repo, self.tag, self.digest = repo, tag, digest
        self.trunc = trunc
        self.now = now

    def _int(self, key: str) -> int:
        value = self.i.get(key)
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0

    def ID(self) -> str:  # noqa: N802
        image_id = str(self.i.get("Id") or "")
        return truncate_id(image_id) if self.trunc else image_id

    def Repository(self) -> str:  # noqa: N802
        return self.repo

    def Tag(self) -> str:  # noqa: N802
        return self.tag

    def Digest(self) -> str:  # noqa: N802
        return self.digest

    def CreatedSince(self) -> str:  # noqa: N802
        return _since(self._int("Created"), self.now)

    def CreatedAt(self) -> str:  # noqa: N802
        return go_unix_time(self._int("Created"))

    def Size(self) -> str:  # noqa: N802
        return human_size(self._int("Size"), 3)

    def Containers(self) -> str:  # noqa: N802
        count = self.i.get("Containers", -1)
        return "N/A" if count == -1 or count is None else str(count)

    def VirtualSize(self) -> str:  # noqa: N802
        return human_size(self._int("Size"))

    def SharedSize(self) -> str:  # noqa: N802
        shared = self.i.get("SharedSize", -1)
        return "N/A" if shared == -1 or shared is None else human_size(int(shared))

    def UniqueSize(self) -> str:  # noqa: N802
        shared = self.i.get("SharedSize", -1)
        if shared == -1 or shared is None or self.i.get("Size", -1) == -1:
            return "N/A"
        return human_size(self._int("Size") - int(shared))


def image_rows(images: list[dict[str, Any]], trunc: bool, digests: bool, now: float | None = None) -> list[ImageRow]:
    """formatter.imageFormat: one row per repository tag; dangling images as <none>."""
    rows: list[ImageRow] = []
    for img in images:
        tags, digs = img.get("RepoTags") or [], img.get("RepoDigests") or []
        if (not tags and not digs) or (tags == ["<none>:<none>"] and digs == ["<none>@<none>"]):
            rows.append(ImageRow(img, "<none>", "<none>", "<none>", trunc, now))
            continue
        by_repo: dict[str, list[str]] = {}
        for text in tags:
            try:
                ref = parse_normalized(text)
            except ValueError:
                continue
            if ref.tag:
                by_repo.setdefault(ref.familiar_name(), []).append(ref.tag)
        digest_repo: dict[str, list[str]] = {}
        for text in digs:
            try:
                ref = parse_normalized(text)
            except ValueError:
                continue
            if ref.digest:
                digest_repo.setdefault(ref.familiar_name(), []).append(ref.digest)
        for repo, repo_tags in by_repo.items():
            repo_digests = digest_repo.pop(repo, [])  # never a row of its own
            if not digests:
                repo_digests = []
            for tag in repo_tags:
                for digest in repo_digests or ["<none>"]:
                    rows.append(ImageRow(img, repo, tag, digest, trunc, now))
        for repo, repo_digests in digest_repo.items():
            for digest in repo_digests if digests else [""]:
                rows.append(ImageRow(img, repo, "<none>", digest, trunc, now))
    return rows
