"""Bearer token auth against registry 2.8 with the test token server: anonymous pulls,
login, wrong passwords, denied repositories, identity tokens, tokens dying mid-pull, and
redirects that must not carry Authorization to another host."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shoal.errors import NotFound, Unauthorized
from shoal.registry import Credentials, Registry, parse
from tests import oci_layout as ol
from tests.registry.conftest import random_file

ALICE = Credentials("alice", "secret")


def run(coro):
    return asyncio.run(coro)


async def using(fn, **kw):
    async with Registry(retry_delay=lambda attempt: 0, **kw) as reg:
        return await fn(reg)


def seed_private(reg, tmp, repo="team/app", tag="v1"):
    img = ol.build_image([[random_file("data", 200_000)]])
    ol.write_image(tmp, tag, img)
    ol.seed(reg.url, tmp, repo, tag, creds="alice:secret")
    return img


def token_gets(tokens):
    return [r for r in tokens.requests if r["method"] == "GET"]


def test_anonymous_pull(token_registry, tmp):
    reg, tokens = token_registry
    img = seed_private(reg, tmp)
    tokens.requests.clear()
    got = run(using(lambda r: r.resolve(parse(f"{reg.domain}/team/app:v1"), Credentials())))
    assert got.digest == img.manifest.digest
    (asked,) = token_gets(tokens)  # one token for HEAD and GET: cached per scope
    assert asked["user"] == "" and asked["authorization"] is None
    assert asked["scope"] == ["repository:team/app:pull"] and asked["service"] == tokens.service


def test_login(token_registry):
    reg, _ = token_registry
    assert run(using(lambda r: r.login(reg.domain, ALICE))) == "Login Succeeded"

    async def wrong(r):
        with pytest.raises(Unauthorized) as exc:
            await r.login(f"http://{reg.domain}", Credentials("alice", "nope"))
        return exc.value.message

    assert run(using(wrong)) == f'Get "http://{reg.domain}/v2/": unauthorized: incorrect username or password'


def test_wrong_password_on_pull(token_registry, tmp):
    reg, _ = token_registry
    seed_private(reg, tmp)

    async def go(r):
        with pytest.raises(Unauthorized) as exc:
            await r.resolve(parse(f"{reg.domain}/team/app:v1"), Credentials("alice", "nope"))
        return exc.value.message

    url = f"http://{reg.domain}/v2/team/app/manifests/v1"
    assert run(using(go)) == f'Head "{url}": unauthorized: incorrect username or password'


def test_denied(token_registry, tmp):
    reg, tokens = token_registry
    seed_private(reg, tmp)
    tokens.anonymous_actions = ()

    async def go(r):
        with pytest.raises(NotFound) as exc:
            await r.resolve(parse(f"{reg.domain}/team/app:v1"), Credentials())
        return exc.value.message

    assert run(using(go)).startswith(f"pull access denied for {reg.domain}/team/app, repository does not exist "
                                     "or may require 'docker login': denied: ")
    assert run(using(lambda r: r.resolve(parse(f"{reg.domain}/team/app:v1"), ALICE))).digest


def test_identity_token(token_registry, tmp):
    reg, tokens = token_registry
    img = seed_private(reg, tmp)
    tokens.anonymous_actions = ()
    tokens.refresh_tokens["idtok-1"] = "alice"
    got = run(using(lambda r: r.resolve(parse(f"{reg.domain}/team/app:v1"), Credentials(identitytoken="idtok-1"))))
    assert got.digest == img.manifest.digest
    posts = [r for r in tokens.requests if r["method"] == "POST"]
    assert posts and posts[-1]["form"]["grant_type"] == ["refresh_token"] and posts[-1]["user"] == "alice"


def test_token_expiring_mid_pull_is_renewed_once(token_registry, tmp):
    reg, tokens = token_registry
    img = seed_private(reg, tmp)
    layer = img.layers[0]
    ref = parse(f"{reg.domain}/team/app:v1")
    tokens.lifetime, tokens.expires_in = 2, 300  # the client believes 300 s, the registry gives 2
    tokens.requests.clear()

    async def go(r):
        await r.resolve(ref, ALICE)
        await asyncio.sleep(3)  # not an assertion on time: it just outlives the token
        await asyncio.gather(*(r.fetch_blob(ref, ALICE, layer.digest, len(layer.data), tmp / f"blob{i}")
                               for i in range(3)))  # three layers in parallel meet the same 401

    run(using(go))
    assert all((tmp / f"blob{i}").read_bytes() == layer.data for i in range(3))
    assert len(token_gets(tokens)) == 2  # one fresh token serves all three


def test_dead_tokens_get_one_retry(token_registry, tmp):
    reg, tokens = token_registry
    seed_private(reg, tmp)
    tokens.lifetime = -10  # every token is expired on arrival
    tokens.requests.clear()

    async def go(r):
        with pytest.raises(Unauthorized) as exc:
            await r.resolve(parse(f"{reg.domain}/team/app:v1"), ALICE)
        return exc.value.message

    assert run(using(go)).startswith("unauthorized: ")
    assert len(token_gets(tokens)) == 2  # the first token and exactly one fresh one


class _Recorder(BaseHTTPRequestHandler):
    """A fake registry that redirects blobs to a "CDN" on another port; both log headers."""

    seen: list = []  # noqa: RUF012 - reset by the one test that uses it
    cdn_port = 0
    payload = b""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.seen.append((self.server.server_address[1], self.path, self.headers.get("Authorization")))
        if self.path == "/v2/":
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="test"')
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif "/blobs/" in self.path and self.server.server_address[1] != self.cdn_port:
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{self.cdn_port}/cdn/blob?sig=1")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.payload)))
            self.end_headers()
            self.wfile.write(self.payload)


def test_redirect_does_not_leak_authorization(tmp):
    _Recorder.payload = b"layer bytes" * 1000
    _Recorder.seen = []
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Recorder) for _ in range(2)]
    front, cdn = servers
    _Recorder.cdn_port = cdn.server_address[1]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    try:
        ref = parse(f"127.0.0.1:{front.server_address[1]}/x/y:v1")
        digest = ol.sha256(_Recorder.payload)
        run(using(lambda r: r.fetch_blob(ref, ALICE, digest, len(_Recorder.payload), tmp / "blob")))
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()
    assert (tmp / "blob").read_bytes() == _Recorder.payload
    blob_hits = [(port, auth) for port, path, auth in _Recorder.seen if path != "/v2/"]
    assert blob_hits[0][0] == front.server_address[1] and blob_hits[0][1].startswith("Basic ")
    assert blob_hits[1] == (cdn.server_address[1], None)
