"""A Docker remote plugin for tests: network driver and/or IPAM driver, over HTTP on a
unix socket (or TCP, optionally TLS), recording every call it receives.

Run as a process (`python tests/plugin_server.py --socket S --log L ...`), so shoald talks
to a real peer. Each request is appended to the log as one JSON line `{"method", "body"}`
(body: the parsed JSON, or null for an empty body) before it is answered.

Behaviour per call can be changed while it runs: `CONTROL` (a JSON file next to the log,
re-read at every request) maps a method to one of
  {"err": "text"}      answer 200 with the protocol's error field (Err / Error)
  {"status": N, "body": "..."}   answer that status and raw body
  {"garbage": true}    answer 200 with a body that is not JSON
  {"hang": SECONDS}    sleep before answering
  {"reply": {...}}     answer this JSON object instead

With --kernel the network driver does what a simple bridge plugin does, with `ip` in the
namespace it runs in (start it where shoald runs): a bridge per network holding the
gateway, a veth pair per endpoint made at Join (SrcName is the container's end), both
removed again at DeleteEndpoint / DeleteNetwork. Names: shr + the tag + ids.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socketserver
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path


class State:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.lock = threading.Lock()
        self.log = Path(args.log)
        self.control = self.log.with_name(self.log.stem + ".control.json")
        self.networks: dict[str, dict] = {}  # network id -> {"bridge", "gateway"}
        self.endpoints: dict[str, dict] = {}
        self.pools: dict[str, dict] = {}  # pool id -> {"net", "taken", "refs"}
        self.next_pool = 0
        self.state_file = self.log.with_name(self.log.stem + ".state.json")
        self.load()

    def load(self) -> None:
        """What a real plugin keeps across its restarts (its networks, pools, endpoints)."""
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return
        self.networks, self.endpoints, self.next_pool = data["networks"], data["endpoints"], data["next_pool"]
        self.pools = {k: {"net": ipaddress.ip_network(v["net"]), "refs": v["refs"],
                          "taken": {ipaddress.ip_address(a) for a in v["taken"]}} for k, v in data["pools"].items()}

    def save(self) -> None:
        pools = {k: {"net": str(v["net"]), "refs": v["refs"], "taken": sorted(map(str, v["taken"]))}
                 for k, v in self.pools.items()}
        self.state_file.write_text(json.dumps({"networks": self.networks, "endpoints": self.endpoints,
                                               "next_pool": self.next_pool, "pools": pools}))

    def record(self, method: str, body) -> None:
        with self.lock, open(self.log, "a") as f:
            f.write(json.dumps({"method": method, "body": body}) + "\n")

    def behaviour(self, method: str) -> dict:
        try:
            return json.loads(self.control.read_text()).get(method) or {}
        except (OSError, ValueError):
            return {}


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Handlers:
    """The protocols' verbs; each returns the JSON object to answer."""

    def __init__(self, st: State) -> None:
        self.st = st
        self.tag = st.args.tag

    # -- handshake --------------------------------------------------------------------
    def Plugin_Activate(self, body):
        return {"Implements": self.st.args.implements.split(",")}

    def NetworkDriver_GetCapabilities(self, body):
        return {"Scope": self.st.args.scope, "ConnectivityScope": self.st.args.scope}

    # -- network driver ---------------------------------------------------------------
    def NetworkDriver_CreateNetwork(self, body):
        nid = body["NetworkID"]
        gw = (body.get("IPv4Data") or [{}])[0].get("Gateway", "")
        bridge = f"shr{self.tag}b{nid[:8]}"
        if self.st.args.kernel:
            ip("link", "add", bridge, "type", "bridge")
            if gw:
                ip("addr", "add", gw, "dev", bridge)
            ip("link", "set", bridge, "up")
        self.st.networks[nid] = {"bridge": bridge, "gateway": gw.split("/")[0]}
        return {}

    def NetworkDriver_DeleteNetwork(self, body):
        net = self.st.networks.pop(body["NetworkID"], None)
        if net and self.st.args.kernel:
            subprocess.run(["ip", "link", "del", net["bridge"]], capture_output=True, check=False)
        return {}

    def NetworkDriver_CreateEndpoint(self, body):
        self.st.endpoints[body["EndpointID"]] = {"network": body["NetworkID"]}
        if self.st.args.choose_mac and not body["Interface"].get("MacAddress"):
            return {"Interface": {"MacAddress": "0a:58:0a:00:00:%02x" % (len(self.st.endpoints) % 256)}}
        return {}

    def NetworkDriver_Join(self, body):
        eid, nid = body["EndpointID"], body["NetworkID"]
        host, peer = f"shr{self.tag}h{eid[:8]}", f"shr{self.tag}c{eid[:8]}"
        net = self.st.networks.get(nid, {})
        if self.st.args.kernel:
            ip("link", "add", host, "type", "veth", "peer", "name", peer)
            ip("link", "set", host, "master", net["bridge"], "up")
        reply = {"InterfaceName": {"SrcName": peer, "DstPrefix": "eth"}}
        if net.get("gateway") and not self.st.args.no_gateway:
            reply["Gateway"] = net["gateway"]
        if self.st.args.static_route:
            reply["StaticRoutes"] = [{"Destination": self.st.args.static_route, "RouteType": 1}]
        self.st.endpoints.setdefault(eid, {})["veth"] = host
        return reply

    def NetworkDriver_Leave(self, body):
        return {}

    def NetworkDriver_DeleteEndpoint(self, body):
        ep = self.st.endpoints.pop(body["EndpointID"], {})
        if ep.get("veth") and self.st.args.kernel:
            subprocess.run(["ip", "link", "del", ep["veth"]], capture_output=True, check=False)
        return {}

    def NetworkDriver_EndpointOperInfo(self, body):
        return {"Value": {}}

    def NetworkDriver_ProgramExternalConnectivity(self, body):
        return {}

    def NetworkDriver_RevokeExternalConnectivity(self, body):
        return {}

    def NetworkDriver_DiscoverNew(self, body):
        return {}

    def NetworkDriver_DiscoverDelete(self, body):
        return {}

    # -- IPAM -------------------------------------------------------------------------
    def IpamDriver_GetCapabilities(self, body):
        return {"RequiresMACAddress": self.st.args.requires_mac, "RequiresRequestReplay": False}

    def IpamDriver_GetDefaultAddressSpaces(self, body):
        return {"LocalDefaultAddressSpace": "shr-local", "GlobalDefaultAddressSpace": "shr-global"}

    def IpamDriver_RequestPool(self, body):
        if body.get("V6"):
            return {"Error": "this test plugin has no IPv6 pools"}
        if body.get("Pool"):
            net = ipaddress.ip_network(body["Pool"])
        else:
            held = {str(p["net"]) for p in self.st.pools.values()}
            while True:
                net = ipaddress.ip_network(f"10.{self.st.args.pool_octet}.{self.st.next_pool}.0/24")
                self.st.next_pool += 1
                if str(net) not in held:
                    break
        pool_id = f"shr-pool-{net}"
        pool = self.st.pools.setdefault(pool_id, {"net": net, "taken": set(), "refs": 0})
        pool["refs"] += 1
        return {"PoolID": pool_id, "Pool": str(net), "Data": {}}

    def IpamDriver_ReleasePool(self, body):
        pool = self.st.pools.get(body["PoolID"])
        if pool is None:
            return {"Error": f"pool {body['PoolID']} not found"}
        pool["refs"] -= 1
        if pool["refs"] <= 0:
            del self.st.pools[body["PoolID"]]
        return {}

    def IpamDriver_RequestAddress(self, body):
        pool = self.st.pools.get(body["PoolID"])
        if pool is None:
            return {"Error": f"pool {body['PoolID']} not found"}
        net = pool["net"]
        if body.get("Address"):
            addr = ipaddress.ip_address(body["Address"])
            if addr in pool["taken"]:
                return {"Error": f"address {addr} already in use"}
        else:
            addr = next((h for h in net.hosts() if h not in pool["taken"]), None)
            if addr is None:
                return {"Error": "no address left"}
        pool["taken"].add(addr)
        return {"Address": f"{addr}/{net.prefixlen}", "Data": {}}

    def IpamDriver_ReleaseAddress(self, body):
        pool = self.st.pools.get(body["PoolID"])
        if pool is not None:
            pool["taken"].discard(ipaddress.ip_address(body["Address"]))
        return {}


