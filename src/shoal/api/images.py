"""/images: import, list, inspect, tag, remove; a pull goes to api.distribution."""

from __future__ import annotations

import asyncio
import json
import shlex
from collections.abc import AsyncIterator
from typing import Any

from shoal.api.app import Route
from shoal.api.container_wire import rfc3339
from shoal.api.filters import match_labels, parse_filters
from shoal.api.http import Request, Response, StreamResponse, json_response
from shoal.controller.containers import Containers
from shoal.errors import Conflict, InvalidParameter, NotFound
from shoal.runtime import Image, ImageConfig, ImageStore

IMAGE_FILTERS = {"reference", "dangling", "label", "before", "since"}


def _exec_form(rest: str) -> tuple[str, ...]:
    return tuple(json.loads(rest)) if rest.startswith("[") else ("/bin/sh", "-c", rest)


def parse_changes(changes: list[str]) -> ImageConfig:
    """`docker import --change`: the Dockerfile instructions dockerd takes there (CMD,
    ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL); others are refused."""
    base = ImageConfig()
    fields: dict[str, Any] = {"env": list(base.env), "labels": {}, "exposed_ports": [], "volumes": []}
    for change in changes:
        keyword, _, rest = change.strip().partition(" ")
        rest = rest.strip()
        key = keyword.upper()
        if key == "CMD":
            fields["cmd"] = _exec_form(rest)
        elif key == "ENTRYPOINT":
            fields["entrypoint"] = _exec_form(rest)
        elif key == "ENV":
            name, sep, value = rest.partition("=")
            fields["env"].append(f"{name}={value}" if sep else " ".join(shlex.split(rest)[:1] + [""]))
        elif key == "WORKDIR":
            fields["working_dir"] = rest
        elif key == "USER":
            fields["user"] = rest
        elif key == "STOPSIGNAL":
            fields["stop_signal"] = rest
        elif key == "EXPOSE":
            fields["exposed_ports"] += [p if "/" in p else f"{p}/tcp" for p in rest.split()]
        elif key == "VOLUME":
            fields["volumes"] += list(json.loads(rest)) if rest.startswith("[") else rest.split()
        elif key == "LABEL":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                fields["labels"][name] = value
        else:
            raise InvalidParameter(f"{keyword} is not a valid change command")
    fields["env"] = tuple(fields["env"])
    fields["exposed_ports"] = tuple(sorted(set(fields["exposed_ports"])))
    fields["volumes"] = tuple(sorted(set(fields["volumes"])))
    return ImageConfig(**fields)


