#!/usr/bin/python3 -IS
"""`shoal-cni`: a CNI plugin (spec 1.1; 0.3.0 to 1.0.0 results too) backed by shoald, so
podman, containerd/nerdctl and kubelets can put their containers on shoal's networks.

The network configuration names the shoal network and, optionally, the daemon's socket:

    {"cniVersion": "1.1.0", "name": "front", "type": "shoal-cni",
     "network": "front", "socket": "/run/shoal/shoal.sock"}

`network` defaults to the configuration's `name`. Each command is one request to shoald
(`/shoal/cni/*`, api.cni); the plugin only reads CNI's environment and stdin, merges its
result into `prevResult` when chained after other plugins, and answers in CNI's words
(error codes on stdout, exit status 1). It imports nothing of shoal's and only the
standard library, so a command costs a Python start and one local HTTP request.
`runtimeConfig` capabilities honoured: `mac`, `ips`, `portMappings` (host ports published
to the container's address as `docker run -p` does; DEL releases them).
"""

from __future__ import annotations

import json
import os
import socket
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs a few ms at each start; annotations are strings here
    from typing import Any

SUPPORTED = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
DEFAULT_SOCKET = "/run/shoal/shoal.sock"
# CNI's well-known error codes
INCOMPATIBLE, BAD_ENV, IO_ERROR, DECODE, INVALID_CONFIG, TRY_AGAIN, UNAVAILABLE = 1, 4, 5, 6, 7, 11, 50
CHECK_FAILED, DAEMON_ERROR = 100, 101


class CniError(Exception):
    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details


def call(sock: str, method: str, path: str, body: Any = None, *, down_code: int = TRY_AGAIN) -> Any:
    """One request to shoald; its {"message"} errors become CniErrors with its words.
    HTTP/1.1 by hand over the unix socket: http.client's imports alone cost twice what
    the rest of a command does."""
    data = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: shoal\r\nConnection: close\r\nContent-Length: {len(data)}\r\n"
    if data:
        head += "Content-Type: application/json\r\n"
    chunks = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(120)
            conn.connect(sock)
            conn.sendall(head.encode() + b"\r\n" + data)
            while chunk := conn.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        raise CniError(down_code, f"shoald is not reachable on {sock}: start it, or set \"socket\" "
                                  "in the network configuration", str(exc)) from None
    status, payload = parse_response(b"".join(chunks))
    try:
        answer = json.loads(payload) if payload else {}
    except ValueError:
        raise CniError(DAEMON_ERROR, f"shoald answered {status} with something that is not JSON") from None
    if status >= 400:
        msg = answer.get("message", "") if isinstance(answer, dict) else ""
        raise CniError(UNAVAILABLE if status == 503 else DAEMON_ERROR, msg or f"shoald answered {status}")
    return answer


def parse_response(raw: bytes) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 response read to the end (Content-Length or chunked)."""
    header, _, body = raw.partition(b"\r\n\r\n")
    lines = header.split(b"\r\n")
    try:
        status = int(lines[0].split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise CniError(DAEMON_ERROR, "shoald's answer is not HTTP") from None
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        out, rest = [], body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out.append(rest[:size])
            rest = rest[size + 2:]
        body = b"".join(out)
    elif b"content-length" in fields:
        body = body[:int(fields[b"content-length"])]
    return status, body


def env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise CniError(BAD_ENV, f"{name} is not set")
    return value


def shape(result: dict[str, Any], version: str) -> dict[str, Any]:
    """0.3.x and 0.4.0 results carry each address's family as `version`."""
    out = {"cniVersion": version, **result}
    if version.startswith("0."):
        out["ips"] = [{**ip, "version": "6" if ":" in ip["address"] else "4"} for ip in out.get("ips", [])]
    return out


def merge(prev: dict[str, Any] | None, ours: dict[str, Any]) -> dict[str, Any]:
    """Chained after other plugins: their result with ours appended (interface indices moved)."""
    if not prev:
        return ours
    out = {k: v for k, v in prev.items() if k != "cniVersion"}
    offset = len(out.get("interfaces") or [])
    out["interfaces"] = [*(out.get("interfaces") or []), *ours["interfaces"]]
    out["ips"] = [*(out.get("ips") or []), *({**ip, "interface": ip["interface"] + offset} for ip in ours["ips"])]
    out["routes"] = [*(out.get("routes") or []), *ours["routes"]]
    if ours.get("dns") and not out.get("dns"):
        out["dns"] = ours["dns"]
    return out


