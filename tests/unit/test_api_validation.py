"""Issue #14: what a client sends is checked at the edge (400 naming the field), never a 500.

The whole class: every field of every schema gets every JSON kind it must refuse, and after
each refusal nothing exists that did not before (no record, no endpoint, no store row).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest

from shoal.api.app import App
from shoal.api.containers import ContainerRoutes
from shoal.api.execs import ExecRoutes
from shoal.api.gotypes import Bool, Int, Map, Slice, Str, StrSlice, Struct
from shoal.api.http import Request
from shoal.api.networks import NetworkRoutes
from shoal.api.schemas import (
    CONTAINER_CREATE, EXEC_CONFIG, EXEC_START, NETWORK_CONNECT, NETWORK_CREATE, NETWORK_DISCONNECT,
)
from shoal.controller import Controller
from shoal.controller.containers import Containers
from shoal.controller.restore import restore
from shoal.drivers import BridgeDriver, HostDriver, NullDriver
from shoal.ipam import DefaultIpam, default_pools
from shoal.kernel import FakeSandboxKernel
from shoal.store import MemoryStore

from tests.unit.test_containers_rollback import FakeRuntime, tiny_image

KINDS = {"string": "x", "number": 7, "bool": True, "array": [], "object": {}}


def accepted(gotype) -> set[str]:
    if isinstance(gotype, Str):
        return {"string"}
    if isinstance(gotype, Bool):
        return {"bool"}
    if isinstance(gotype, Int):
        return {"number"}
    if isinstance(gotype, StrSlice):
        return {"string", "array"}
    if isinstance(gotype, Slice):
        return {"array"}
    return {"object"}


def wrong_values(gotype) -> list[tuple[str, object]]:
    """Each JSON kind the type refuses, plus what Go refuses inside a kind it takes."""
    out = [(kind, value) for kind, value in KINDS.items() if kind not in accepted(gotype)]
    if isinstance(gotype, Int):
        out += [("number 1.5", 1.5), (f"number {gotype.hi + 1}", gotype.hi + 1)]
    if isinstance(gotype, StrSlice):
        out.append(("array", ["ok", 5]))
    return out


def fields(schema: Struct, path=(), struct=None, depth=0):
    """(JSON path, Go struct, Go field path, type) for every field, nested ones included; a
    map's key ("k") and a slice's index (0) are in the JSON path but not in Go's."""
    for name, gotype in schema.fields.items():
        yield from _field(gotype, (*path, name), schema.short, depth)


def _field(gotype, jpath, struct, depth):
    gopath = ".".join(p for p in jpath if isinstance(p, str) and p != "k")
    yield jpath, struct, gopath, gotype
    if depth > 4:
        return
    if isinstance(gotype, Struct):
        for name, sub in gotype.fields.items():
            yield from _field(sub, (*jpath, name), gotype.short, depth + 1)
    elif isinstance(gotype, Map) and not isinstance(gotype.elem, Str):
        yield from _field(gotype.elem, (*jpath, "k"), struct, depth + 1)
    elif isinstance(gotype, Slice) and not isinstance(gotype.elem, (Str, Int)):
        yield from _field(gotype.elem, (*jpath, 0), struct, depth + 1)


def nest(jpath, value):
    for key in reversed(jpath):
        value = [value] if key == 0 else {key: value}
    return value


def cases(schema: Struct, base=None):
    out = []
    for jpath, struct, gopath, gotype in fields(schema):
        for kind, value in wrong_values(gotype):
            body = {**(base or {}), **nest(jpath, value)}
            want = f"json: cannot unmarshal {kind} into Go struct field {struct}.{gopath} of type "
            out.append(pytest.param(body, want, id=f"{'.'.join(map(str, jpath))}={kind}"))
    return out


class Runtime(FakeRuntime):
    """With the state fields that inspect and ps render."""

    def state(self, cid):
        st = super().state(cid)
        return SimpleNamespace(**st.__dict__, pid=1 if st.running else 0, started_at=1.0, finished_at=None)

    def logs(self, cid, **kw):
        raise AssertionError("bad query arguments must be refused before the runtime is asked")


