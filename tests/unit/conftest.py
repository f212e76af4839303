import asyncio
import json
import os
import secrets
import tempfile
from urllib.parse import parse_qs, urlsplit

import pytest

from shoal.api.app import App
from shoal.api.http import Request
from shoal.api.networks import NetworkRoutes
from shoal.api.system import SystemRoutes
from shoal.controller import Controller
from shoal.controller.restore import restore
from shoal.drivers import BridgeDriver, HostDriver, NullDriver
from shoal.ipam import DefaultIpam, default_pools, ula_pool
from shoal.kernel import FakeKernel
from shoal.store import MemoryStore


class World:
    """A controller over fakes, plus an in-process API client."""

    def __init__(self):
        self.store = MemoryStore()
        self.kernel = FakeKernel()
        self.ipam = DefaultIpam(default_pools(), [ula_pool("test")])
        drivers = {"bridge": BridgeDriver(self.kernel), "host": HostDriver(), "null": NullDriver()}
        # an exec root of its own (never made: the fakes write no files), since restore
        # removes namespace files under it that no sandbox owns
        exec_root = os.path.join(tempfile.gettempdir(), f"sht-unit-{secrets.token_hex(6)}")
        self.ctl = Controller(self.store, self.kernel, self.ipam, drivers, "e" * 64, exec_root=exec_root)
        self.app = App(SystemRoutes(self.ctl, "/tmp/x", []).routes() + NetworkRoutes(self.ctl).routes())

    async def start(self):
        await restore(self.ctl)
        return self

    async def call(self, method, target, body=None, headers=None):
        url = urlsplit(target)
        raw = json.dumps(body).encode() if body is not None else b""
        hdrs = {"content-type": "application/json"} if body is not None else {}
        hdrs.update(headers or {})
        req = Request(method, url.path, parse_qs(url.query, keep_blank_values=True), hdrs, raw)
        resp = await self.app(req)
        data = json.loads(resp.body) if resp.body and resp.content_type == "application/json" else resp.body
        return resp.status, data


@pytest.fixture
def world():
    return asyncio.run(World().start())


def run(coro):
    return asyncio.run(coro)
