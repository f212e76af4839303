"""TLS to etcd (issue #16): Docker's `--cluster-store-opt kv.cacertfile/certfile/keyfile`
against a real etcd 3.4 that serves https only and requires client certificates
(`--client-cert-auth`), with throwaway CAs made by openssl (tests.certs).

The whole KV contract over TLS; then the failures a user makes (a CA that did not sign
etcd's certificate, a client certificate etcd does not trust, none at all, plain http to a
TLS member, https to a plain one), each a fast StoreUnavailable that names the store and
says what to check, never a bare SSLError; then shoald itself with these flags, inside a
namespace of its own with its own TLS etcd.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from shoal.store import EtcdKV, StoreUnavailable, open_kv
from shoal.store.kv import Op
from tests.certs import make_pki
from tests.conftest import delete_netns, new_netns
from tests.kvcontract import BEHAVIOURS, Harness, next_events

FAST = {"call_timeout": 2.0}  # a failing call gives up quickly (5 s by default)
LONG = {"call_timeout": 8.0}  # to see that a call fails well before its deadline


def _tuning(what: str) -> dict[str, float]:
    return FAST if what == "watch" else LONG  # a watch tries for the whole call timeout


def run(coro):
    return asyncio.run(coro)


async def _with_kv(kv, body):
    try:
        return await body(kv)
    finally:
        await kv.close()


@pytest.mark.parametrize("behaviour", BEHAVIOURS, ids=lambda b: b.__name__)
def test_behaviour_over_tls(etcd_tls, pki, behaviour):
    kv = open_kv(etcd_tls.url, pki.opts())
    assert kv.endpoints == etcd_tls.endpoints and kv.endpoints[0].startswith("https://")

    async def body(kv):
        await behaviour(Harness(kv, asyncio.sleep))

    run(_with_kv(kv, body))


def test_prefix_and_watch_over_tls(etcd_tls, pki):
    async def body(kv):
        h = Harness(kv, asyncio.sleep)
        items, rev = await kv.list(h.prefix)
        assert items == []
        it = kv.watch(h.prefix, rev + 1)
        r = await kv.put(h.k("x"), b"1")
        assert [(e.kv.key, e.kv.mod_revision) for e in await next_events(it, 1)] == [(h.k("x"), r)]
        await it.aclose()

    run(_with_kv(open_kv(etcd_tls.url + "/sht/tls", pki.opts()), body))


async def _fails(kv, what: str = "get") -> tuple[StoreUnavailable, float]:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        if what == "get":
            await kv.get("/k")
        elif what == "txn":
            await kv.txn([], [Op.put("/k", b"v")], [])  # unguarded: still not "outcome unknown"
        else:
            it = kv.watch("/", 1)
            await it.__anext__()
    except StoreUnavailable as e:
        return e, loop.time() - t0
    finally:
        await kv.close()
    raise AssertionError(f"{what} over bad TLS did not fail")


def _check_clear(err: StoreUnavailable, cluster, *words: str) -> None:
    message = err.message
    assert message.startswith(f"cluster store {cluster.url}: "), message  # names the store
    assert err.status == 503
    for w in words:
        assert w in message, message


@pytest.mark.parametrize("what", ["get", "txn", "watch"])
def test_a_ca_that_did_not_sign_etcds_certificate_fails_fast_and_says_so(etcd_tls, pki, other_pki, what):
    kv = open_kv(etcd_tls.url, {**pki.opts(), "kv.cacertfile": str(other_pki.ca)}, **_tuning(what))
    err, took = run(_fails(kv, what))
    _check_clear(err, etcd_tls, "TLS: etcd's certificate is not accepted", "kv.cacertfile must be the CA")
    if what != "watch":
        assert took < 4, took  # every member failed TLS twice: no point waiting
        assert "no member accepted TLS" in err.message and "outcome" not in err.message


@pytest.mark.parametrize("what", ["get", "txn", "watch"])
def test_a_client_certificate_etcd_does_not_trust_is_refused_clearly(etcd_tls, pki, other_pki, what):
    opts = {**pki.opts(), "kv.certfile": str(other_pki.client_cert), "kv.keyfile": str(other_pki.client_key)}
    err, took = run(_fails(open_kv(etcd_tls.url, opts, **_tuning(what)), what))
    _check_clear(err, etcd_tls, "etcd refused our client certificate", "--trusted-ca-file")
    assert "SSLError" not in err.message and "outcome" not in err.message
    if what != "watch":
        assert took < 4, took


def test_no_client_certificate_is_refused_clearly(etcd_tls, pki):
    """open_kv refuses kv.cacertfile alone at start (unit tests); a client made by hand
    without a certificate gets etcd's refusal in words."""
    context, probe = ssl.create_default_context(cafile=str(pki.ca)), ssl.create_default_context(cafile=str(pki.ca))
    probe.maximum_version = ssl.TLSVersion.TLSv1_2
    kv = EtcdKV(etcd_tls.endpoints, url=etcd_tls.url, tls=context, tls_probe=probe, **LONG)
    err, took = run(_fails(kv))
    _check_clear(err, etcd_tls, "no member accepted TLS", "etcd refused our client certificate")
    assert took < 4, took


