"""Containers through an OCI runtime (runc, crun, ...), each watched by its own conmon,
all state under one root.

Layout (`root` is the daemon's data root; nothing outside it is touched except the
container's cgroup `/shoal/<id>` that the OCI runtime manages):

    runc/                     runc --root: runc's own state, private to this daemon
    runtimes/<name>/          --root of every other runtime (crun, --add-runtime NAME=PATH)
    containers/<id>/          the OCI bundle and everything conmon writes
        container.json        spec, image id, created/started times, pids
        config.json           what runc reads
        upper/ work/ merged/  the overlay; merged/ is the container's root
        ctr.log exit/<id> pidfile conmon.pid attach ctl winsz
        ctr.log.1 ctr.log.2 ...  rotated logs (runtime.logfile), `.gz` if compressed
        exec/<exec id>/       one directory per exec session, same files

The daemon may exit at any time: conmon keeps the container, its log and its exit code, and
`restore()` in a new daemon finds them again from these files alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
import shutil
import signal as signals
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from shoal.errors import Conflict, InvalidParameter, NotFound, NotImplementedYet, NotModified, ShoalError
from shoal.runtime import monitor, overlay, resources
from shoal.runtime.attach import Attachment, MonitorSocket
from shoal.runtime.execs import ExecSession, ExecState, start_exec
from shoal.runtime.freezer import Freezer
from shoal.runtime.images import ImageStore
from shoal.runtime.logfile import LogPolicy, keep_rotated
from shoal.runtime.logfile import settle as settle_log
from shoal.runtime.logs import LogEntry, read_log
from shoal.runtime.monitor import Launch, MonitorPaths
from shoal.runtime.audit import audit
from shoal.runtime.spec import ContainerSpec, ExecSpec, oci_config, spec_from_json, spec_to_json
from shoal.runtime.streams import DEFAULT_DETACH_KEYS

STOP_KILL_GRACE = 10.0


@dataclass(frozen=True)
class ContainerState:
    id: str
    status: str  # "created" | "running" | "exited"
    pid: int  # 0 unless running
    exit_code: int  # 0 until the first exit
    created: float  # unix seconds
    started_at: float | None
    finished_at: float | None
    image: str  # image id
    spec: ContainerSpec
    paused: bool = False  # running, its processes frozen (runc pause)

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass
class _Record:
    """What container.json holds."""

    spec: ContainerSpec
    image: str
    created: float
    started_at: float | None = None
    pid: int | None = None
    conmon_pid: int | None = None
    last_exit: int | None = None  # the previous run's code while a restart is under way
    log: LogPolicy = field(default_factory=LogPolicy)  # as of the last start
    runtime_path: str = ""  # the binary of spec.runtime at create (records before it: none)
    paused: bool = False  # frozen by `pause` (runc pause) until `unpause` or the run's end

    def to_json(self) -> dict:
        return {"paused": self.paused, "spec": spec_to_json(self.spec), "image": self.image, "created": self.created,
                "started_at": self.started_at, "pid": self.pid, "conmon_pid": self.conmon_pid,
                "last_exit": self.last_exit, "log": self.log.to_json(), "runtime_path": self.runtime_path}

    @classmethod
    def from_json(cls, data: dict) -> _Record:
        return cls(spec=spec_from_json(data["spec"]), image=data["image"], created=data["created"],
                   started_at=data.get("started_at"), pid=data.get("pid"), conmon_pid=data.get("conmon_pid"),
                   last_exit=data.get("last_exit"), log=LogPolicy.from_json(data.get("log")),
                   runtime_path=data.get("runtime_path") or "", paused=bool(data.get("paused")))


@dataclass
class _Live:
    """In-memory companions of a container in this daemon process."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    hub: MonitorSocket | None = None
    waiters: list[asyncio.Future] = field(default_factory=list)
    watcher: asyncio.Task | None = None
    rotator: asyncio.Task | None = None
    settling: asyncio.Future | None = None  # the log's settle after an exit (runtime.logfile)


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def signal_number(sig: str | int) -> int:
    """`TERM`, `SIGTERM`, `15` or 15 -> 15; InvalidParameter otherwise."""
    text = str(sig).upper()
    if text.isdigit() and 0 < int(text) < signals.NSIG:
        return int(text)
    try:
        return int(signals.Signals[text if text.startswith("SIG") else "SIG" + text])
    except KeyError:
        raise InvalidParameter(f"Invalid signal: {sig}") from None


