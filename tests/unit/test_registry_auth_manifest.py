"""X-Registry-Auth, WWW-Authenticate, the token cache, manifest types and platform choice."""

import base64
import json

import pytest

from shoal.errors import InvalidParameter, ShoalError
from shoal.registry import manifest as mf
from shoal.registry.auth import (
    Credentials,
    TokenCache,
    decode_registry_auth,
    parse_challenges,
)
from shoal.registry.errors import parse_error, pull_error


def b64url(obj, pad=True) -> str:
    text = base64.urlsafe_b64encode(json.dumps(obj).encode()).decode()
    return text if pad else text.rstrip("=")


@pytest.mark.parametrize("pad", [True, False])
def test_registry_auth_decodes(pad):
    creds = decode_registry_auth(b64url({"username": "u", "password": "p~?>", "serveraddress": "r:5000"}, pad))
    assert creds == Credentials("u", "p~?>", "r:5000") and not creds.anonymous


@pytest.mark.parametrize("header", [None, "", "  ", b64url({}), b64url(None)])
def test_registry_auth_anonymous(header):
    assert decode_registry_auth(header).anonymous


def test_registry_auth_identity_token_and_auth_field():
    assert decode_registry_auth(b64url({"identitytoken": "tok"})).identitytoken == "tok"
    pair = base64.b64encode(b"alice:s:cret").decode()
    assert decode_registry_auth(b64url({"auth": pair})) == Credentials("alice", "s:cret")
    assert decode_registry_auth(b64url({"Username": "U", "Password": "P"})) == Credentials("U", "P")


@pytest.mark.parametrize("header", ["!!!notbase64", b64url([1, 2]), b64url({"username": 5}),
                                    base64.urlsafe_b64encode(b"{not json").decode()])
def test_registry_auth_garbage(header):
    with pytest.raises(InvalidParameter, match="X-Registry-Auth"):
        decode_registry_auth(header)


def test_challenges():
    header = ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
              'scope="repository:library/alpine:pull repository:x:pull,push"')
    (bearer,) = parse_challenges([header])
    assert bearer.scheme == "bearer" and bearer.realm == "https://auth.docker.io/token"
    assert bearer.service == "registry.docker.io"
    assert bearer.scopes == ("repository:library/alpine:pull", "repository:x:pull,push")
    basic, other = parse_challenges(['Basic realm="Registry Realm"', 'Bearer realm=http://h:1/t, error="invalid_token"'])
    assert (basic.scheme, basic.realm) == ("basic", "Registry Realm")
    assert other.params == {"realm": "http://h:1/t", "error": "invalid_token"}


def test_token_cache_honours_expiry():
    now = [100.0]
    cache = TokenCache(clock=lambda: now[0])
    cache.put(("r", "s", ("a",)), "tok", 60)
    assert cache.get(("r", "s", ("a",))) == "tok" and cache.get(("r", "s", ("b",))) is None
    now[0] += 59
    assert cache.get(("r", "s", ("a",))) is None  # renewed a little before the end