def run(cmd: str, conf: dict[str, Any]) -> dict[str, Any] | None:
    version = conf.get("cniVersion") or "1.1.0"
    if cmd == "VERSION":
        return {"cniVersion": version, "supportedVersions": SUPPORTED}
    if version not in SUPPORTED:
        raise CniError(INCOMPATIBLE, f"incompatible CNI version {version}", f"supported: {', '.join(SUPPORTED)}")
    network = conf.get("network") or conf.get("name")
    sock = conf.get("socket") or DEFAULT_SOCKET
    if not isinstance(network, str) or not network or not isinstance(sock, str):
        raise CniError(INVALID_CONFIG, "the network configuration needs a \"name\" (or \"network\"): the shoal network")
    runtime = conf.get("runtimeConfig") or {}
    if cmd == "ADD":
        body = {"Network": network, "ContainerID": env("CNI_CONTAINERID"), "Netns": env("CNI_NETNS"),
                "IfName": env("CNI_IFNAME")}
        if runtime.get("mac"):
            body["Mac"] = runtime["mac"]
        if runtime.get("ips"):
            body["IPs"] = runtime["ips"]
        if runtime.get("portMappings"):
            body["PortMappings"] = runtime["portMappings"]
        return shape(merge(conf.get("prevResult"), call(sock, "POST", "/shoal/cni/add", body)), version)
    if cmd == "DEL":
        call(sock, "POST", "/shoal/cni/del",
             {"Network": network, "ContainerID": env("CNI_CONTAINERID"), "IfName": env("CNI_IFNAME")})
        return None
    if cmd == "CHECK":
        return check(sock, network, conf)
    if cmd == "STATUS":  # whatever is wrong, the answer is "cannot serve ADD now"
        try:
            call(sock, "GET", f"/shoal/cni/status?network={_quote(network)}", down_code=UNAVAILABLE)
        except CniError as exc:
            raise CniError(UNAVAILABLE, exc.msg, exc.details) from None
        return None
    if cmd == "GC":
        valid = [{"ContainerID": a.get("containerID", ""), "IfName": a.get("ifname", "")}
                 for a in conf.get("cni.dev/valid-attachments") or [] if isinstance(a, dict)]
        call(sock, "POST", "/shoal/cni/gc", {"Network": network, "Valid": valid})
        return None
    raise CniError(BAD_ENV, f"unknown CNI_COMMAND {cmd!r}: ADD, DEL, CHECK, STATUS, GC or VERSION")


def check(sock: str, network: str, conf: dict[str, Any]) -> None:
    cid, netns, ifname = env("CNI_CONTAINERID"), env("CNI_NETNS"), env("CNI_IFNAME")
    prev = conf.get("prevResult")
    if not isinstance(prev, dict):
        raise CniError(INVALID_CONFIG, "CHECK needs the prevResult of ADD")
    if not any(i.get("name") == ifname and i.get("sandbox") == netns for i in prev.get("interfaces") or []):
        raise CniError(CHECK_FAILED, f"prevResult has no interface {ifname} in {netns}")
    problems = call(sock, "POST", "/shoal/cni/check", {"Network": network, "ContainerID": cid, "IfName": ifname})
    if problems.get("Problems"):
        raise CniError(CHECK_FAILED, "; ".join(problems["Problems"]))
    return None


def _quote(text: str) -> str:
    """Percent-encoding for a query value (urllib.parse would cost more than the command)."""
    return "".join(chr(b) if chr(b).isalnum() or chr(b) in "-_.~" else f"%{b:02X}" for b in text.encode())


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    cmd = os.environ.get("CNI_COMMAND", "")
    version = "1.1.0"
    try:
        raw = sys.stdin.read() if cmd else ""
        try:
            conf = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise CniError(DECODE, "the network configuration on stdin is not JSON", str(exc)) from None
        if not isinstance(conf, dict):
            raise CniError(DECODE, "the network configuration on stdin is not a JSON object")
        version = conf.get("cniVersion") or version
        if not cmd:
            raise CniError(BAD_ENV, "CNI_COMMAND is not set: shoal-cni is run by a container runtime "
                                    "(see shoal-cni --help)")
        out = run(cmd, conf)
    except CniError as exc:
        json.dump({"cniVersion": version, "code": exc.code, "msg": exc.msg, "details": exc.details}, sys.stdout)
        sys.stdout.write("\n")
        return 1
    if out is not None:
        json.dump(out, sys.stdout)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
