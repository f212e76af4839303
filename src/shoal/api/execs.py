"""/containers/{id}/exec and /exec/{id}: create, start (hijacked), inspect, resize."""

from __future__ import annotations

from shoal.api.app import Route
from shoal.api.checks import check_env, check_working_dir, no_nul
from shoal.api.container_wire import _strs
from shoal.api.http import Request, Response, json_response
from shoal.api.schemas import EXEC_CONFIG, EXEC_START
from shoal.api.streams import exec_start_handler
from shoal.controller.containers import Containers
from shoal.errors import InvalidParameter
from shoal.runtime import ExecSpec


class ExecRoutes:
    def __init__(self, containers: Containers) -> None:
        self.c = containers

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/containers/{ref}/exec", self.create),
            Route("POST", "/exec/{id}/start", self.start),
            Route("GET", "/exec/{id}/json", self.inspect),
            Route("POST", "/exec/{id}/resize", self.resize),
        ]

    async def create(self, req: Request) -> Response:
        body = req.json()
        EXEC_CONFIG.check(body)
        body = body or {}
        no_nul(body)
        cmd = _strs(body.get("Cmd"))
        if not cmd:
            raise InvalidParameter("No exec command specified")
        env = _strs(body.get("Env")) or ()
        check_env(env)
        check_working_dir(body.get("WorkingDir") or "")
        spec = ExecSpec(
            args=cmd, env=env, cwd=body.get("WorkingDir") or "", user=body.get("User") or "",
            tty=bool(body.get("Tty")), open_stdin=bool(body.get("AttachStdin")),
        )
        attach = {k: body.get(k) for k in ("AttachStdin", "AttachStdout", "AttachStderr", "DetachKeys")}
        exec_id = self.c.exec_create(req.params["ref"], spec, attach)
        return json_response({"Id": exec_id}, 201)

    async def start(self, req: Request):  # noqa: ANN201 - Response or Hijack
        body = req.json()
        EXEC_START.check(body)
        body = body or {}
        hijack = await exec_start_handler(req, self.c, req.params["id"], body)
        return hijack if hijack is not None else Response(200)

    async def inspect(self, req: Request) -> Response:
        pending = self.c.exec_get(req.params["id"])
        session = pending.session
        state = session.state() if session is not None else None
        spec = pending.spec
        return json_response({
            "ID": pending.id, "Running": bool(state and state.running),
            "ExitCode": state.exit_code if state and not state.running else pending.failed_code,
            "ProcessConfig": {"tty": spec.tty, "entrypoint": spec.args[0], "arguments": list(spec.args[1:]),
                              "privileged": False, "user": spec.user},
            "OpenStdin": spec.open_stdin, "OpenStderr": bool(pending.attach.get("AttachStderr")),
            "OpenStdout": bool(pending.attach.get("AttachStdout")), "CanRemove": False,
            "ContainerID": pending.container_id, "DetachKeys": pending.attach.get("DetachKeys") or "",
            "Pid": state.pid if state else 0,
        })

    async def resize(self, req: Request) -> Response:
        pending = self.c.exec_get(req.params["id"])
        if pending.session is not None:
            await self.c.runtime.exec_resize(pending.session.id, req.int_arg("h"), req.int_arg("w"))
        return Response(200)