def test_plain_http_to_a_tls_member_says_to_give_the_tls_options(etcd_tls):
    kv = open_kv(etcd_tls.url, **FAST)
    assert kv.endpoints[0].startswith("http://")
    err, _ = run(_fails(kv))
    _check_clear(err, etcd_tls, "no member answered", "then give kv.cacertfile, kv.certfile and kv.keyfile")


def test_https_to_a_plain_member_asks_whether_it_serves_https(etcd1, pki):
    err, took = run(_fails(open_kv(etcd1.url, pki.opts(), **LONG)))
    _check_clear(err, etcd1, "no member accepted TLS", "is etcd serving https here (--cert-file)?")
    assert took < 4, took


# -- shoald ------------------------------------------------------------------------------

HOST_IP = "198.18.251.1"  # inside our own namespace only


def _ns_etcd(ns: str, root: Path, pki) -> subprocess.Popen:
    url = f"https://{HOST_IP}:2379"
    peer = f"http://{HOST_IP}:2380"
    argv = ["nsenter", f"--net=/run/netns/{ns}", shutil.which("etcd") or "etcd", "--name", "m1",
            "--data-dir", str(root / "etcd"), "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", f"m1={peer}",
            "--cert-file", str(pki.server_cert), "--key-file", str(pki.server_key),
            "--trusted-ca-file", str(pki.ca), "--client-cert-auth", "--log-level", "warn"]
    with open(root / "etcd.log", "ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _flags(pki, only_ca: bool = False) -> list[str]:
    opts = {"kv.cacertfile": str(pki.ca)} if only_ca else pki.opts()
    out = ["--cluster-store", f"etcd://{HOST_IP}:2379", "--cluster-advertise", HOST_IP]
    for k, v in opts.items():
        out += ["--cluster-store-opt", f"{k}={v}"]
    return out


def test_shoald_joins_a_tls_etcd_and_info_shows_the_store(etcd_tls, pki_dir):
    """shoald in a namespace of its own (sht-tls-*) with a TLS etcd there, on an address of
    that namespace (`etcd_tls` is asked for only for its checks: root, etcd, openssl)."""
    from tests.e2e.conftest import Shoald, unmount_below

    ns = new_netns("tls-")
    root = Path(tempfile.mkdtemp(prefix="sht-tls-"))
    etcd = None
    daemons: list[Shoald] = []
    try:
        for argv in (["link", "add", "ul0", "type", "veth", "peer", "name", "ul1"],
                     ["addr", "add", f"{HOST_IP}/24", "dev", "ul0"], ["link", "set", "ul1", "up"],
                     ["link", "set", "ul0", "up"]):
            subprocess.run(["ip", "-n", ns, *argv], check=True)
        pki = make_pki(pki_dir, "shoald", [HOST_IP])  # the member's address is in its certificate
        etcd = _ns_etcd(ns, root, pki)

        # kv.cacertfile alone: Docker would talk plain http; shoald refuses to start
        (root / "bad").mkdir()
        bad = Shoald(ns, root / "bad", _flags(pki, only_ca=True))
        daemons.append(bad)
        bad.start(wait=False)
        assert bad.proc.wait(timeout=60) == 1
        log = bad.log.read_text()
        assert "kv.cacertfile without kv.certfile and kv.keyfile" in log, log

        (root / "good").mkdir()
        good = Shoald(ns, root / "good", _flags(pki))
        daemons.append(good)
        good.start()
        deadline = time.monotonic() + 30
        while True:
            status, info = good.api("GET", "/info")
            assert status == 200
            if not any("cluster store" in w for w in info.get("Warnings") or ()):
                break  # joined
            assert time.monotonic() < deadline, (info["Warnings"], good.log.read_text()[-3000:])
            time.sleep(0.2)
        assert info["ClusterStore"] == f"etcd://{HOST_IP}:2379"
        assert info["ClusterAdvertise"] == f"{HOST_IP}:2376"
        assert f"joined the cluster store etcd://{HOST_IP}:2379" in good.log.read_text()
        # a global network is allocated in etcd, over TLS
        status, made = good.api("POST", "/networks/create", {"Name": "sht-ov", "Driver": "overlay"})
        assert status == 201, made
        status, net = good.api("GET", f"/networks/{made['Id']}")
        assert status == 200 and net["Scope"] == "global" and net["IPAM"]["Config"][0]["Subnet"].startswith("10.")
        assert good.api("DELETE", f"/networks/{made['Id']}")[0] == 204
    finally:
        for d in daemons:
            d.stop()
        if etcd is not None:
            etcd.kill()
            etcd.wait(10)
        delete_netns(ns)
        unmount_below(root)
        shutil.rmtree(root, ignore_errors=True)
