"""The embedded DNS server on a real kernel.

The server runs in a subprocess inside a "host" namespace made for this module
(`shdns-<hex>`), with a stub upstream on 127.0.0.53:53 in that same namespace; nothing
else is reachable from there, so no query can leave the machine.  Sandboxes are
namespaces bind-mounted on files under /tmp/shdns-<hex>/ (`unshare --net=FILE`); queries
run inside them with nsenter (busybox nslookup, or dnspython for flags and TCP).  Teardown
stops the subprocess and removes exactly what was made, by path and name.
"""

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

PY = sys.executable

SERVER = r'''
import asyncio, json, os, sys, tracemalloc
import dns.message, dns.rcode, dns.rrset
from shoal.dns import DnsEntry, DnsRecords, DnsServer

def stub_reply(wire, seen):
    q = dns.message.from_wire(wire)
    name = q.question[0].name.to_text()
    seen.append(name)
    if name == "slow.example.":
        return None
    r = dns.message.make_response(q)
    if name == "ext.example.":
        r.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "192.0.2.1"))
    elif name == "fail.example.":
        r.set_rcode(dns.rcode.SERVFAIL)
    else:
        r.set_rcode(dns.rcode.NXDOMAIN)
    return r.to_wire()

class StubUdp(asyncio.DatagramProtocol):
    def __init__(self, seen): self.seen = seen
    def connection_made(self, t): self.t = t
    def datagram_received(self, data, addr):
        out = stub_reply(data, self.seen)
        if out: self.t.sendto(out, addr)

async def stub_tcp(seen, reader, writer):
    n = int.from_bytes(await reader.readexactly(2), "big")
    out = stub_reply(await reader.readexactly(n), seen)
    if out:
        writer.write(len(out).to_bytes(2, "big") + out); await writer.drain()
    writer.close()

def stats():
    rss = [l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1]
    tasks = os.listdir("/proc/self/task")
    return {"fds": len(os.listdir("/proc/self/fd")), "rss_kb": int(rss),
            "traced": tracemalloc.get_traced_memory()[0],
            "netns": sorted({os.readlink(f"/proc/self/task/{t}/ns/net") for t in tasks})}

async def main():
    tracemalloc.start()
    loop = asyncio.get_running_loop()
    seen = []
    await loop.create_datagram_endpoint(lambda: StubUdp(seen), local_addr=("127.0.0.53", 53))
    await asyncio.start_server(lambda r, w: stub_tcp(seen, r, w), "127.0.0.53", 53)
    records = DnsRecords()
    server = DnsServer(["127.0.0.53"], records, forward_timeout=1.0)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    while line := await reader.readline():
        cmd = json.loads(line)
        op = cmd.pop("op")
        try:
            out = {}
            if op == "add":
                records.add(cmd["network_id"], cmd["network_name"], DnsEntry(**cmd["entry"]))
            elif op == "remove":
                records.remove(cmd["network_id"], cmd["sandbox_id"])
            elif op == "add_sandbox":
                t0 = loop.time()
                await server.add_sandbox(cmd["id"], cmd["path"])
                out["ms"] = (loop.time() - t0) * 1000
            elif op == "remove_sandbox":
                await server.remove_sandbox(cmd["id"])
            elif op == "stats":
                out = stats()
            elif op == "seen":
                out["seen"] = list(seen)
                seen.clear()
            print(json.dumps({"ok": True, **out}), flush=True)
        except Exception as exc:
            print(json.dumps({"ok": False, "error": repr(exc)}), flush=True)
    await server.close()

asyncio.run(main())
'''

CLIENT = r'''
import json, sys
import dns.message, dns.query, dns.rcode
out = []
for name, rdtype, proto in json.loads(sys.argv[1]):
    q = dns.message.make_query(name, rdtype)
    try:
        send = dns.query.tcp if proto == "tcp" else dns.query.udp
        r = send(q, "127.0.0.11", timeout=3)
        out.append({"rcode": dns.rcode.to_text(r.rcode()), "flags": dns.flags.to_text(r.flags),
                    "answers": sorted(rd.to_text() for rrset in r.answer for rd in rrset),
                    "ttls": sorted({rrset.ttl for rrset in r.answer})})
    except Exception as exc:
        out.append({"error": type(exc).__name__})
print(json.dumps(out))
'''