class World:
    """The API over a controller with fake kernel and runtime: one loop for the module, as
    the daemon has, so the controller's locks stay on it."""

    def __init__(self, tmp):
        self.loop = asyncio.new_event_loop()
        self.kernel, self.store = FakeSandboxKernel(), MemoryStore()
        drivers = {"bridge": BridgeDriver(self.kernel), "host": HostDriver(), "null": NullDriver()}
        self.ctl = Controller(self.store, self.kernel, DefaultIpam(default_pools()), drivers, "f" * 64,
                              exec_root=str(tmp / "run"))
        self.loop.run_until_complete(restore(self.ctl))
        self.runtime = Runtime()
        self.c = Containers(self.ctl, self.runtime, tiny_image(tmp), tmp / "etc")
        self.app = App(ContainerRoutes(self.ctl, self.c).routes() + NetworkRoutes(self.ctl, self.c).routes()
                       + ExecRoutes(self.c).routes())

    def call(self, method, target, body=None, raw=None):
        url = urlsplit(target)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        req = Request(method, url.path, parse_qs(url.query, keep_blank_values=True),
                      {"content-type": "application/json"}, data)
        resp = self.loop.run_until_complete(self.app(req))
        return resp.status, json.loads(resp.body) if resp.body else None

    def snapshot(self):
        return (repr(sorted(self.store.data.items())), set(self.c.records),
                dict(self.ctl.endpoints), set(self.kernel.links_by_name), set(self.runtime.containers))


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    world = World(tmp_path_factory.mktemp("api"))
    status, body = world.call("POST", "/containers/create?name=target", {"Image": "busybox", "Cmd": ["sh"]})
    assert status == 201, body
    world.cid = body["Id"]
    assert world.call("POST", f"/containers/{world.cid}/start")[0] == 204
    yield world
    world.loop.close()


def refused(w, method, path, body, want):
    before = w.snapshot()
    status, answer = w.call(method, path, body)
    assert status == 400, (status, answer)
    assert want in answer["message"], answer["message"]
    assert w.snapshot() == before
    return answer["message"]


@pytest.mark.parametrize(("body", "want"), cases(CONTAINER_CREATE, {"Image": "busybox", "Cmd": ["sh"]}))
def test_create_refuses_every_wrong_kind(w, body, want):
    refused(w, "POST", "/containers/create?name=bad", body, want)


@pytest.mark.parametrize(("body", "want"), cases(NETWORK_CONNECT, {"Container": "target"}))
def test_connect_refuses_every_wrong_kind(w, body, want):
    refused(w, "POST", "/networks/bridge/connect", body, want)


@pytest.mark.parametrize(("body", "want"), cases(NETWORK_DISCONNECT, {"Container": "target"}))
def test_disconnect_refuses_every_wrong_kind(w, body, want):
    refused(w, "POST", "/networks/bridge/disconnect", body, want)


@pytest.mark.parametrize(("body", "want"), cases(EXEC_CONFIG, {"Cmd": ["sh"]}))
def test_exec_create_refuses_every_wrong_kind(w, body, want):
    refused(w, "POST", "/containers/target/exec", body, want)


@pytest.mark.parametrize(("body", "want"), cases(EXEC_START))
def test_exec_start_refuses_every_wrong_kind(w, body, want):
    status, made = w.call("POST", "/containers/target/exec", {"Cmd": ["sh"]})
    assert status == 201
    refused(w, "POST", f"/exec/{made['Id']}/start", body, want)


@pytest.mark.parametrize(("body", "want"), cases(NETWORK_CREATE, {"Name": "sht-bad"}))
def test_network_create_refuses_every_wrong_kind(w, body, want):
    refused(w, "POST", "/networks/create", body, want)


@pytest.mark.parametrize("body", ["x", 5, [], True])
def test_whole_bodies_of_the_wrong_kind(w, body):
    for method, path in (("POST", "/containers/create"), ("POST", "/networks/bridge/connect"),
                         ("POST", "/networks/bridge/disconnect"), ("POST", "/containers/target/exec")):
        refused(w, method, path, body, "json: cannot unmarshal")