def _full(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def image_summary(img: Image, containers: int, tags: list[str] | None = None) -> dict[str, Any]:
    return {
        "Id": img.id, "ParentId": "", "RepoTags": list(img.repo_tags) if tags is None else tags,
        "RepoDigests": list(img.repo_digests), "Created": img.created, "Size": img.size, "SharedSize": -1,
        "VirtualSize": img.size, "Labels": dict(img.config.labels) or None, "Containers": containers,
    }


def image_inspect(img: Image) -> dict[str, Any]:
    cfg = img.config.to_json()
    out = {
        "Id": img.id, "RepoTags": list(img.repo_tags), "RepoDigests": list(img.repo_digests), "Parent": "",
        "Comment": img.comment, "Created": rfc3339(img.created), "DockerVersion": "", "Author": "",
        "Config": {"Hostname": "", "Domainname": "", "User": cfg["User"], "AttachStdin": False,
                   "AttachStdout": False, "AttachStderr": False, "ExposedPorts": cfg["ExposedPorts"],
                   "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": cfg["Env"], "Cmd": cfg["Cmd"],
                   "Healthcheck": cfg["Healthcheck"], "Image": "", "Volumes": cfg["Volumes"],
                   "WorkingDir": cfg["WorkingDir"], "Entrypoint": cfg["Entrypoint"], "OnBuild": None,
                   "Labels": cfg["Labels"], "StopSignal": cfg["StopSignal"]},
        "Architecture": img.architecture, "Os": img.os, "Size": img.size,
        "GraphDriver": {"Name": "overlay2", "Data": None},
        "RootFS": {"Type": "layers", "Layers": list(img.diff_ids)}, "Metadata": {"LastTagTime": ZERO_TIME},
    }
    for key in ("Healthcheck", "StopSignal"):  # omitted when unset, as in Docker
        if out["Config"][key] is None:
            del out["Config"][key]
    return out


ZERO_TIME = "0001-01-01T00:00:00Z"
WRITE_BATCH = 1 << 20


async def import_body(images: ImageStore, req: Request, repo: str | None, tag: str,
                      config: ImageConfig) -> Image:
    """The body goes to the store's disk as it arrives, a batch at a time off the event
    loop: a 1 GiB import must not be 1 GiB of the daemon's memory."""
    imp = await asyncio.to_thread(images.begin_import, repo, tag, config)
    try:
        batch: list[bytes] = []
        size = 0
        async for chunk in req.chunks():
            batch.append(chunk)
            size += len(chunk)
            if size >= WRITE_BATCH:
                await asyncio.to_thread(imp.write, b"".join(batch))
                batch, size = [], 0
        if batch:
            await asyncio.to_thread(imp.write, b"".join(batch))
        return await asyncio.to_thread(imp.commit)
    finally:
        await asyncio.to_thread(imp.abort)


class ImageRoutes:
    def __init__(self, images: ImageStore, containers: Containers, pull: Any = None) -> None:
        self.images = images
        self.c = containers
        self.pull = pull  # the handler of POST /images/create?fromImage= (api.distribution)

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/images/create", self.create, stream_body=True),
            Route("GET", "/images/json", self.list),
            Route("GET", "/images/{name:path}/json", self.inspect),
            Route("POST", "/images/{name:path}/tag", self.tag),
            Route("DELETE", "/images/{name:path}", self.remove),
        ]

    def _users(self, img: Image) -> list[str]:
        return [c.id for c in self.c.records.values() if c.image_id == img.id]

    async def create(self, req: Request) -> Response | StreamResponse:
        src = req.arg("fromSrc")
        if not src:
            if self.pull is None:
                raise NotFound("this daemon pulls no images: it was built without a registry client")
            return await self.pull(req)
        if src != "-":
            raise InvalidParameter("importing from a URL is not supported: download the tarball and import the file (fromSrc=-)")
        repo, tag = req.arg("repo"), req.arg("tag")
        if repo and ":" in repo.rsplit("/", 1)[-1] and not tag:
            repo, tag = repo.rsplit(":", 1)
        config = parse_changes(req.query.get("changes", []))
        img = await import_body(self.images, req, repo or None, tag or "latest", config)

        async def body() -> AsyncIterator[bytes]:
            yield json.dumps({"status": img.id}).encode() + b"\r\n"

        return StreamResponse(body())

    async def list(self, req: Request) -> Response:
        f = parse_filters(req.arg("filters"), IMAGE_FILTERS)
        out = []
        for img in sorted(self.images.list(), key=lambda i: -i.created):
            tags = list(img.repo_tags)
            if "reference" in f:
                tags = [t for t in tags if any(t == r or t.split(":")[0] == r or t == _full(r) for r in f["reference"])]
                if not tags:
                    continue
            if "dangling" in f and (f["dangling"][0] in ("true", "1")) != (not img.repo_tags):
                continue
            if "label" in f and not match_labels(f["label"], dict(img.config.labels)):
                continue
            out.append(image_summary(img, len(self._users(img)), tags))
        return json_response(out)

    async def inspect(self, req: Request) -> Response:
        return json_response(image_inspect(self.images.get(req.params["name"])))

    async def tag(self, req: Request) -> Response:
        repo = req.arg("repo")
        if not repo:
            raise InvalidParameter("repository name must have at least one component")
        self.images.tag(req.params["name"], repo, req.arg("tag") or None)
        return Response(201)

    async def remove(self, req: Request) -> Response:
        name = req.params["name"]
        img = self.images.get(name)
        users = self._users(img)
        if users and len(img.repo_tags) > 1 and not name.startswith("sha256:") and not img.id.removeprefix(
                "sha256:").startswith(name):
            self.images.untag(name)  # other names remain: only this one goes, as in Docker
            return json_response([{"Untagged": _full(name)}])
        if users and not req.flag("force"):
            raise Conflict(
                f'conflict: unable to remove repository reference "{name}" (must force) - '
                f"container {users[0][:12]} is using its referenced image {img.id.removeprefix('sha256:')[:12]}"
            )
        report = self.images.remove(name, force=req.flag("force"), in_use=bool(users))
        return json_response(report)
