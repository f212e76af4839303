"""`shoal network ...` against an in-memory fake daemon (httpx.MockTransport): bodies, output, errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from click.testing import CliRunner, Result

from shoal.cli.cmdutil import AppContext
from shoal.cli.main import cli
from shoal.cli.network import build_create_body, build_ipam_config
from shoal.cli.errors import CliError

ID_A = "7d86d31b1478e7cca9ebed7e73aa0fdeec46c5ca29497431d3007d2d9e15ed99"
ID_B = "aa86d31b1478e7cca9ebed7e73aa0fdeec46c5ca29497431d3007d2d9e15ed00"


def network(name: str, net_id: str, **extra: Any) -> dict[str, Any]:
    base = {
        "Name": name, "Id": net_id, "Created": "2024-05-01T10:00:00.5Z", "Scope": "local",
        "Driver": "bridge", "EnableIPv4": True, "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]},
        "Internal": False, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
        "ConfigOnly": False, "Containers": {}, "Options": {}, "Labels": {},
    }
    base.update(extra)
    return base


@dataclass
class FakeDaemon:
    """Just enough of the Engine API for the network commands; records every request."""

    networks: list[dict[str, Any]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    content_type: str = "application/json"

    def find(self, ref: str) -> dict[str, Any] | None:
        for net in self.networks:
            if ref in (net["Name"], net["Id"]) or net["Id"].startswith(ref):
                return net
        return None

    def reply(self, status: int, body: Any) -> httpx.Response:
        if body is None:
            return httpx.Response(status)
        return httpx.Response(status, content=json.dumps(body).encode(), headers={"Content-Type": self.content_type})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = unquote(request.url.path)
        if path == "/_ping":  # no Api-Version header: the CLI falls back to unversioned paths
            return httpx.Response(200, content=b"OK")
        self.requests.append(request)
        if request.method == "GET" and path == "/networks":
            return self.reply(200, self.networks)
        if request.method == "GET" and path.startswith("/networks/"):
            net = self.find(path.split("/", 2)[2])
            return self.reply(200, net) if net else self.reply(404, {"message": f"network {path[10:]} not found"})
        if request.method == "POST" and path == "/networks/create":
            body = json.loads(request.content)
            if self.find(body["Name"]):
                return self.reply(409, {"message": f"network with name {body['Name']} already exists"})
            return self.reply(201, {"Id": "f" * 64, "Warning": ""})
        if request.method == "DELETE":
            ref = path.split("/", 2)[2]
            if ref == "bridge":
                return self.reply(403, {"message": "bridge is a pre-defined network and cannot be removed"})
            return self.reply(204, None) if self.find(ref) else self.reply(404, {"message": f"network {ref} not found"})
        if path == "/networks/prune":
            return self.reply(200, {"NetworksDeleted": ["n1", "n2"]})
        if path.endswith("/connect") or path.endswith("/disconnect"):
            return self.reply(200, None)
        return self.reply(404, {"message": "page not found"})

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) for r in self.requests if r.content]


def run(daemon: FakeDaemon, *args: str, stdin: str | None = None) -> Result:
    obj = AppContext(host="unix:///nonexistent/shoal-test.sock", transport=httpx.MockTransport(daemon))
    env = {"SHOAL_HOST": None, "DOCKER_HOST": None}
    return CliRunner().invoke(cli, list(args), obj=obj, input=stdin, env=env)


@pytest.fixture
def daemon() -> FakeDaemon:
    return FakeDaemon(networks=[
        network("net10", ID_B, Labels={"env": "prod"}),
        network("bridge", ID_A, Options={"com.docker.network.bridge.default_bridge": "true"}),
        network("net9", "bb" * 32, Driver="null", Scope="local"),
    ])


# --- create ------------------------------------------------------------------------------


def test_create_minimal_body_and_output(daemon: FakeDaemon) -> None:
    result = run(daemon, "network", "create", "n1")
    assert result.exit_code == 0, result.output
    assert result.stdout == "f" * 64 + "\n"
    request = daemon.requests[-1]
    assert request.headers["content-type"] == "application/json"
    assert request.content == (
        b'{"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[]},'
        b'"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,'
        b'"Options":{},"Labels":{},"Name":"n1"}\n'
    )


def test_create_full_body(daemon: FakeDaemon) -> None:
    args = [
        "--subnet", "10.1.0.0/16", "--subnet", "fd00::/64", "--gateway", "10.1.0.1",
        "--ip-range", "10.1.2.0/24", "--aux-address", "a=10.1.0.5", "--aux-address", "b=fd00::5",
        "--internal", "--attachable", "--label", "x=1", "--label", "y", "-o", "foo=bar", "--ipv6",
        "--no-ipv4", "--ipam-opt", "q=r", "--scope", "local", "-d", "macvlan",
    ]
    assert run(daemon, "network", "create", *args, "n2").exit_code == 0
    assert list(daemon.bodies()[-1].items()) == list({
        "Driver": "macvlan", "Scope": "local", "EnableIPv4": False, "EnableIPv6": True,
        "IPAM": {"Driver": "default", "Options": {"q": "r"}, "Config": [
            {"Subnet": "10.1.0.0/16", "IPRange": "10.1.2.0/24", "Gateway": "10.1.0.1",
             "AuxiliaryAddresses": {"a": "10.1.0.5"}},
            {"Subnet": "fd00::/64", "AuxiliaryAddresses": {"b": "fd00::5"}},
        ]},
        "Internal": True, "Attachable": True, "Ingress": False, "ConfigOnly": False, "ConfigFrom": None,
        "Options": {"foo": "bar"}, "Labels": {"x": "1", "y": ""}, "Name": "n2",
    }.items())


def test_create_pairs_each_gateway_with_its_subnet() -> None:
    configs = build_ipam_config(["10.0.0.0/16", "10.1.0.0/16"], [], ["10.1.0.1", "10.0.0.1"], {})
    assert configs == [{"Subnet": "10.0.0.0/16", "Gateway": "10.0.0.1"}, {"Subnet": "10.1.0.0/16", "Gateway": "10.1.0.1"}]
    body = build_create_body("n", subnets=("10.0.0.0/16,10.1.0.0/16",), gateways=("10.0.0.1,10.1.0.1",))
    assert [c["Gateway"] for c in body["IPAM"]["Config"]] == ["10.0.0.1", "10.1.0.1"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--gateway", "10.1.2.3", "--subnet", "10.0.0.0/16"], "no matching subnet for gateway 10.1.2.3"),
        (["--subnet", "10.0.0.0/16", "--ip-range", "10.9.0.0/24"], "no matching subnet for range 10.9.0.0/24"),
        (["--subnet", "10.0.0.0/16", "--aux-address", "a=10.9.0.1"], "no matching subnet for aux-address 10.9.0.1"),
        (["--gateway", "10.0.0.1"], "every ip-range or gateway must have a corresponding subnet"),
        (["--subnet", "10.0.0.0/8", "--subnet", "10.1.0.0/16"], "multiple overlapping subnet configuration is not supported"),
        (["--subnet", "bogus", "--gateway", "10.0.0.1"], "invalid subnet: invalid CIDR address: bogus"),
        (["--subnet", "10.0.0.0/16", "--gateway", "10.0.0.1/bad"], "invalid CIDR address: 10.0.0.1/bad"),
        (["--subnet", "10.0.0.0/16", "--subnet", "10.1.0.0/16", "--gateway", "10.0.0.1", "--gateway", "10.0.0.2"],
         "cannot configure multiple gateways (10.0.0.2, 10.0.0.1) for the same subnet (10.0.0.0/16)"),
    ],
)
def test_create_ipam_errors(daemon: FakeDaemon, args: list[str], message: str) -> None:
    result = run(daemon, "network", "create", *args, "n")
    assert result.exit_code == 1
    assert result.stderr == message + "\n"
    assert result.stdout == ""
    assert daemon.requests == []  # validated before any request, like docker


def test_create_label_validation(daemon: FakeDaemon) -> None:
    result = run(daemon, "network", "create", "--label", "bad label", "n")
    assert result.exit_code == 2
    assert "label 'bad label' contains whitespaces" in result.stderr


def test_create_daemon_conflict(daemon: FakeDaemon) -> None:
    result = run(daemon, "network", "create", "bridge")
    assert result.exit_code == 1
    assert result.stderr == "Error response from daemon: network with name bridge already exists\n"


# --- ls ----------------------------------------------------------------------------------


def test_ls_default_table_sorted_naturally(daemon: FakeDaemon) -> None:
    result = run(daemon, "network", "ls")
    assert result.exit_code == 0
    assert result.stdout == (
        "NETWORK ID     NAME      DRIVER    SCOPE\n"
        "7d86d31b1478   bridge    bridge    local\n"
        "bbbbbbbbbbbb   net9      null      local\n"
        "aa86d31b1478   net10     bridge    local\n"
    )
    assert daemon.requests[0].url.query == b""


def test_ls_quiet_notrunc_and_alias(daemon: FakeDaemon) -> None:
    assert run(daemon, "network", "list", "-q").stdout == "7d86d31b1478\nbbbbbbbbbbbb\naa86d31b1478\n"
    assert run(daemon, "network", "ls", "-q", "--no-trunc").stdout.splitlines()[0] == ID_A
    assert run(daemon, "network", "ls", "-q", "--format", "{{.Name}}").stdout == "bridge\nnet9\nnet10\n"


def test_ls_formats(daemon: FakeDaemon) -> None:
    out = run(daemon, "network", "ls", "--format", "table {{.Name}}\\t{{.Labels}}\\t{{.IPv6}}").stdout
    assert out == "NAME      LABELS     IPV6\nbridge               false\nnet9                 false\nnet10     env=prod   false\n"
    out = run(daemon, "network", "ls", "--format", "json").stdout.splitlines()
    assert json.loads(out[0])["Name"] == "bridge" and len(out) == 3
    out = run(daemon, "network", "ls", "--format", "raw").stdout
    assert out.startswith("network_id: 7d86d31b1478\nname: bridge\ndriver: bridge\nscope: local\n\n")


def test_ls_filters_are_sent_like_the_go_cli(daemon: FakeDaemon) -> None:
    run(daemon, "network", "ls", "-f", "name=y", "-f", "driver=bridge", "--filter", " Name = x ")
    query = parse_qs(urlsplit(str(daemon.requests[0].url)).query)
    assert query["filters"] == ['{"driver":{"bridge":true},"name":{"x":true,"y":true}}']


def test_ls_bad_filter_and_bad_template(daemon: FakeDaemon) -> None:
    result = run(daemon, "network", "ls", "-f", "bogus")
    assert result.exit_code == 2 and "bad format of filter (expected name=value)" in result.stderr
    result = run(daemon, "network", "ls", "--format", "{{.Foo}}")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (
        'template parsing error: template: :1:2: executing "" at <.Foo>: '
        "can't evaluate field Foo in type *network.networkContext\n"
    )


# --- inspect -------------------------------------------------------------------------------


def test_inspect_indents_raw_json(daemon: FakeDaemon) -> None:
    result = run(daemon, "network", "inspect", "bridge")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [daemon.networks[1]]
    assert result.stdout.startswith('[\n    {\n        "Name": "bridge",\n        "Id": "7d86')
    assert '"Options": null,' in result.stdout and '"Containers": {},' in result.stdout


def test_inspect_missing_prints_found_then_errors(daemon: FakeDaemon) -> None:
    result = run(daemon, "network", "inspect", "bridge", "nope", "net9")
    assert result.exit_code == 1
    assert [n["Name"] for n in json.loads(result.stdout)] == ["bridge", "net9"]
    assert result.stderr == "Error response from daemon: network nope not found\n"
    result = run(daemon, "network", "inspect", "nope")
    assert (result.exit_code, result.stdout) == (1, "[]\n")


def test_inspect_templates(daemon: FakeDaemon) -> None:
    result = run(daemon, "network", "inspect", "-f", "{{.Name}} {{.Id}} {{json .Labels}}", "net10", "bridge")
    assert result.stdout == f"net10 {ID_B} {{\"env\":\"prod\"}}\nbridge {ID_A} {{}}\n"
    result = run(daemon, "network", "inspect", "--format", "{{.Created}}|{{.IPAM.Config}}", "bridge")
    assert result.stdout == "2024-05-01 10:00:00.5 +0000 UTC|[{172.18.0.0/16  172.18.0.1 map[]}]\n"
    result = run(daemon, "network", "inspect", "--format", "json", "bridge")
    assert result.stdout == json.dumps([daemon.networks[1]], separators=(",", ":")) + "\n"


def test_inspect_template_errors(daemon: FakeDaemon) -> None:
    result = run(daemon, "network", "inspect", "-f", "{{.Nope", "bridge")
    assert (result.exit_code, result.stdout) == (64, "")
    assert result.stderr == "template parsing error: template: :1: unclosed action\n"
    assert daemon.requests == []
    result = run(daemon, "network", "inspect", "-f", "{{.Foo}}", "bridge", "missing")
    assert (result.exit_code, result.stdout) == (1, "\n")
    assert result.stderr == (
        'template parsing error: template: :1:2: executing "" at <.Foo>: map has no entry for key "Foo"\n'
        "Error response from daemon: network missing not found\n"
    )


# --- rm / prune / connect ----------------------------------------------------------------------


def test_rm_reports_each(daemon: FakeDaemon) -> None:
    result = run(daemon, "network", "rm", "net9", "bridge", "missing", "net10")
    assert result.exit_code == 1
    assert result.stdout == "net9\nnet10\n"
    assert result.stderr == (
        "Error response from daemon: bridge is a pre-defined network and cannot be removed\n"
        "Error response from daemon: network missing not found\n"
    )
    assert [r.method for r in daemon.requests] == ["DELETE"] * 4


def test_rm_force_ignores_missing(daemon: FakeDaemon) -> None:
    result = run(daemon, "network", "remove", "-f", "missing", "net9")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "net9\n", "")


def test_prune_prompts(daemon: FakeDaemon) -> None:
    prompt = (
        "WARNING! This will remove all custom networks not used by at least one container.\n"
        "Are you sure you want to continue? [y/N] "
    )
    result = run(daemon, "network", "prune", stdin="n\n")
    assert (result.exit_code, result.stdout, daemon.requests) == (0, prompt, [])
    result = run(daemon, "network", "prune", stdin="y\n")
    assert result.stdout == prompt + "Deleted Networks:\nn1\nn2\n\n"
    result = run(daemon, "network", "prune", "-f", "--filter", "until=24h", "--filter", "label=a=b")
    assert result.stdout == "Deleted Networks:\nn1\nn2\n\n"
    query = parse_qs(urlsplit(str(daemon.requests[-1].url)).query)
    assert query["filters"] == ['{"label":{"a=b":true},"until":{"24h":true}}']


def test_connect_and_disconnect_bodies(daemon: FakeDaemon) -> None:
    args = ["--ip", "10.0.0.5", "--alias", "a,b", "--driver-opt", "x=y", "--link", "c:d", "--gw-priority", "5"]
    assert run(daemon, "network", "connect", *args, "net9", "c1").exit_code == 0
    body = daemon.bodies()[-1]
    assert daemon.requests[-1].url.path == "/networks/net9/connect"
    assert body["Container"] == "c1"
    assert body["EndpointConfig"]["IPAMConfig"] == {"IPv4Address": "10.0.0.5"}
    assert (body["EndpointConfig"]["Aliases"], body["EndpointConfig"]["Links"]) == (["a", "b"], ["c:d"])
    assert (body["EndpointConfig"]["DriverOpts"], body["EndpointConfig"]["GwPriority"]) == ({"x": "y"}, 5)
    assert run(daemon, "network", "disconnect", "-f", "net9", "c1").exit_code == 0
    assert daemon.bodies()[-1] == {"Container": "c1", "Force": True}


def test_build_ipam_errors_are_cli_errors() -> None:
    with pytest.raises(CliError, match="no matching subnet for gateway 10.1.2.3"):
        build_ipam_config(["10.0.0.0/16"], [], ["10.1.2.3"], {})