# -- the cases reported in #14 -------------------------------------------------------------
@pytest.mark.parametrize("cfg", ["x", 5, [], ["a"], True, {"IPAMConfig": "x"}, {"IPAMConfig": 5},
                                 {"IPAMConfig": []}, {"Aliases": "a"}, {"Links": 5}, {"MacAddress": 5},
                                 {"DriverOpts": []}, {"DriverOpts": {"a": 1}}, {"IPAMConfig": {"LinkLocalIPs": "x"}}])
def test_connect_endpoint_config_of_the_wrong_kind(w, cfg):
    refused(w, "POST", "/networks/bridge/connect", {"Container": "target", "EndpointConfig": cfg},
            "into Go struct field ")


@pytest.mark.parametrize("force", ["yes", 1, [], {}])
def test_disconnect_force_must_be_a_bool(w, force):
    msg = refused(w, "POST", "/networks/bridge/disconnect", {"Container": "target", "Force": force}, "")
    assert msg.endswith("Go struct field NetworkDisconnect.Force of type bool")


def test_create_working_dir_as_a_number(w):
    refused(w, "POST", "/containers/create", {"Image": "busybox", "WorkingDir": 5},
            "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.WorkingDir of type string")


def test_create_working_dir_must_be_absolute(w):
    refused(w, "POST", "/containers/create", {"Image": "busybox", "WorkingDir": "tmp"},
            "the working directory 'tmp' is invalid, it needs to be an absolute path")


NUL_BODIES = [
    {"Cmd": ["sh", "-c", "a\x00b"]}, {"Cmd": "a\x00"}, {"Entrypoint": ["\x00"]}, {"Env": ["A=\x00"]},
    {"WorkingDir": "/tmp\x00"}, {"Hostname": "h\x00"}, {"Domainname": "d\x00"}, {"User": "root\x00"},
    {"Labels": {"a": "\x00"}}, {"Labels": {"a\x00": "b"}}, {"Image": "busybox\x00"},
    {"HostConfig": {"ExtraHosts": ["h\x00:1.2.3.4"]}}, {"HostConfig": {"Dns": ["1.1.1.1\x00"]}},
    {"HostConfig": {"DnsSearch": ["a\x00"]}}, {"HostConfig": {"DnsOptions": ["ndots:1\x00"]}},
    {"NetworkingConfig": {"EndpointsConfig": {"bridge": {"Aliases": ["a\x00"]}}}},
]


@pytest.mark.parametrize("extra", NUL_BODIES)
def test_create_refuses_nul_bytes_anywhere(w, extra):
    refused(w, "POST", "/containers/create", {"Image": "busybox", "Cmd": ["sh"], **extra}, "NUL byte")


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/containers/target/exec", {"Cmd": ["sh", "\x00"]}),
    ("POST", "/containers/target/exec", {"Cmd": ["sh"], "Env": ["A=\x00"]}),
    ("POST", "/networks/bridge/connect", {"Container": "target", "EndpointConfig": {"Aliases": ["\x00"]}}),
    ("POST", "/networks/create", {"Name": "sht-n\x00"}),
])
def test_other_bodies_refuse_nul_bytes(w, method, path, body):
    refused(w, method, path, body, "NUL byte")


BAD_PORTS = ["@?", "", "0", "65536", "80/xyz", "80/TCP", "80/", "abc/tcp", "90-80/tcp", "1-65536", " 80", "80/tcp/x"]


@pytest.mark.parametrize("key", BAD_PORTS)
def test_create_refuses_exposed_ports_that_are_not_ports(w, key):
    refused(w, "POST", "/containers/create", {"Image": "busybox", "ExposedPorts": {key: {}}},
            f"invalid port specification: {json.dumps(key)}")