WEB, CLIENT_ID, DB = "a1" * 32, "c3" * 32, "b2" * 32


def run(*argv, check=True):
    return subprocess.run(argv, capture_output=True, text=True, check=check)


class Host:
    """The server subprocess in the host namespace, driven over stdin/stdout."""

    def __init__(self, netns: str):
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{netns}", PY, "-c", SERVER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}, self.proc.stderr.read()

    def __call__(self, op, **kw):
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        assert reply.pop("ok"), reply
        return reply

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def make_sandbox(path: str, lo_up: bool = True) -> str:
    Path(path).touch()
    run("unshare", f"--net={path}", "true")
    if lo_up:
        run("nsenter", f"--net={path}", "ip", "link", "set", "lo", "up")
    return path


def drop_sandbox(path: str) -> None:
    assert "/shdns-" in path
    if os.path.exists(path):
        subprocess.run(["umount", path], capture_output=True)
        os.unlink(path)


def nslookup(path, name, *args):
    return subprocess.run(["nsenter", f"--net={path}", "busybox", "nslookup", *args, name, "127.0.0.11"],
                          capture_output=True, text=True, timeout=20)


def dig(path, *queries):
    out = run("nsenter", f"--net={path}", PY, "-c", CLIENT, json.dumps(list(queries)))
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def env():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    netns = f"shdns-{secrets.token_hex(4)}"
    tmp = tempfile.mkdtemp(prefix="shdns-")
    host = None
    try:
        run("ip", "netns", "add", netns)
        run("ip", "-n", netns, "link", "set", "lo", "up")
        a = make_sandbox(f"{tmp}/web")
        b = make_sandbox(f"{tmp}/client", lo_up=False)  # the server brings lo up
        host = Host(netns)
        host("add", network_id="n1", network_name="front",
             entry={"sandbox_id": WEB, "name": "web", "aliases": ["www"], "ipv4": "172.30.0.2", "ipv6": "fd30::2"})
        host("add", network_id="n1", network_name="front",
             entry={"sandbox_id": CLIENT_ID, "name": "client", "ipv4": "172.30.0.3"})
        host("add", network_id="n2", network_name="back",
             entry={"sandbox_id": WEB, "name": "web", "ipv4": "172.31.0.2"})
        host("add", network_id="n2", network_name="back", entry={"sandbox_id": DB, "name": "db", "ipv4": "172.31.0.3"})
        host("add_sandbox", id=WEB, path=a)
        host("add_sandbox", id=CLIENT_ID, path=b)
        yield {"host": host, "web": a, "client": b, "tmp": tmp, "netns": netns}
    finally:
        if host is not None:
            host.stop()
        for name in os.listdir(tmp):
            drop_sandbox(f"{tmp}/{name}")
        os.rmdir(tmp)
        subprocess.run(["ip", "netns", "delete", netns], capture_output=True)


def test_lo_is_up_and_127_0_0_11_listens(env):
    link = json.loads(run("nsenter", f"--net={env['client']}", "ip", "-j", "link", "show", "lo").stdout)[0]
    assert "UP" in link["flags"]
    ss = run("nsenter", f"--net={env['client']}", "ss", "-lnH", "src", "127.0.0.11").stdout
    assert "127.0.0.11:53" in ss and ss.count("\n") == 2  # one UDP, one TCP


def test_busybox_resolves_names_on_shared_networks(env):
    r = nslookup(env["client"], "web", "-type=a")
    assert r.returncode == 0 and "Address: 172.30.0.2" in r.stdout, r.stdout + r.stderr
    r = nslookup(env["web"], "db", "-type=a")
    assert "Address: 172.31.0.3" in r.stdout, r.stdout + r.stderr
    r = nslookup(env["client"], WEB[:12], "-type=a")
    assert "Address: 172.30.0.2" in r.stdout, r.stdout + r.stderr


def test_answers_flags_ttl_aaaa_ptr_and_tcp(env):
    got = dig(env["client"], ["WWW.front", "A", "udp"], ["web", "AAAA", "udp"], ["client", "AAAA", "udp"],
              ["2.0.30.172.in-addr.arpa", "PTR", "udp"], ["web", "A", "tcp"], ["ext.example", "A", "tcp"])
    www, aaaa, nodata, ptr, tcp, ext_tcp = got
    assert www["answers"] == ["172.30.0.2"] and www["ttls"] == [600] and "AA" in www["flags"].split()
    assert aaaa["answers"] == ["fd30::2"]
    assert nodata["rcode"] == "NOERROR" and nodata["answers"] == []
    assert ptr["answers"] == ["web.front."]
    assert tcp["answers"] == ["172.30.0.2"]
    assert ext_tcp["answers"] == ["192.0.2.1"]
    assert env["host"]("seen")["seen"] == ["ext.example."]  # only the unknown name went upstream


