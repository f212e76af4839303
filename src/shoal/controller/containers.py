"""Containers: runtime processes joined to networks, one lifecycle lock per container.

The Controller owns networks, sandboxes and endpoints; this class owns container records
and drives the runtime.  A container's sandbox (netns file) lives from create to remove;
its endpoints live while it runs: start connects them, stop or exit releases them (veth
gone, address free), as Docker does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from shoal.controller.attachments import ContainerNetworks
from shoal.controller.controller import Controller
from shoal.controller.ids import new_id, now_rfc3339
from shoal.controller.endpoints import check_mac, check_static_address
from shoal.controller.etcfiles import EtcFiles
from shoal.controller.execs import ExecTable, PendingExec
from shoal.dns import DnsEntry, DnsRecords, DnsServer
from shoal.dns.forward import parse_upstream
from shoal.controller.names import generate_name
from shoal.controller.publishing import Publisher
from shoal.controller.restarts import Restarter, stop_plan
from shoal.controller.undo import Undo
from shoal.controller.volumes import Volumes
from shoal.errors import Conflict, Forbidden, InvalidParameter, NotFound, NotModified, ShoalError
from shoal.model import Container, EndpointRequest
from shoal.runtime.logfile import log_policy
from shoal.runtime.imageconfig import container_args, inherited_config, merge_env
from shoal.runtime.lookup import find_executable
from shoal.runtime.resources import oci_resources
from shoal.runtime import ContainerSpec, ContainerState, ExecSession, ExecSpec, ImageStore, Runtime

log = logging.getLogger("shoal.containers")
KIND_CONTAINER = "container"
NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


@dataclass(frozen=True)
class CreateRequest:
    """A container create after wire parsing (api.container_wire)."""

    image: str
    name: str = ""
    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    working_dir: str = ""
    hostname: str = ""
    user: str = ""
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    network_mode: str = "bridge"
    auto_remove: bool = False
    endpoints: dict[str, EndpointRequest] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    host_config: dict = field(default_factory=dict)


@dataclass
class _Live:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    run: int = 0
    watcher: asyncio.Task | None = None
    removed: asyncio.Event = field(default_factory=asyncio.Event)


class Containers(ContainerNetworks):
    def __init__(self, ctl: Controller, runtime: Runtime, images: ImageStore, etc_root: Path,
                 etc: EtcFiles | None = None, dns: DnsServer | None = None,
                 records: DnsRecords | None = None) -> None:
        self.ctl = ctl
        self.dns = dns
        self.dns_records = records or DnsRecords()
        self.publisher = Publisher(ctl)
        self.runtime = runtime
        self.images = images
        self.etc_root = etc_root
        self.etc = etc or EtcFiles()
        self.records: dict[str, Container] = {}
        self.volumes = Volumes(ctl.store, etc_root.parent / "volumes", self.records)  # DATA_ROOT/volumes
        self._live: dict[str, _Live] = {}
        self._names = asyncio.Lock()
        self.execs = ExecTable(runtime, running=lambda cid: self.state(cid).running,
                               exists=lambda cid: cid in self.records)
        self.restarts = Restarter(self)

    # -- lookups -----------------------------------------------------------------------
    def find(self, ref: str) -> Container:
        """Full id, then name (with or without the leading '/'), then unique id prefix."""
        if ref in self.records:
            return self.records[ref]
        name = ref.lstrip("/")
        for c in self.records.values():
            if c.name == name:
                return c
        matches = [c for c in self.records.values() if ref and c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def state(self, cid: str) -> ContainerState:
        return self.runtime.state(cid)

    @contextlib.asynccontextmanager
    async def quiet(self):  # noqa: ANN201 - an async context manager
        """No container changes meanwhile: the create lock, then every container's lock in
        id order (the order every path takes them: a container's own, then the
        controller's), so the checker sees no change half done."""
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self._names)
            for cid in sorted(self.records):
                live = self._live.get(cid)
                if live is not None:  # one removed meanwhile has none (and needs none)
                    await stack.enter_async_context(live.lock)
            yield

    @property
    def creating(self) -> asyncio.Lock:
        """Held through every create: while it is held, a sandbox without a container
        record may be one being made."""
        return self._names

    def live(self, cid: str) -> _Live:
        return self._live.setdefault(cid, _Live())

    def watcher(self, cid: str) -> asyncio.Task | None:
        return live.watcher if (live := self._live.get(cid)) is not None else None

    def counts(self) -> dict[str, int]:
        states = [self.state(c) for c in self.records]
        running = sum(1 for s in states if s.running)
        paused = sum(1 for s in states if getattr(s, "paused", False))
        return {"Containers": len(states), "ContainersRunning": running - paused, "ContainersPaused": paused,
                "ContainersStopped": len(states) - running, "Images": len(self.images.list())}

    # -- create ------------------------------------------------------------------------
    async def create(self, req: CreateRequest) -> Container:
        async with self._names:
            name = self._pick_name(req.name)
            image = self.images.get(req.image)
            args = self._args(req, image)
            env = merge_env(image.config.env, req.env)
            if find_executable(self.images.lower_dirs(image), args[0], env) is None:
                where = "" if "/" in args[0] else " in $PATH"
                raise InvalidParameter(
                    f'failed to create container: exec: "{args[0]}": executable file not found{where}'
                )
            mode, requests = self._networks(req)
            self.publisher.check_free(req.host_config, req.config.get("ExposedPorts"))
            # dockerd fills the default in, so inspect names the runtime it runs with
            host_config = {**req.host_config, "Runtime": self.runtime.check_runtime(req.host_config.get("Runtime") or "")}
            cid = new_id()
            rec = Container(
                id=cid, name=name, created=now_rfc3339(), image=req.image, image_id=image.id, args=args,
                env=env, working_dir=req.working_dir or image.config.working_dir or "/",
                hostname=req.hostname or cid[:12], user=req.user or image.config.user, tty=req.tty,
                open_stdin=req.open_stdin, stdin_once=req.stdin_once, network_mode=mode,
                auto_remove=req.auto_remove, networks=requests, labels={**image.config.labels, **req.labels},
                config=inherited_config(req.config, image.config), host_config=host_config,
            )
            undo = Undo()
            try:
                rec = await self.volumes.attach(rec, image.config.volumes, undo)
                await self._make(rec, undo)
            except BaseException:
                await undo.run()
                raise
            self.records[cid] = rec
            self.live(cid)
            return rec

    def _pick_name(self, wanted: str) -> str:
        taken = {c.name: c.id for c in self.records.values()}
        if not wanted:
            return generate_name(lambda n: n in taken)
        if not NAME_RE.match(wanted):
            raise InvalidParameter(f"Invalid container name ({wanted}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        name = wanted.lstrip("/")
        if name in taken:
            raise Conflict(
                f'Conflict. The container name "/{name}" is already in use by container "{taken[name]}". '
                "You have to remove (or rename) that container to be able to reuse that name."
            )
        return name

    @staticmethod
    def _args(req: CreateRequest, image) -> tuple[str, ...]:  # noqa: ANN001 - runtime Image
        args = container_args(image.config, req.entrypoint, req.cmd)
        if not args:
            raise InvalidParameter("No command specified")
        return args

    def _networks(self, req: CreateRequest) -> tuple[str, tuple[EndpointRequest, ...]]:
        """Resolve NetworkMode and EndpointsConfig at create (Docker >= 1.44 validates here)."""
        mode = req.network_mode or "bridge"
        if mode == "default":
            mode = "bridge"
        endpoints = {("bridge" if k == "default" else k): v for k, v in req.endpoints.items()}
        if mode.startswith("container:"):
            raise InvalidParameter("network mode container:<name> is not supported by shoal yet")
        net = self.ctl.find_network(mode)
        if mode in ("host", "none") or net.driver in ("host", "null"):
            if len(endpoints) > 1 or any(k not in (mode, net.name, net.id) for k in endpoints):
                raise InvalidParameter(f"container cannot be connected to host and other networks: {mode}")
        ordered = [(mode, endpoints.get(mode) or endpoints.get(net.name) or EndpointRequest(mode))]
        ordered += [(k, v) for k, v in endpoints.items() if k not in (mode, net.name, net.id)]
        out = []
        for key, ep in ordered:
            network = self.ctl.find_network(key)
            check_static_address(network, ep.ipv4, ep.ipv6)
            check_mac(ep.mac)
            self._check_free(network, ep)
            out.append(dataclasses.replace(ep, network=network.name))
        return net.name, tuple(out)

    def _check_free(self, network, ep: EndpointRequest) -> None:  # noqa: ANN001 - model Network
        """An address taken now fails at create, so `docker run --ip` leaves nothing behind."""
        for wanted in (ep.ipv4, ep.ipv6):
            if wanted and any(wanted == e.ipv4.split("/")[0] or wanted == e.ipv6.split("/")[0]
                              for e in self.ctl.endpoints_of(network.id)):
                raise Forbidden("Address already in use")
            for cfg in network.ipam_configs:
                if wanted and wanted == cfg.gateway:
                    raise Forbidden("Address already in use")

    async def _make(self, rec: Container, undo: Undo) -> None:
        host = rec.network_mode == "host"
        sb = await self.ctl.create_sandbox(rec.id, host=host)
        undo.push("sandbox", lambda: self.ctl.delete_sandbox(rec.id))
        files = self.etc.prepare(self.etc_root / rec.id, rec.hostname)
        undo.push("etc files", lambda: shutil.rmtree(self.etc_root / rec.id, ignore_errors=True))
        spec = ContainerSpec(
            id=rec.id, args=rec.args, env=rec.env, cwd=rec.working_dir, hostname=rec.hostname,
            user=rec.user, tty=rec.tty, open_stdin=rec.open_stdin, stdin_once=rec.stdin_once,
            netns=sb.path or None, hosts=files.hosts, hostname_file=files.hostname,
            resolv_conf=files.resolv_conf, labels=rec.labels,
            sysctls=dict(rec.host_config.get("Sysctls") or {}), runtime=rec.host_config.get("Runtime") or "",
            mounts=self.volumes.oci_mounts(rec),
            resources=oci_resources(rec.host_config),
        )
        await self.runtime.create(spec, rec.image_id)
        undo.push("runtime", lambda: self.runtime.delete(rec.id))
        await self.volumes.copy_up(rec, lambda: self.runtime.rootfs(rec.id))
        async with self.ctl.store.transaction() as tx:
            tx.put(KIND_CONTAINER, rec.id, rec.to_dict())

    # -- start / stop ------------------------------------------------------------------
    async def start(self, ref: str, *, by_policy: bool = False) -> None:
        rec = self.find(ref)
        live = self.live(rec.id)
        async with live.lock:
            if self.state(rec.id).running:
                raise NotModified(f"container {rec.id} is already running")
            await self.restarts.user_start(rec.id, by_policy)
            log = log_policy(rec.host_config.get("LogConfig"))  # its values fail here, as in dockerd
            await self.ctl.ensure_sandbox(rec.id)
            self.volumes.prepare_start(rec)
            undo = Undo()
            try:
                eps = await self._connect_all(rec, undo)
                embedded = await self._dns_join(rec, eps)
                undo.push("dns", lambda: self._dns_leave(rec.id))
                self._write_etc(rec, eps, embedded)
                bindings = await self.publisher.publish(rec, eps, undo)
                if bindings:  # most containers publish nothing: no store write for them
                    await self._save(dataclasses.replace(self.records[rec.id], ports=bindings))
                    undo.push("ports record",
                              lambda: self._save(dataclasses.replace(self.records[rec.id], ports=())))
                await self.runtime.start(rec.id, log=log)
            except BaseException:
                await undo.run()
                raise
            live.run += 1
            live.watcher = asyncio.get_running_loop().create_task(self._watch(rec.id, live.run))

    async def _connect_all(self, rec: Container, undo: Undo) -> list:
        await self._release(rec.id)  # leftovers of a run that ended while we were away
        eps = []
        for req in rec.networks:
            ep = await self.ctl.connect(req.network, rec.id, name=rec.name, ipv4=req.ipv4, ipv6=req.ipv6,
                                        mac=req.mac, aliases=req.aliases)
            undo.push(f"disconnect {req.network}", lambda ep=ep: self.ctl.disconnect(ep.network_id, rec.id,
                                                                                      force=True))
            eps.append(ep)
        return eps

    async def release(self, cid: str, *, held: bool = False) -> None:
        """What a stop releases (endpoints, ports, DNS names), for a container that is not
        running but still holds some: the repair of a missed release. `held`: the caller
        holds the container's lock already (a repair under `quiet`)."""
        if held:
            if not self.state(cid).running:
                await self._release(cid)
            return
        async with self.live(cid).lock:
            if not self.state(cid).running:
                await self._release(cid)

    async def register_dns(self, rec: Container, eps: list) -> None:
        await self._dns_join(rec, eps)

    async def _release(self, cid: str, *, save: bool = True) -> None:
        """`save=False`: the record is being removed (its ports are not written back)."""
        rec = self.records.get(cid)
        if rec is not None and rec.ports:
            await self.publisher.unpublish(rec)
            if save:
                await self._save(dataclasses.replace(rec, ports=()))
        elif rec is not None:
            self.publisher.ports.release(cid)
        await self._dns_leave(cid)
        for ep in self.ctl.endpoints_in(cid):
            await self.ctl.disconnect(ep.network_id, cid, force=True)

    # -- embedded DNS ------------------------------------------------------------------
    def _dns_networks(self, eps: list) -> list:
        """Endpoints on user-defined networks: the only ones the embedded DNS serves."""
        out = []
        for ep in eps:
            net = self.ctl.networks.get(ep.network_id)
            if net is not None and not net.predefined:
                out.append((net, ep))
        return out

    async def _dns_join(self, rec: Container, eps: list) -> bool:
        served = self._dns_networks(eps)
        for net, ep in served:
            links = tuple((a or t, t) for r in rec.networks if r.network in (net.name, net.id)
                          for t, _, a in (link.partition(":") for link in r.links))
            self.dns_records.add(net.id, net.name, DnsEntry.from_endpoint(ep, name=rec.name, hostname=rec.hostname,
                                                                          links=links))
        if served:
            await self._dns_serve(rec)
        return bool(served)

    async def _dns_serve(self, rec: Container) -> None:
        """(Re)start serving the sandbox with the forwarding its networks allow now."""
        sb = self.ctl.sandboxes.get(rec.id)
        if self.dns is None or sb is None or not sb.path:
            return
        await self.dns.add_sandbox(rec.id, sb.path, upstreams=self._dns_upstreams(rec),
                                   ndots_set=any(o.startswith("ndots:") for o in rec.host_config.get("DnsOptions") or ()))

    def _dns_upstreams(self, rec: Container) -> list[str] | None:
        """None: the daemon's. Forwards leave from the host's namespace, so a container whose
        every network is internal keeps only upstreams inside those networks' subnets: anything
        else would be a way out of an internal network (Docker's fix for CVE-2024-29018)."""
        wanted = tuple(rec.host_config.get("Dns") or ())
        nets = [n for ep in self.ctl.endpoints_in(rec.id) if (n := self.ctl.networks.get(ep.network_id))]
        if any(not n.internal for n in nets):
            return list(wanted) if wanted else None
        subnets = [ipaddress.ip_network(c.subnet) for n in nets for c in n.ipam_configs]
        candidates = wanted or (self.dns.upstreams if self.dns is not None else ())
        return [u for u in candidates if any(ipaddress.ip_address(parse_upstream(u)[0]) in s for s in subnets)]

    async def _dns_leave(self, cid: str) -> None:
        self.dns_records.remove_sandbox(cid)
        if self.dns is not None:
            await self.dns.remove_sandbox(cid)

    def _link_hosts(self, rec: Container, legacy: list[str]) -> list[tuple[str, str]]:
        """`--link name:alias`: the target's address under both names, for this container only.
        An endpoint's link (EndpointSettings.Links) on a user network is answered by the
        embedded DNS instead (so it follows the target's address), as Docker does; to a
        container that is not there, or not on that network, it is no error: dockerd 20.10
        starts such a container and the name just does not resolve (measured). A legacy link
        (HostConfig.Links) must resolve."""
        wanted = [(r.network, link, False) for r in rec.networks for link in r.links
                  if self._predefined(r.network)]
        for link in legacy:  # HostConfig.Links: "name:alias" or Docker's "/name:/me/alias"
            target, _, alias = link.partition(":")
            wanted.append((rec.network_mode, f"{target.strip('/')}:{alias.rsplit('/', 1)[-1]}", True))
        out = []
        for network, link, must in wanted:
            target, _, alias = link.partition(":")
            try:
                other = self.find(target.strip("/"))
                net = self.ctl.find_network(network)
            except (NotFound, InvalidParameter):
                if not must:
                    continue
                raise InvalidParameter(f"could not get container for {target}") from None
            ep = next((e for e in self.ctl.endpoints_in(other.id) if e.network_id == net.id), None)
            if (ep is None or not ep.ipv4) and not must:
                continue
            if ep is None or not ep.ipv4:
                raise InvalidParameter(f"cannot link to {target}: it is not running on network {net.name}")
            ip = ep.ipv4.split("/")[0]
            out += [(n, ip) for n in dict.fromkeys((alias.strip("/") or other.name, other.name)) if n]
        return out

    def _predefined(self, network: str) -> bool:
        try:
            return self.ctl.find_network(network).predefined
        except NotFound:
            return True

    def _write_etc(self, rec: Container, eps: list, embedded: bool) -> None:
        hc = rec.host_config
        extra = []
        for item in hc.get("ExtraHosts") or ():
            host, _, ip = item.partition(":")
            extra.append((host, ip))
        extra += self._link_hosts(rec, hc.get("Links") or ())
        self.etc.write(self.etc_root / rec.id, rec.hostname, eps, embedded=embedded, extra_hosts=tuple(extra),
                       **self._resolv_options(rec))

    @staticmethod
    def _resolv_options(rec: Container) -> dict[str, tuple[str, ...]]:
        hc = rec.host_config
        return {"dns": tuple(hc.get("Dns") or ()), "dns_search": tuple(hc.get("DnsSearch") or ()),
                "dns_options": tuple(hc.get("DnsOptions") or ())}

    async def _watch(self, cid: str, run: int) -> None:
        """When this run's process exits: release its endpoints, honour --rm."""
        with contextlib.suppress(NotFound):
            await self.runtime.wait(cid, "not-running")
        live = self._live.get(cid)
        if live is None or cid not in self.records:
            return
        async with live.lock:
            if live.run != run or self.state(cid).running:
                return
            await self._release(cid)
        self.execs.collect()
        if not await self.restarts.exited(cid) and self.records[cid].auto_remove:
            with contextlib.suppress(NotFound):
                await self.remove(cid, force=True, volumes=True)

    async def stop(self, ref: str, timeout: float | None = None) -> None:
        rec = self.find(ref)
        live = self.live(rec.id)
        if not self.state(rec.id).running and not await self.restarts.restarting_after_exit(rec.id):
            raise NotModified(f"container {rec.id} is already stopped")
        if not await self.restarts.user_stop(rec.id):
            await self.runtime.stop(rec.id, *stop_plan(rec, timeout))
        async with live.lock:
            if not self.state(rec.id).running:
                await self._release(rec.id)

    async def kill(self, ref: str, signal: str = "KILL") -> None:
        rec = self.find(ref)
        if not self.state(rec.id).running and not await self.restarts.restarting_after_exit(rec.id):
            raise Conflict(f"Cannot kill container: {ref}: Container {rec.id} is not running")
        if not await self.restarts.user_stop(rec.id, signal or "KILL"):
            await self.runtime.kill(rec.id, signal or "KILL")

    async def restart(self, ref: str, timeout: float | None = None) -> None:
        rec = self.find(ref)
        with contextlib.suppress(NotModified):
            await self.stop(rec.id, timeout)
        await self.start(rec.id)

    async def wait(self, ref: str, condition: str = "not-running") -> int:
        rec = self.find(ref)
        if condition == "removed":
            return await self._wait_removed(rec.id)
        if condition == "next-exit":
            return await self.runtime.wait(rec.id, condition)
        return await self.restarts.through_restarts(rec.id, await self.runtime.wait(rec.id, "not-running"))

    async def _wait_removed(self, cid: str) -> int:
        """`docker run --rm` asks for this before start: the code is that of the coming run."""
        st = self.state(cid)
        code = st.exit_code
        if st.running or st.status == "created":
            try:
                code = await self.runtime.wait(cid, "next-exit" if st.status == "created" else "not-running")
            except NotFound:  # removed before it ever ran
                return code
        live = self._live.get(cid)
        if live is not None:
            await live.removed.wait()
        return code

    async def rename(self, ref: str, new: str) -> None:
        """dockerd's checks and messages, in its order; a running container's DNS names follow."""
        if not ref or not new:
            raise InvalidParameter("Neither old nor new names may be empty")
        rec = self.find(ref)
        async with self._names, self.live(rec.id).lock:
            rec = self.records[rec.id]
            if new.lstrip("/") == rec.name:
                raise InvalidParameter("Renaming a container with the same name as its current name")
            try:
                name = self._pick_name("/" + new.lstrip("/"))
            except ShoalError as exc:
                raise type(exc)(f"Error when allocating new name: {exc.message}") from None
            rec = dataclasses.replace(rec, name=name)
            await self._save(rec)
            await self.ctl.rename_endpoints(rec.id, name)
            if self.state(rec.id).running:
                await self._dns_join(rec, self.ctl.endpoints_in(rec.id))

    # -- remove ------------------------------------------------------------------------
    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        rec = self.find(ref)
        live = self.live(rec.id)
        async with live.lock:
            if (self.state(rec.id).running or self.restarts.restarting(rec.id)) and not force:
                raise Conflict(
                    f'cannot remove container "/{rec.name}": container is running: '
                    "stop the container before removing or force remove"
                )
            live.run += 1  # this run's watcher must not release what comes next
            # The record goes first: that is the removal, and a crash after it ends removed
            # (restore deletes runtime state and sandboxes no record names). Every removal
            # path then releases what a stop does (published ports and their host ports, DNS
            # names, endpoints): a forced removal of a running container once skipped this,
            # leaving its DNAT elements for the next owner of its address. What fails from
            # here on is an orphan, dropped by the self-heal.
            async with self.ctl.store.transaction() as tx:
                tx.delete(KIND_CONTAINER, rec.id)
            try:
                await self.runtime.delete(rec.id)
                await self._release(rec.id, save=False)
                await self.ctl.delete_sandbox(rec.id)
            except Exception as exc:  # noqa: BLE001 - the record is gone: so is the container
                log.warning("container %s removed, but not all it held was released: %s", rec.id[:12], exc)
            finally:
                shutil.rmtree(self.etc_root / rec.id, ignore_errors=True)
                self.records.pop(rec.id, None)
                await self.restarts.forget(rec.id)
                live.removed.set()
                self._live.pop(rec.id, None)
        await self.volumes.detach(rec, remove_anonymous=volumes)
        self.execs.collect()

    async def prune(self, keep) -> list[str]:  # noqa: ANN001 - Callable[[Container], bool]
        """Remove every container that is not running and that `keep` does not keep; a
        container that starts meanwhile is skipped (remove refuses it), as in Docker."""
        removed = []
        for rec in list(self.records.values()):
            if rec.id not in self.records or self.state(rec.id).running or self.restarts.restarting(rec.id) \
                    or keep(rec):
                continue
            try:
                await self.remove(rec.id)
            except (NotFound, Conflict):
                continue
            removed.append(rec.id)
        return removed

    # -- restore -----------------------------------------------------------------------
    async def restore(self) -> None:
        """Containers kept running while shoald was away; those that ended get their
        endpoints released now and their exit code reported from the monitor's files."""
        await self.runtime.restore()
        self.restarts.load()
        known = {s.id for s in self.runtime.list()}
        stored = {d.get("id") for d in self.ctl.store.list(KIND_CONTAINER)}
        for cid in known - stored:  # a create cut short before its record was written
            log.warning("runtime state %s has no container record; removing it", cid[:12])
            await self.runtime.delete(cid)
            shutil.rmtree(self.etc_root / cid, ignore_errors=True)
        known &= stored
        for data in self.ctl.store.list(KIND_CONTAINER):
            rec = Container.from_dict(data)
            if rec.id not in known:
                log.warning("container %s has no runtime state; removing its record", rec.id[:12])
                await self.ctl.delete_sandbox(rec.id)
                async with self.ctl.store.transaction() as tx:
                    tx.delete(KIND_CONTAINER, rec.id)
                continue
            self.records[rec.id] = rec
            live = self.live(rec.id)
            if self.state(rec.id).running:
                rec = await self._settle_networks(rec)
                live.run += 1
                live.watcher = asyncio.get_running_loop().create_task(self._watch(rec.id, live.run))
                await self._dns_join(rec, self.ctl.endpoints_in(rec.id))
                held = {ip for e in self.ctl.endpoints_in(rec.id) for ip in e.ips}
                if all(b.container_ip in held for b in rec.ports):
                    await self.publisher.republish(rec)
                else:  # a disconnect that moved them was cut short: they go where the route is
                    rec = await self._publish_again(dataclasses.replace(rec, ports=()))
                    await self._save(rec)
            else:
                await self._release(rec.id)
        for sid in [sid for sid, sb in self.ctl.sandboxes.items() if sid not in self.records and not sb.external]:
            log.warning("sandbox %s has no container; removing it", sid[:12])
            await self.ctl.delete_sandbox(sid)
        for sb in [sb for sb in self.ctl.sandboxes.values() if sb.external and sb.ports]:  # CNI portMappings
            try:
                await self.publisher.republish_bindings(sb.id, sb.ports)
            except ShoalError as exc:  # taken meanwhile: `shoal system check` reports it not held
                log.warning("CNI attachment %s: its host ports are not held again: %s", sb.id[:12], exc)
        await self.restarts.boot()

    # -- exec --------------------------------------------------------------------------
    def exec_create(self, ref: str, spec: ExecSpec, attach: dict[str, bool]) -> str:
        """Docker splits exec into create and start; the runtime runs it at start."""
        rec = self.find(ref)
        if not self.state(rec.id).running:
            raise Conflict(f"Container {rec.id} is not running")
        if getattr(self.state(rec.id), "paused", False):
            raise Conflict(f"Container {ref} is paused, unpause the container before exec")  # dockerd: as given
        return self.execs.create(rec.id, spec, attach)

    def exec_get(self, exec_id: str) -> PendingExec:
        return self.execs.get(exec_id)

    def exec_startable(self, exec_id: str) -> PendingExec:
        return self.execs.startable(exec_id)

    async def exec_start(self, exec_id: str, *, detach: bool, detach_keys: bytes | None = None) -> ExecSession:
        return await self.execs.start(exec_id, detach=detach, detach_keys=detach_keys)

    async def _save(self, rec: Container) -> None:
        async with self.ctl.store.transaction() as tx:
            tx.put(KIND_CONTAINER, rec.id, rec.to_dict())
        self.records[rec.id] = rec