class Runtime(Freezer):
    """Create, start, stop, attach to, exec in and delete containers (asyncio)."""

    def __init__(self, root: Path, images: ImageStore, *, runtimes: dict[str, str] | None = None,
                 default_runtime: str = "runc", conmon: str = monitor.CONMON) -> None:
        self.root = Path(root)
        self.images = images
        self.runtimes = dict(runtimes or {"runc": monitor.RUNC})  # name -> binary
        self.default_runtime, self.conmon = default_runtime, conmon
        self.check_runtime(default_runtime)
        self.runc_root = self.root / "runc"
        self.containers_dir = self.root / "containers"
        for d in (self.runc_root, self.containers_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._records: dict[str, _Record] = {}
        self._live: dict[str, _Live] = {}
        self._execs: dict[str, ExecSession] = {}

    # --- OCI runtimes --------------------------------------------------------------------

    def check_runtime(self, name: str) -> str:
        """`HostConfig.Runtime` -> the registered name it means ("" = the default); dockerd's
        400 for any other, before anything is made."""
        name = name or self.default_runtime
        if name not in self.runtimes:
            raise InvalidParameter(f"Unknown runtime specified {name}")
        return name

    def state_root(self, name: str) -> Path:
        """The runtime's --root: one per runtime, so no two binaries read each other's state
        (runc's keeps its place from before there were several)."""
        return self.runc_root if name == "runc" else self.root / "runtimes" / name

    def state_roots(self) -> dict[str, Path]:
        """Every runtime's root that registered runtimes or records name (the audit reads them)."""
        names = set(self.runtimes) | {rec.spec.runtime for rec in self._records.values()}
        return {name: self.state_root(name) for name in sorted(names)}

    def _oci_of(self, cid: str) -> tuple[str, Path]:
        """(binary, --root) of the runtime the container was created with. Its binary comes from
        the flags of this daemon, else the record (a runtime no longer registered can still
        kill and delete what it runs)."""
        rec = self._records.get(cid)  # none: a directory a crash left, runc's as before
        name, recorded = (rec.spec.runtime, rec.runtime_path) if rec is not None else ("runc", "")
        return self.runtimes.get(name) or recorded or monitor.RUNC, self.state_root(name)

    # --- paths and records ---------------------------------------------------------------

    def _dir(self, cid: str) -> Path:
        if not cid or "/" in cid or cid.startswith("."):
            raise InvalidParameter(f"invalid container id {cid!r}")
        return self.containers_dir / cid

    def _paths(self, cid: str) -> MonitorPaths:
        return MonitorPaths(self._dir(cid))

    def _record(self, cid: str) -> _Record:
        try:
            return self._records[cid]
        except KeyError:
            raise NotFound(f"No such container: {cid}") from None

    def _live_of(self, cid: str) -> _Live:
        return self._live.setdefault(cid, _Live())

    def _save(self, cid: str) -> None:
        path = self._dir(cid) / "container.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._record(cid).to_json(), indent=1))
        tmp.replace(path)

    async def _runc(self, cid: str, *args: str, check: bool = True) -> tuple[int, str]:
        """The container's OCI runtime with `args` (which name `cid` where the verb wants it)."""
        binary, root = self._oci_of(cid)
        proc = await asyncio.create_subprocess_exec(
            binary, "--root", str(root), *args, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if check and proc.returncode != 0:
            raise monitor.runtime_error(err.decode(errors="replace"))
        return proc.returncode or 0, out.decode(errors="replace")

    # --- state ---------------------------------------------------------------------------

    def state(self, cid: str) -> ContainerState:
        rec = self._record(cid)
        paths = self._paths(cid)
        code = monitor.read_exit_code(paths.exit_file(cid))
        finished = None
        if rec.started_at is None:
            status = "created"
        elif code is not None:
            status, finished = "exited", paths.exit_file(cid).stat().st_mtime
        elif monitor.alive(rec.conmon_pid, cid):
            status = "running"
        else:  # conmon vanished without writing a code (killed), or a restart is between runs
            status, code, finished = "exited", 255 if rec.last_exit is None else rec.last_exit, time.time()
        return ContainerState(id=cid, status=status, pid=(rec.pid or 0) if status == "running" else 0,
                              exit_code=code or 0, created=rec.created, started_at=rec.started_at,
                              finished_at=finished, image=rec.image, spec=rec.spec,
                              paused=rec.paused and status == "running")

    async def audit(self, known: set[str]) -> list[tuple[str, str]]:
        """(container id, problem) for every difference between the runtime's own truth
        and `known`, the container records the engine holds (runtime.audit)."""
        return await audit(self, known)

    def records(self) -> set[str]:
        return set(self._records)

    def runtime_of(self, cid: str) -> str:
        return self._record(cid).spec.runtime

    def list(self) -> list[ContainerState]:
        return [self.state(cid) for cid in sorted(self._records, key=lambda c: -self._records[c].created)]

    async def restore(self) -> list[ContainerState]:
        """Call once at daemon start: re-read every container, watch the running ones again,
        and remove directories left by a create or delete that a crash cut short."""
        for entry in sorted(self.containers_dir.iterdir()):
            try:
                self._records[entry.name] = _Record.from_json(
                    json.loads((entry / "container.json").read_text()))
            except (OSError, ValueError, KeyError, TypeError, ShoalError):
                # A create or delete cut short by a crash: nothing can use it, remove it.
                overlay.unmount(entry / "merged")
                shutil.rmtree(entry, ignore_errors=True)
                continue
            for exec_dir in (entry / "exec").glob("*"):
                session = ExecSession.restore(exec_dir, entry.name)
                if session is None:
                    shutil.rmtree(exec_dir, ignore_errors=True)
                elif session.settle() is None:  # a finished one: no new exec id names it
                    self._execs[session.id] = session
        for cid in list(self._records):
            await self._settle(cid)
        states = self.list()
        for st in states:
            if st.running:
                self._ensure_watcher(st.id)
        return states

    async def _settle(self, cid: str) -> None:
        """A start that a crash cut short left a conmon (and maybe a runc container) that
        container.json does not name. If its process runs, the start got through: adopt
        it. Otherwise undo it, so that the next start does not meet runc's "container with
        given ID already exists" and no late exit file makes a new run look exited."""
        rec, paths = self._records[cid], self._paths(cid)
        orphan = _read_pid(paths.conmon_pidfile)
        if orphan and orphan != rec.conmon_pid and monitor.alive(orphan, cid):
            pid = _read_pid(paths.pidfile)
            if pid and await self.runc_status(cid) == "running":
                rec.started_at, rec.pid, rec.conmon_pid = paths.pidfile.stat().st_mtime, pid, orphan
                rec.last_exit = None
                self._save(cid)
                return
            await self._clear_previous(cid)
        elif monitor.alive(rec.conmon_pid, cid):
            return  # running as recorded
        elif rec.last_exit is not None or (rec.started_at is None and (self._oci_of(cid)[1] / cid).exists()):
            await self._clear_previous(cid)  # cut short before its conmon started, or after it died
        elif (self._oci_of(cid)[1] / cid).exists():  # exited while shoald was away: free its cgroups
            await self._runc(cid, "delete", "--force", cid, check=False)

    async def runc_status(self, cid: str) -> str:
        rc, out = await self._runc(cid, "state", cid, check=False)
        try:
            return json.loads(out).get("status", "") if rc == 0 else ""
        except ValueError:
            return ""

    async def _clear_previous(self, cid: str, *, keep_code: bool = True) -> None:
        """Remove every trace of an earlier run that is not running: runc's state, a conmon
        still waiting on it (gone before we return, so it cannot write an exit file into
        the next run), its pid files; with `keep_code`, the previous exit code comes back
        (a restart that was cut short)."""
        rec, paths = self._records[cid], self._paths(cid)
        await self._runc(cid, "delete", "--force", cid, check=False)
        for conmon_pid in {_read_pid(paths.conmon_pidfile), rec.conmon_pid} - {None, 0}:
            if monitor.alive(conmon_pid, cid):
                try:
                    await asyncio.wait_for(monitor.wait_exit(conmon_pid), STOP_KILL_GRACE)
                except TimeoutError:
                    monitor.kill_monitor(conmon_pid, cid)
                    await monitor.wait_exit(conmon_pid)
        for stale in (paths.exit_file(cid), paths.pidfile, paths.conmon_pidfile):
            stale.unlink(missing_ok=True)
        if keep_code and rec.started_at is not None and rec.last_exit is not None:
            paths.exit_dir.mkdir(parents=True, exist_ok=True)
            paths.exit_file(cid).write_text(str(rec.last_exit))

    # --- lifecycle -----------------------------------------------------------------------

    async def create(self, spec: ContainerSpec, image_ref: str) -> None:
        """Write the bundle and mount the rootfs; no process yet (Docker's `create`)."""
        if spec.id in self._records or self._dir(spec.id).exists():
            raise Conflict(f"container {spec.id} already exists")
        spec = dataclasses.replace(spec, runtime=self.check_runtime(spec.runtime))
        image = self.images.get(image_ref)
        cdir = self._dir(spec.id)
        cdir.mkdir()
        try:
            overlay.mount_overlay(self.images.lower_dirs(image), cdir / "upper", cdir / "work", cdir / "merged")
            (cdir / "config.json").write_text(json.dumps(oci_config(spec, cdir / "merged"), indent=1))
            self._records[spec.id] = _Record(spec=spec, image=image.id, created=time.time(),
                                             runtime_path=self.runtimes[spec.runtime])
            self._save(spec.id)
        except BaseException:
            self._records.pop(spec.id, None)
            overlay.unmount(cdir / "merged")
            shutil.rmtree(cdir, ignore_errors=True)
            raise

    async def start(self, cid: str, log: LogPolicy | None = None) -> int:
        """Start (or restart) the container's process under a new conmon; returns its pid.
        `log`: the log driver's policy for this run (default: the last run's)."""
        rec = self._record(cid)
        live = self._live_of(cid)
        async with live.lock:
            if self.state(cid).running:
                raise NotModified(f"container {cid} is already running")
            paths = self._paths(cid)
            self._mount_rootfs(cid)
            if rec.started_at is not None:  # a restart: keep the code until this run is saved
                rec.last_exit = monitor.read_exit_code(paths.exit_file(cid))
                self._save(cid)
            if rec.started_at is not None or (self._oci_of(cid)[1] / cid).exists():
                await self._clear_previous(cid, keep_code=False)
            spec = rec.spec
            await self._settle_log(cid, live)  # a rotation its last run did not get to
            if log is not None:
                rec.log = log
            binary, state_root = self._oci_of(cid)
            launch = Launch(cid=cid, uuid=cid, paths=paths, runc_root=state_root, tty=spec.tty,
                            stdin=spec.open_stdin, leave_stdin_open=not spec.stdin_once,
                            log=rec.log.enabled, conmon=self.conmon, runc=binary)
            try:
                pid, conmon_pid = await monitor.launch(launch)
                if live.hub is not None and not live.hub.connected.is_set():
                    live.hub.connect()  # clients attached before start see every byte
                started = time.time()  # before: a short process may exit (and its exit file be
                await self._runc(cid, "start", cid)  # written) before runc start returns
            except BaseException:
                await self._runc(cid, "delete", "--force", cid, check=False)
                if live.hub is not None:
                    live.hub.close()  # attached clients learn that the start failed
                raise
            rec.started_at, rec.pid, rec.conmon_pid, rec.last_exit = started, pid, conmon_pid, None
            rec.paused = False
            self._save(cid)
            self._ensure_watcher(cid)
            return pid

    async def _settle_log(self, cid: str, live: _Live) -> None:
        """Cut the stopped container's log as a rotation in time would have (a burst, or an
        exit between two looks). Shared: a start waits for the one an exit began."""
        if live.settling is None or live.settling.done():
            if self.state(cid).running:
                return
            live.settling = asyncio.ensure_future(self._settle_after_rotator(cid, live))
        with contextlib.suppress(OSError):
            await asyncio.shield(live.settling)

    async def _settle_after_rotator(self, cid: str, live: _Live) -> None:
        if live.rotator is not None and not live.rotator.done():  # it ends within a poll
            await asyncio.wait([live.rotator], timeout=STOP_KILL_GRACE)
        await asyncio.to_thread(settle_log, self._paths(cid).log, self._record(cid).log)

    def _ensure_watcher(self, cid: str) -> None:
        live = self._live_of(cid)
        if live.watcher is None or live.watcher.done():
            live.watcher = asyncio.get_running_loop().create_task(self._watch(cid))
        if live.rotator is None or live.rotator.done():
            paths, policy = self._paths(cid), self._record(cid).log
            live.rotator = asyncio.get_running_loop().create_task(keep_rotated(
                paths.log, paths.ctl, policy, lambda: cid in self._records and self.state(cid).running))

    async def _watch(self, cid: str) -> None:
        """Wait for this run's conmon to exit, then wake the waiters with the exit code."""
        rec = self._record(cid)
        if rec.conmon_pid and monitor.alive(rec.conmon_pid, cid):
            await monitor.wait_exit(rec.conmon_pid)
        live = self._live.get(cid)
        if live is None or cid not in self._records:
            return
        # this run's code and waiters now: a start may begin during the awaits below
        code, waiters, live.waiters = self.state(cid).exit_code, live.waiters, []
        if not live.lock.locked():  # else a start or delete is under way; a start settles first
            await self._settle_log(cid, live)
        if not live.lock.locked():
            async with live.lock:  # a start must not begin while its predecessor is deleted
                if not self.state(cid).running:
                    # runc's state and cgroups go with the process (containerd's shim deletes
                    # too): an exited container keeps no empty cgroup in every hierarchy until rm
                    await self._runc(cid, "delete", cid, check=False)
        for fut in waiters:
            if not fut.done():
                fut.set_result(code)

    async def wait(self, cid: str, condition: str = "not-running") -> int:
        """Docker's wait: `not-running` returns at once unless running; `next-exit` waits for one."""
        if condition not in ("not-running", "next-exit"):
            raise InvalidParameter(f"invalid condition: {condition!r}")
        st = self.state(cid)
        if condition == "not-running" and not st.running:
            return st.exit_code
        fut = asyncio.get_running_loop().create_future()
        self._live_of(cid).waiters.append(fut)
        if st.running:
            self._ensure_watcher(cid)
        return await fut

    async def kill(self, cid: str, signal: str | int = "TERM") -> None:
        signum = signal_number(signal)
        if not self.state(cid).running:
            raise Conflict(f"Container {cid} is not running")
        rc, _ = await self._runc(cid, "kill", cid, str(signum), check=False)
        if rc == 0 and self._record(cid).paused:  # as dockerd: frozen, it could not act on it
            await self.resume(cid, check=False)
        if rc == 0 or not self.state(cid).running:
            return
        # the process may be gone while its monitor has not written the exit code yet:
        # runc then says "container not running", which is the client's 409, not our 500
        if await self.runc_status(cid) in ("stopped", ""):
            raise Conflict(f"Container {cid} is not running")
        await self._runc(cid, "kill", cid, str(signum))

    async def stop(self, cid: str, timeout: float | None = 10, signal: str = "TERM") -> int:
        """SIGTERM, then SIGKILL after `timeout` seconds (None or negative: never, as
        dockerd's stop with t=-1 waits for the exit); returns the exit code."""
        if not self.state(cid).running:
            return self.state(cid).exit_code
        if timeout is not None and timeout < 0:
            timeout = None
        waiter = asyncio.ensure_future(self.wait(cid))
        with contextlib.suppress(Conflict):
            await self.kill(cid, signal or "TERM")
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            with contextlib.suppress(Conflict):
                await self.kill(cid, "KILL")
            return await asyncio.wait_for(waiter, STOP_KILL_GRACE)

    async def update_resources(self, cid: str, res: dict, lift_pids: bool = False) -> None:
        """New limits (runtime.resources): into the running container through `runc update`
        (a refusal changes nothing), and into its spec, so the next start has them too."""
        rec = self._record(cid)
        async with self._live_of(cid).lock:
            if self.state(cid).running and (args := resources.runc_update_args(res, lift_pids)):
                await self._runc(cid, "update", *args, cid)
            rec.spec = dataclasses.replace(rec.spec, resources=res)
            resources.rewrite_config(self._dir(cid) / "config.json", res)
            self._save(cid)

    async def delete(self, cid: str) -> None:
        """Kill if needed, forget runc state, unmount and remove everything. Idempotent."""
        cdir = self._dir(cid)
        if cid not in self._records and not cdir.exists():
            return
        live = self._live_of(cid)
        async with live.lock:
            rec = self._records.get(cid)
            if rec is not None and self.state(cid).running:
                with contextlib.suppress(ShoalError, asyncio.TimeoutError):
                    await self._runc(cid, "kill", cid, "KILL", check=False)
                    if rec.paused:
                        await self.resume(cid, check=False)
                    await asyncio.wait_for(self.wait(cid), STOP_KILL_GRACE)
            await self._runc(cid, "delete", "--force", cid, check=False)
            for session in [s for s in self._execs.values() if s.container_id == cid]:
                await session.reap()
                self._execs.pop(session.id, None)
            if rec is not None:
                monitor.kill_monitor(rec.conmon_pid, cid)
            if live.hub is not None:
                live.hub.close()
            if live.rotator is not None:
                live.rotator.cancel()
            for fut in live.waiters:
                if not fut.done():
                    fut.set_exception(NotFound(f"No such container: {cid}"))
            overlay.unmount(cdir / "merged")
            if cdir.exists():
                doomed = cdir.with_name(f".deleting-{cid}")
                cdir.rename(doomed)
                shutil.rmtree(doomed, ignore_errors=True)
            self._records.pop(cid, None)
        self._live.pop(cid, None)

    # --- the rootfs (pause, unpause and the processes: runtime.freezer) -----------------

    async def rootfs(self, cid: str) -> Path:
        """The container's root, mounted if it is not (a stopped container's may not be after
        the host restarted): the overlay is the only view that has the upper layer's changes,
        whiteouts included, so `docker cp` of a stopped container reads and writes it too.
        Under the container's lock: a removal under way must not see its directory made again."""
        self._record(cid)  # a removed container gets no lock made for it
        async with self._live_of(cid).lock:
            return self._mount_rootfs(cid)

    def _mount_rootfs(self, cid: str) -> Path:
        rec, bundle = self._record(cid), self._paths(cid).bundle
        image = self.images.get(rec.image)
        overlay.mount_overlay(self.images.lower_dirs(image), bundle / "upper", bundle / "work", bundle / "merged")
        return bundle / "merged"

    # --- stdio ---------------------------------------------------------------------------

    async def attach(self, cid: str, *, stdin: bool = False, stdout: bool = True, stderr: bool = True,
                     detach_keys: bytes = DEFAULT_DETACH_KEYS) -> Attachment:
        """Attach to the container's stdio: output from now on, stdin if it has `open_stdin`.

        A client attached to a stopped container is connected by the next `start` (how
        `docker start -a` sees every byte); refusing stopped containers is the caller's choice.
        """
        st = self.state(cid)
        live = self._live_of(cid)
        async with live.lock:  # not while start() is between launch and connect
            if live.hub is None or live.hub.closed.is_set():
                live.hub = MonitorSocket(self._paths(cid).attach, stdin_once=st.spec.stdin_once,
                                         on_close=lambda hub: self._drop_hub(cid, hub))
                if self.state(cid).running:
                    live.hub.connect()
            return Attachment(live.hub, tty=st.spec.tty, stdin=stdin and st.spec.open_stdin,
                              stdout=stdout, stderr=stderr, detach_keys=detach_keys)

    def _drop_hub(self, cid: str, hub: MonitorSocket) -> None:
        live = self._live.get(cid)
        if live is not None and live.hub is hub:
            live.hub = None

    async def resize(self, cid: str, height: int, width: int) -> None:
        st = self.state(cid)
        if not st.running:
            raise Conflict(f"Container {cid} is not running")
        if st.spec.tty:
            monitor.resize(self._paths(cid).ctl, height, width)

    def logs(self, cid: str, *, follow: bool = False, since: float = 0, until: float | None = None,
             tail: int | None = None) -> AsyncIterator[LogEntry]:
        """Log entries (stream, bytes, time); with `follow`, until the container stops."""
        if not self._record(cid).log.enabled:
            raise NotImplementedYet("configured logging driver does not support reading")
        return read_log(self._paths(cid).log, follow=follow, since=since, until=until, tail=tail,
                        is_running=lambda: cid in self._records and self.state(cid).running)

    # --- exec ----------------------------------------------------------------------------

    async def exec(self, cid: str, spec: ExecSpec, *, detach: bool = False,
                   detach_keys: bytes = DEFAULT_DETACH_KEYS) -> ExecSession:
        """Run another process in the running container; attached unless `detach`."""
        if not self.state(cid).running:
            raise Conflict(f"Container {cid} is not running")
        exec_id = secrets.token_hex(32)
        config = json.loads((self._dir(cid) / "config.json").read_text())
        binary, state_root = self._oci_of(cid)
        session = await start_exec(
            exec_id=exec_id, cid=cid, spec=spec, container_config=config,
            exec_dir=self._dir(cid) / "exec" / exec_id, runc_root=state_root,
            attach=not detach, detach_keys=detach_keys, conmon=self.conmon, runc=binary)
        self._execs[exec_id] = session
        return session

    def exec_session(self, exec_id: str) -> ExecSession:
        try:
            return self._execs[exec_id]
        except KeyError:
            raise NotFound(f"No such exec instance: {exec_id}") from None

    def exec_forget(self, exec_id: str) -> None:
        """Drop a session the controller no longer lists, and its files."""
        session = self._execs.pop(exec_id, None)
        if session is not None:
            session.release()

    def exec_count(self, cid: str) -> int:
        return sum(1 for s in self._execs.values() if s.container_id == cid)

    def exec_state(self, exec_id: str) -> ExecState:
        return self.exec_session(exec_id).state()

    async def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        session = self.exec_session(exec_id)
        if session.tty:
            monitor.resize(session.paths.ctl, height, width)
