"""Inject a failure at each step of `run` (create + start) and check nothing is left behind."""

import asyncio
import io
import tarfile
from types import SimpleNamespace

import pytest

from shoal.controller import Controller
from shoal.controller.containers import Containers, CreateRequest
from shoal.controller.restore import restore
from shoal.drivers import BridgeDriver, HostDriver, NullDriver
from shoal.errors import InvalidParameter, ShoalError
from shoal.ipam import DefaultIpam, default_pools
from shoal.kernel import FakeSandboxKernel
from shoal.runtime import ImageStore
from shoal.store import MemoryStore


class FakeRuntime:
    """Records containers; `fail_on` names a method to refuse once."""

    def __init__(self):
        self.containers = {}
        self.fail_on = None
        self.specs = {}

    def check_runtime(self, name):
        if (name or "runc") not in ("runc", "crun"):
            raise InvalidParameter(f"Unknown runtime specified {name}")
        return name or "runc"

    def _maybe_fail(self, op):
        if self.fail_on == op:
            self.fail_on = None
            raise ShoalError(f"runtime {op} refused (injected)")

    async def create(self, spec, image_ref):
        self._maybe_fail("create")
        self.containers[spec.id] = "created"
        self.specs[spec.id] = spec

    async def start(self, cid, log=None):
        self._maybe_fail("start")
        self.containers[cid] = "running"
        return 42

    async def delete(self, cid):
        self.containers.pop(cid, None)

    async def wait(self, cid, condition="not-running"):
        await asyncio.sleep(3600)

    def state(self, cid):
        status = self.containers[cid]
        return SimpleNamespace(status=status, running=status == "running", exit_code=0)

    def list(self):
        return [SimpleNamespace(id=c) for c in self.containers]

    async def restore(self):
        return []


def tiny_image(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"#!/bin/true\n"
        info = tarfile.TarInfo("bin/sh")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    store = ImageStore(tmp_path / "images")
    store.import_tar(buf.getvalue(), "busybox", "latest")
    return store


async def world(tmp_path):
    kernel = FakeSandboxKernel()
    store = MemoryStore()
    ipam = DefaultIpam(default_pools())
    drivers = {"bridge": BridgeDriver(kernel), "host": HostDriver(), "null": NullDriver()}
    ctl = Controller(store, kernel, ipam, drivers, "f" * 64, exec_root=str(tmp_path / "run"))
    await restore(ctl)
    runtime = FakeRuntime()
    containers = Containers(ctl, runtime, tiny_image(tmp_path), tmp_path / "etc")
    return SimpleNamespace(ctl=ctl, kernel=kernel, store=store, ipam=ipam, runtime=runtime, c=containers)


def snapshot(w):
    pool = w.ipam.pool("LocalDefault/172.17.0.0/16")
    return (
        dict(w.store.data), set(w.kernel.links_by_name), set(w.kernel.namespaces),
        tuple(pool.addresses.taken()), set(w.runtime.containers), dict(w.ctl.endpoints),
    )


REQ = CreateRequest(image="busybox", cmd=("sh",), name="c1")


@pytest.mark.parametrize("where", ["create_netns", "store", "runtime.create"])
def test_create_failure_leaves_nothing(tmp_path, where):
    async def go():
        w = await world(tmp_path)
        before = snapshot(w)
        if where == "store":
            w.store.fail_next = True
        elif where == "runtime.create":
            w.runtime.fail_on = "create"
        else:
            w.kernel.fail_on = where
        with pytest.raises(ShoalError):
            await w.c.create(REQ)
        assert snapshot(w) == before
        assert not (tmp_path / "etc").exists() or not list((tmp_path / "etc").iterdir())
        assert w.c.records == {}
        rec = await w.c.create(REQ)  # and the same request then works
        assert rec.name == "c1"
    asyncio.run(go())


@pytest.mark.parametrize("where", ["add_veth", "configure_iface", "store", "runtime.start"])
def test_start_failure_releases_the_network(tmp_path, where):
    async def go():
        w = await world(tmp_path)
        rec = await w.c.create(REQ)
        before = snapshot(w)
        if where == "store":
            w.store.fail_next = True
        elif where == "runtime.start":
            w.runtime.fail_on = "start"
        else:
            w.kernel.fail_on = where
        with pytest.raises(ShoalError):
            await w.c.start(rec.id)
        assert snapshot(w) == before
        assert w.ctl.endpoints_in(rec.id) == []
        await w.c.start(rec.id)
        (ep,) = w.ctl.endpoints_in(rec.id)
        assert ep.ipv4 == "172.17.0.2/16" and ep.mac == "02:42:ac:11:00:02"
    asyncio.run(go())


def test_remove_cleans_everything(tmp_path):
    async def go():
        w = await world(tmp_path)
        before = snapshot(w)
        rec = await w.c.create(REQ)
        await w.c.start(rec.id)
        await w.c.remove(rec.id, force=True)
        assert snapshot(w) == before
    asyncio.run(go())