def make_handler(st: State, handlers: Handlers):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def address_string(self) -> str:
            return "plugin-client"

        def do_POST(self) -> None:
            method = self.path.lstrip("/")
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.loads(raw) if raw.strip() else None
            st.record(method, body)
            how = st.behaviour(method)
            if how.get("hang"):
                time.sleep(how["hang"])
            status, out = 200, None
            if "status" in how:
                status, out = how["status"], how.get("body", "").encode()
            elif how.get("garbage"):
                out = b"<html>this is not json"
            elif "reply" in how:
                out = json.dumps(how["reply"]).encode()
            elif "err" in how:
                key = "Error" if method.startswith("IpamDriver.") else "Err"
                out = json.dumps({key: how["err"]}).encode()
            else:
                fn = getattr(handlers, method.replace(".", "_"), None)
                if fn is None:
                    status, out = 404, b"404 page not found\n"
                else:
                    with st.lock:
                        try:
                            out = json.dumps(fn(body or {})).encode()
                            st.save()
                        except Exception as exc:  # noqa: BLE001 - tell shoald, as a plugin would
                            key = "Error" if method.startswith("IpamDriver.") else "Err"
                            out = json.dumps({key: f"{type(exc).__name__}: {exc}"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.docker.plugins.v1+json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    return Handler


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--socket", default="")
    p.add_argument("--tcp", default="", help="HOST:PORT (PORT 0: any; the port is written to --port-file)")
    p.add_argument("--port-file", default="")
    p.add_argument("--tls", default="", help="CERT,KEY: serve https")
    p.add_argument("--log", required=True)
    p.add_argument("--implements", default="NetworkDriver,IpamDriver")
    p.add_argument("--scope", default="local")
    p.add_argument("--tag", default="p")
    p.add_argument("--kernel", action="store_true")
    p.add_argument("--choose-mac", action="store_true")
    p.add_argument("--no-gateway", action="store_true")
    p.add_argument("--static-route", default="")
    p.add_argument("--requires-mac", action="store_true")
    p.add_argument("--pool-octet", type=int, default=77)
    args = p.parse_args()
    st = State(args)
    handler = make_handler(st, Handlers(st))
    if args.socket:
        if os.path.exists(args.socket):
            os.unlink(args.socket)
        server = UnixServer(args.socket, handler)
    else:
        host, port = args.tcp.rsplit(":", 1)
        server = TCPServer((host, int(port)), handler)
        if args.tls:
            cert, key = args.tls.split(",")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
        if args.port_file:
            Path(args.port_file).write_text(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()


class PluginProc:
    """The plugin as a child process, for fixtures: started with `argv_prefix` (e.g. an
    nsenter into shoald's namespace), its calls read back from the log."""

    def __init__(self, workdir: Path, name: str, *, socket_dir: Path | None = None, extra: list[str] = (),
                 argv_prefix: list[str] = ()) -> None:
        import sys

        self.name = name
        self.workdir = workdir
        self.log = workdir / f"{name}.calls"
        self.control = workdir / f"{name}.control.json"
        self.socket = (socket_dir or workdir) / f"{name}.sock"
        self.argv = [*argv_prefix, sys.executable, str(Path(__file__).resolve()), "--log", str(self.log), *extra]
        if not any(a in ("--tcp",) for a in extra):
            self.argv += ["--socket", str(self.socket)]
        self.proc: subprocess.Popen | None = None

    def start(self, wait_for: Path | None = None) -> PluginProc:
        self.socket.unlink(missing_ok=True)  # a stale one would look like the new one ready
        with open(self.workdir / f"{self.name}.err", "ab") as err:
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=err)
        argv = self.argv
        target = wait_for or (Path(argv[argv.index("--port-file") + 1]) if "--port-file" in argv else self.socket)
        deadline = time.monotonic() + 10
        while not target.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"plugin {self.name} did not start: {(self.workdir / f'{self.name}.err').read_text()}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def methods(self) -> list[str]:
        return [c["method"] for c in self.calls()]

    def clear(self) -> None:
        self.log.write_text("")

    def behave(self, **methods: dict) -> None:
        """`behave(**{"NetworkDriver.Join": {"err": "no"}})`; no arguments: back to normal."""
        self.control.write_text(json.dumps(methods))