@pytest.mark.parametrize("key", [*BAD_PORTS, "8000-8010/tcp"])
def test_create_refuses_port_bindings_that_are_not_ports(w, key):
    refused(w, "POST", "/containers/create", {"Image": "busybox", "HostConfig": {"PortBindings": {key: None}}},
            f"invalid port specification: {json.dumps(key)}")


@pytest.mark.parametrize("host_port", ["abc", "70000", "80-70", "8080/tcp", "-1", "1-"])
def test_create_refuses_host_ports_that_do_not_parse(w, host_port):
    bindings = {"80/tcp": [{"HostIp": "", "HostPort": host_port}]}
    refused(w, "POST", "/containers/create", {"Image": "busybox", "HostConfig": {"PortBindings": bindings}},
            f"invalid port specification: {json.dumps(host_port)}")


@pytest.mark.parametrize(("extra", "want"), [
    ({"Env": ["=x"]}, "invalid environment variable: =x"),
    ({"HostConfig": {"ExtraHosts": ["nohost"]}}, 'bad format for add-host: "nohost"'),
    ({"HostConfig": {"ExtraHosts": ["h:not-an-ip"]}}, 'invalid IP address in add-host: "not-an-ip"'),
    ({"HostConfig": {"Dns": ["resolver"]}}, "resolver is not an ip address"),
    ({"HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}, "invalid restart policy 'sometimes'"),
    ({"HostConfig": {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}}},
     "maximum retry count cannot be used with restart policy 'always'"),
    ({"HostConfig": {"AutoRemove": True, "RestartPolicy": {"Name": "always"}}},
     "can't create 'AutoRemove' container with restart policy"),
    ({"Healthcheck": {"Interval": 5}}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"Healthcheck": {"Retries": -1}}, "Retries in Healthcheck cannot be negative"),
    ({"StopSignal": "SIGNOPE"}, "Invalid signal: SIGNOPE"),
    ({"ExposedPorts": {"8000-8002/tcp": {}}, "HostConfig": {"PublishAllPorts": True}}, "expose each port"),
    ({"HostConfig": {"Runtime": "kata"}}, "Unknown runtime specified kata"),
])
def test_create_refuses_what_dockerd_refuses(w, extra, want):
    refused(w, "POST", "/containers/create", {"Image": "busybox", "Cmd": ["sh"], **extra}, want)


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/containers/target/resize?h=abc&w=1"), ("GET", "/containers/json?limit=x"),
    ("GET", "/containers/target/logs?stdout=1&tail=some"), ("GET", "/containers/target/logs?stdout=1&since=x"),
])
def test_malformed_query_numbers_are_400(w, method, path):
    status, body = w.call(method, path)
    assert status == 400, body


def test_exec_working_dir_must_be_absolute(w):
    refused(w, "POST", "/containers/target/exec", {"Cmd": ["sh"], "WorkingDir": "rel"},
            "the working directory 'rel' is invalid")


def test_good_requests_still_pass(w):
    body = {"Image": "busybox", "Cmd": "sh", "WorkingDir": "/tmp", "Env": ["A=1", "B="],
            "ExposedPorts": {"80/tcp": {}, "53/udp": {}, "8000-8002/tcp": {}, "9000": {}},
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1_000_000_000}, "StopSignal": "SIGTERM",
            "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": ""}]}, "Memory": 0,
                           "ExtraHosts": ["h:10.0.0.1", "g:host-gateway", "v6:::1"], "Dns": ["1.1.1.1"],
                           "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}}}
    status, made = w.call("POST", "/containers/create?name=good", body)
    assert status == 201, made
    status, info = w.call("GET", "/containers/good/json")
    assert status == 200
    assert set(info["NetworkSettings"]["Ports"]) == {"80/tcp", "53/udp", "8000-8002/tcp", "9000/tcp"}
    status, listed = w.call("GET", "/containers/json?all=1&filters=" + json.dumps({"name": ["good"]}))
    assert {p["PrivatePort"] for p in listed[0]["Ports"]} == {80, 53, 9000}
    assert w.call("DELETE", "/containers/good")[0] == 204


