"""/containers/{id}/archive: HEAD (the path's stat), GET (a tar of it), PUT (a tar into it).

`docker cp` is these three calls: the CLI stats the path (the X-Docker-Container-Path-Stat
header), then reads or writes a tar. Statuses and messages are dockerd 20.10's (measured:
tests/e2e/test_cp_archive.py holds them). They work on created and stopped containers as on
running ones: the rootfs is the overlay shoal mounts (runtime.Runtime.rootfs).
"""

from __future__ import annotations

import os
from pathlib import Path

from shoal.api.app import Route
from shoal.api.http import Request, Response, StreamResponse
from shoal.controller.containers import Containers
from shoal.errors import InvalidParameter, ShoalError
from shoal.runtime.cparchive import (
    container_path,
    extraction_dir,
    stat_path,
    tar_in,
    tar_out,
)
from shoal.runtime.users import resolve_user

STAT_HEADER = "X-Docker-Container-Path-Stat"


class ArchiveRoutes:
    def __init__(self, containers: Containers) -> None:
        self.c = containers

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/containers/{ref}/archive", self.get),  # HEAD too (App matches it here)
            Route("PUT", "/containers/{ref}/archive", self.put, stream_body=True),
        ]

    async def _where(self, req: Request):
        rec = self.c.find(req.params["ref"])
        path = req.arg("path")
        if "\0" in path:  # no file name holds one; the kernel refuses it before any lookup
            raise InvalidParameter(f"invalid path {path!r}: contains a NUL byte")
        missing = f"Could not find the file {path} in container {req.params['ref']}"
        return rec, await self.c.runtime.rootfs(rec.id), path, missing

    def _shown(self, cid: str) -> dict[str, Path]:
        """The /etc files a running container sees (bind mounts of shoal's, as dockerd's)."""
        if not self.c.state(cid).running:
            return {}
        etc = self.c.etc_root / cid
        return {f"/etc/{n}": etc / n for n in ("hosts", "hostname", "resolv.conf") if (etc / n).is_file()}

    async def get(self, req: Request) -> Response | StreamResponse:
        rec, root, path, missing = await self._where(req)
        shown = self._shown(rec.id)
        _, resolved, st = stat_path(root, path, missing, shown)
        header = [(STAT_HEADER, st.header())]
        if req.method == "HEAD":
            return Response(200, headers=header)
        name = os.path.basename(container_path(path).rstrip("/")) or "/"  # `/`: entries `/bin`...
        if path.endswith("/.") or path == ".":
            name = "."  # `cp c:/dir/. x`: the contents, under `./` (dockerd's rebase)
        return StreamResponse(tar_out(root, resolved, name, shown), content_type="application/x-tar",
                              headers=header)

    async def put(self, req: Request) -> Response:
        rec, root, path, missing = await self._where(req)
        dest = extraction_dir(root, path, missing)
        if rec.host_config.get("ReadonlyRootfs"):
            raise ShoalError("container rootfs is marked read-only")  # dockerd 20.10: a 500
        owner = None
        if req.flag("copyUIDGID") and rec.user:  # as dockerd: only a container with a User
            user = resolve_user(root, rec.user)
            owner = (user.uid, user.gid)
        await tar_in(root, dest, req.chunks(), no_overwrite_dir=req.flag("noOverwriteDirNonDir"), owner=owner)
        return Response(200)