def test_unknown_names_go_to_the_stub_and_its_failure_is_servfail(env):
    host = env["host"]
    host("seen")
    ext, missing, hidden, fail = dig(env["client"], ["ext.example", "A", "udp"], ["nosuch.example", "A", "udp"],
                                     ["db", "A", "udp"], ["fail.example", "A", "udp"])
    assert ext["answers"] == ["192.0.2.1"] and "AA" not in ext["flags"].split()
    assert missing["rcode"] == "NXDOMAIN"
    assert hidden["rcode"] == "NXDOMAIN"  # db is not on a network the client shares: forwarded
    assert fail["rcode"] == "SERVFAIL"
    assert host("seen")["seen"] == ["ext.example.", "nosuch.example.", "db.", "fail.example."]
    t0 = time.monotonic()
    (slow,) = dig(env["client"], ["slow.example", "A", "udp"])
    assert slow["rcode"] == "SERVFAIL" and 0.9 < time.monotonic() - t0 < 3
    r = nslookup(env["client"], "fail.example", "-type=a")
    assert "SERVFAIL" in r.stdout + r.stderr


def test_records_follow_connect_and_disconnect(env):
    host = env["host"]
    host("remove", network_id="n1", sandbox_id=WEB)
    (gone,) = dig(env["client"], ["web", "A", "udp"])
    assert gone["rcode"] == "NXDOMAIN"  # now unknown: forwarded, and the stub does not know it
    host("add", network_id="n1", network_name="front",
         entry={"sandbox_id": WEB, "name": "web", "aliases": ["www"], "ipv4": "172.30.0.2", "ipv6": "fd30::2"})
    (back,) = dig(env["client"], ["web", "A", "udp"])
    assert back["answers"] == ["172.30.0.2"]


def test_remove_sandbox_closes_its_sockets_and_it_can_come_back(env):
    host = env["host"]
    host("remove_sandbox", id=CLIENT_ID)
    assert run("nsenter", f"--net={env['client']}", "ss", "-lnH", "src", "127.0.0.11").stdout == ""
    (udp,) = dig(env["client"], ["web", "A", "udp"])
    assert "error" in udp
    host("add_sandbox", id=CLIENT_ID, path=env["client"])
    (udp, tcp) = dig(env["client"], ["web", "A", "udp"], ["web", "A", "tcp"])
    assert udp["answers"] == tcp["answers"] == ["172.30.0.2"]


def test_many_sandboxes_are_cheap(env):
    """100 sandboxes: about 2 fds each and a few KiB of Python objects; all returned on remove."""
    host, tmp = env["host"], env["tmp"]
    paths = [make_sandbox(f"{tmp}/many{i}", lo_up=False) for i in range(100)]
    try:
        before = host("stats")
        ms = [host("add_sandbox", id=f"m{i}", path=p)["ms"] for i, p in enumerate(paths)]
        during = host("stats")
        (one,) = dig(paths[-1], ["ext.example", "A", "udp"])
        assert one["answers"] == ["192.0.2.1"]
        for i in range(100):
            host("remove_sandbox", id=f"m{i}")
        after = host("stats")
    finally:
        for p in paths:
            drop_sandbox(p)
    fds = (during["fds"] - before["fds"]) / 100
    traced = (during["traced"] - before["traced"]) / 100
    rss = (during["rss_kb"] - before["rss_kb"]) / 100
    print(f"\nper sandbox: {fds:.2f} fds, {traced / 1024:.1f} KiB traced, {rss:.1f} KiB RSS; "
          f"add_sandbox median {sorted(ms)[50]:.2f} ms")
    assert fds == 2
    ino = os.stat(f"/run/netns/{env['netns']}").st_ino
    host_ns = [f"net:[{ino}]"]
    assert before["netns"] == during["netns"] == after["netns"] == host_ns  # no thread left in a sandbox
    assert traced < 16 * 1024
    assert after["fds"] == before["fds"]