def test_runtime_is_chosen_at_create_and_shown(w):
    """HostConfig.Runtime reaches the runtime's spec; without it, the default, named in inspect
    as dockerd names it."""
    for name, asked, shown in (("rt-crun", "crun", "crun"), ("rt-default", "", "runc")):
        status, made = w.call("POST", f"/containers/create?name={name}",
                              {"Image": "busybox", "Cmd": ["sh"], "HostConfig": {"Runtime": asked}})
        assert status == 201, made
        assert w.runtime.specs[made["Id"]].runtime == shown
        assert w.call("GET", f"/containers/{name}/json")[1]["HostConfig"]["Runtime"] == shown
        assert w.call("DELETE", f"/containers/{name}")[0] == 204


# -- one bad stored record never breaks a list ------------------------------------------------
BAD_RECORDS = [
    {"config": {"ExposedPorts": {"@?": {}}}},
    {"config": {"ExposedPorts": ["80"]}, "host_config": {"PortBindings": {"x/tcp": 5}}},
    {"config": {"ExposedPorts": {"80-x": None, "": {}}}, "host_config": {"PortBindings": "80"}},
    {"config": "garbage", "host_config": ["garbage"]},
    {"labels": {"a": 1}, "host_config": {"PortBindings": {"80/tcp": "x"}}},
]


@pytest.mark.parametrize("fields", BAD_RECORDS)
def test_a_bad_stored_record_never_breaks_list_or_inspect(w, fields, caplog):
    status, made = w.call("POST", "/containers/create?name=victim", {"Image": "busybox", "Cmd": ["sh"]})
    assert status == 201
    rec = w.c.records[made["Id"]]
    w.c.records[rec.id] = dataclasses.replace(rec, **fields)  # straight into the records, past the API
    try:
        status, listed = w.call("GET", "/containers/json?all=1")
        assert status == 200, listed
        assert {c["Id"] for c in listed} >= {rec.id, w.cid}
        status, info = w.call("GET", f"/containers/{rec.id}/json")
        assert status == 200, info
        assert info["Id"] == rec.id
    finally:
        w.c.records[rec.id] = rec
        assert w.call("DELETE", f"/containers/{rec.id}")[0] == 204


def test_the_reported_record_lists_with_its_good_ports(w):
    """The #14 report: `"@?"` among the exposed ports; the other ports still show."""
    status, made = w.call("POST", "/containers/create?name=mixed", {"Image": "busybox", "Cmd": ["sh"]})
    rec = w.c.records[made["Id"]]
    w.c.records[rec.id] = dataclasses.replace(rec, config={"ExposedPorts": {"@?": {}, "80/tcp": {}}})
    try:
        status, listed = w.call("GET", "/containers/json?all=1&filters=" + json.dumps({"name": ["mixed"]}))
        assert status == 200 and listed[0]["Ports"] == [{"PrivatePort": 80, "Type": "tcp"}]
    finally:
        w.c.records[rec.id] = rec
        w.call("DELETE", f"/containers/{rec.id}")


# -- any JSON value in any field: never a 5xx ----------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=8), lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
TARGETS = [("/containers/create", CONTAINER_CREATE, {"Image": "busybox", "Cmd": ["sh"]}),
           ("/networks/bridge/connect", NETWORK_CONNECT, {"Container": "target"}),
           ("/containers/target/exec", EXEC_CONFIG, {"Cmd": ["sh"]})]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(TARGETS), data=st.data(), value=JSON)
def test_any_json_in_any_field_is_never_a_5xx(w, target, data, value):
    path, schema, base = target
    jpath = data.draw(st.sampled_from([p for p, *_ in fields(schema)]))
    status, answer = w.call("POST", path + ("?name=prop" if "create" in path else ""), {**base, **nest(jpath, value)})
    assert status < 500, answer
    if status == 201 and "create" in path:
        assert w.call("DELETE", f"/containers/{answer['Id']}")[0] == 204
    elif status == 200 and "connect" in path:
        w.call("POST", "/networks/bridge/disconnect", {"Container": "target", "Force": True})