def test_error_wording():
    body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"t"}}]}'
    err = parse_error(404, body, [])
    assert pull_error(err, "x", "x:t").message == "manifest for x:t not found: manifest unknown: manifest unknown"
    denied = parse_error(401, b"{}", ['Bearer realm="r",error="insufficient_scope"'])
    assert pull_error(denied, "a/b", "a/b:t").message == (
        "pull access denied for a/b, repository does not exist or may require 'docker login': "
        "denied: requested access to the resource is denied")
    hub = parse_error(401, b'{"details":"incorrect username or password"}', [])
    assert str(hub) == "unauthorized: incorrect username or password"
    assert pull_error(hub, "a", "a:t").status == 401
    many = pull_error(parse_error(429, b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}', []), "a", "a")
    assert many.message == "toomanyrequests: slow down"
    assert str(parse_error(503, b"", [])) == "received unexpected HTTP status: 503 Service Unavailable"


def manifest_body(config_type=mf.OCI_CONFIG, media_type=None) -> bytes:
    doc = {"schemaVersion": 2, "config": {"mediaType": config_type, "digest": "sha256:" + "1" * 64, "size": 2},
           "layers": [{"mediaType": mf.OCI_LAYER_GZIP, "digest": "sha256:" + "2" * 64, "size": 3}]}
    if media_type:
        doc["mediaType"] = media_type
    return json.dumps(doc).encode()


def test_media_type_detection():
    assert mf.detect_media_type("application/vnd.oci.image.manifest.v1+json; charset=utf-8", manifest_body()) == mf.OCI_MANIFEST
    assert mf.detect_media_type("application/octet-stream", manifest_body()) == mf.OCI_MANIFEST  # by shape
    assert mf.detect_media_type(None, manifest_body(media_type=mf.DOCKER_MANIFEST)) == mf.DOCKER_MANIFEST
    assert mf.detect_media_type("", b'{"manifests": []}') == mf.OCI_INDEX
    with pytest.raises(InvalidParameter, match="schema 1 support has been removed"):
        mf.detect_media_type("application/vnd.docker.distribution.manifest.v1+prettyjws", b'{"fsLayers": []}')
    with pytest.raises(InvalidParameter, match="does not match"):
        mf.detect_media_type(mf.OCI_INDEX, manifest_body(media_type=mf.OCI_MANIFEST))


def test_parse_manifest_refuses_non_images():
    m = mf.parse(manifest_body(), mf.OCI_MANIFEST)
    assert m.config.digest.endswith("1" * 64) and [x.size for x in m.layers] == [3]
    with pytest.raises(InvalidParameter, match=r'Encountered remote "application/vnd.docker.plugin.v1\+json"\(plugin\)'):
        mf.parse(manifest_body(mf.PLUGIN_CONFIG), mf.DOCKER_MANIFEST)
    with pytest.raises(InvalidParameter, match="AI models are not yet supported"):
        mf.parse(manifest_body("application/vnd.docker.ai.model.config.v0.1+json"), mf.OCI_MANIFEST)
    mf.parse(manifest_body("application/octet-stream"), mf.DOCKER_MANIFEST)  # old registries


def entry(arch, os="linux", variant=None, media=mf.OCI_MANIFEST, n=0, **ann):
    plat = {"os": os, "architecture": arch} | ({"variant": variant} if variant else {})
    return {"mediaType": media, "digest": f"sha256:{n:064x}", "size": 1, "platform": plat, "annotations": ann}


INDEX = mf.parse(json.dumps({"manifests": [
    entry("unknown", "unknown", n=9, **{"vnd.docker.reference.type": "attestation-manifest"}),
    entry("arm", variant="v6", n=1), entry("arm64", variant="v8", n=2), entry("amd64", n=3),
    entry("arm", variant="v7", n=4), entry("amd64", n=5, media="application/vnd.example.unknown"),
    entry("s390x", n=6, media=mf.OCI_INDEX)]}).encode(), mf.OCI_INDEX)


@pytest.mark.parametrize(("want", "n"), [("linux/amd64", 3), ("linux/arm64", 2), ("linux/arm64/v8", 2),
                                         ("linux/arm/v7", 4), ("linux/arm/v6", 1), ("linux/s390x", 6)])
def test_select_platform(want, n):
    assert mf.select_platform(INDEX, mf.parse_platform(want)).digest == f"sha256:{n:064x}"


def test_select_platform_misses():
    with pytest.raises(ShoalError, match="no matching manifest for linux/ppc64le in the manifest list entries"):
        mf.select_platform(INDEX, mf.parse_platform("linux/ppc64le"))
    with pytest.raises(ShoalError, match="windows/amd64"):
        mf.select_platform(INDEX, mf.Platform("windows", "amd64"))
    bare = mf.parse(json.dumps({"manifests": [{"mediaType": mf.OCI_MANIFEST, "digest": "sha256:" + "7" * 64,
                                               "size": 1}]}).encode(), mf.OCI_INDEX)
    assert mf.select_platform(bare, mf.parse_platform("linux/riscv64")).size == 1  # no platform matches all


@pytest.mark.parametrize(("text", "expected"), [
    ("linux/arm64/v8", mf.Platform("linux", "arm64", "v8")), ("linux/aarch64", mf.Platform("linux", "arm64", "v8")),
    ("linux/x86_64", mf.Platform("linux", "amd64")), ("linux/arm", mf.Platform("linux", "arm", "v7")),
    ("arm64", mf.Platform("linux", "arm64", "v8")), ("LINUX/AMD64", mf.Platform("linux", "amd64"))])
def test_parse_platform(text, expected):
    assert mf.parse_platform(text) == expected


@pytest.mark.parametrize("text", ["", "linux/", "a/b/c/d"])
def test_parse_platform_refuses(text):
    with pytest.raises(InvalidParameter):
        mf.parse_platform(text)
