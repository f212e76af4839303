"""The registry client against a real registry 2.8: resolve, configs, blobs, resume, faults."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from shoal.errors import NotFound, ShoalError
from shoal.registry import (
    Credentials,
    DigestMismatch,
    Registry,
    RegistryUnreachable,
    parse,
    parse_platform,
)
from shoal.registry import manifest as mf
from shoal.registry.blobs import partial_path
from tests import oci_layout as ol
from tests.registry.conftest import random_file, seeded
from tests.registry_server import free_port
from tests.tcp_proxy import TcpProxy

ANON = Credentials()


def run(coro):
    return asyncio.run(coro)


async def using(fn, **kw):
    async with Registry(retry_delay=lambda attempt: 0, **kw) as reg:
        return await fn(reg)


def two_layer_image(**config):
    return ol.build_image([[ol.directory("etc"), ol.file("etc/motd", "hello\n"), ol.file("bin/su", b"x", mode=0o4755)],
                           [ol.whiteout("etc/motd"), ol.symlink("etc/link", "/bin/su")]], Env=["A=1"], Cmd=["sh"],
                          **config)


def test_resolve_by_tag_and_by_digest(registry, tmp):
    img = two_layer_image()
    digest = seeded(registry, "x/two", "v1", img, tmp)
    assert digest == img.manifest.digest

    async def go(reg):
        by_tag = await reg.resolve(parse(f"{registry.domain}/x/two:v1"), ANON)
        by_digest = await reg.resolve(parse(f"{registry.domain}/x/two@{digest}"), ANON)
        config = await reg.fetch_config(parse(f"{registry.domain}/x/two:v1"), ANON, img.config.digest)
        return by_tag, by_digest, config

    by_tag, by_digest, config = run(using(go))
    assert by_tag == (img.manifest.data, mf.OCI_MANIFEST, digest, None)
    assert by_tag.reported_digest == digest and by_digest == by_tag
    assert json.loads(config)["config"]["Env"] == ["A=1"]


def test_schema2_manifest(registry, tmp):
    digest = seeded(registry, "x/s2", "v1", two_layer_image(), tmp, fmt="v2s2")
    got = run(using(lambda reg: reg.resolve(parse(f"{registry.domain}/x/s2:v1"), ANON)))
    assert got.media_type == mf.DOCKER_MANIFEST and got.digest == digest == mf.sha256(got.manifest)


def test_index_platform_selection(registry, tmp):
    amd = ol.build_image([[ol.file("arch", "amd64")]], arch="amd64")
    arm = ol.build_image([[ol.file("arch", "arm64")]], compression="zstd", arch="arm64", variant="v8")
    index, held = ol.build_index([amd, arm])
    ol.write_layout(tmp, "multi", index, held)
    assert ol.seed(registry.url, tmp, "x/multi", "multi", all=True) == index.digest
    ref = parse(f"{registry.domain}/x/multi:multi")

    async def go(reg):
        return (await reg.resolve(ref, ANON, parse_platform("linux/amd64")),
                await reg.resolve(ref, ANON, parse_platform("linux/arm64")),
                await reg.resolve(ref.with_digest(index.digest), ANON, parse_platform("linux/arm64/v8")))

    got_amd, got_arm, by_digest = run(using(go))
    assert got_amd == (amd.manifest.data, mf.OCI_MANIFEST, amd.manifest.digest, index.digest)
    assert got_arm.digest == arm.manifest.digest and got_arm.reported_digest == index.digest
    assert by_digest == got_arm
    assert mf.parse(got_arm.manifest, got_arm.media_type).layers[0].media_type == mf.OCI_LAYER_ZSTD


def test_missing_tag_and_repository(registry, tmp):
    seeded(registry, "x/here", "v1", two_layer_image(), tmp)

    async def go(reg, text):
        with pytest.raises(NotFound) as exc:
            await reg.resolve(parse(text), ANON)
        return exc.value.message

    d = registry.domain
    assert run(using(lambda r: go(r, f"{d}/x/here:nope"))) == \
        f"manifest for {d}/x/here:nope not found: manifest unknown: manifest unknown"
    # registry 2.8 answers MANIFEST_UNKNOWN for a repository it never saw, as dockerd then says
    assert run(using(lambda r: go(r, f"{d}/x/never"))) == \
        f"manifest for {d}/x/never:latest not found: manifest unknown: manifest unknown"
    missing = "sha256:" + "0" * 64
    assert "not found: manifest unknown" in run(using(lambda r: go(r, f"{d}/x/here@{missing}")))


def test_registry_down():
    port = free_port()

    async def go(reg):
        with pytest.raises(RegistryUnreachable) as exc:
            await reg.resolve(parse(f"127.0.0.1:{port}/x/y"), ANON)
        return exc.value

    err = run(using(go))
    assert err.status == 500  # dockerd answers 500 with Go's dial error
    assert err.message == f'Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: connect: connection refused'


def big_image(size=3 << 20):
    return ol.build_image([[random_file("blob", size)]], compression="plain")


def test_fetch_blob_and_progress(registry, tmp):
    img = big_image(1 << 20)
    seeded(registry, "x/big", "v1", img, tmp / "layout")
    layer = img.layers[0]
    seen = []

    dest = tmp / "blobs" / layer.digest.removeprefix("sha256:")
    run(using(lambda reg: reg.fetch_blob(parse(f"{registry.domain}/x/big:v1"), ANON, layer.digest,
                                         len(layer.data), dest, seen.append)))
    assert dest.read_bytes() == layer.data and not partial_path(dest).exists()
    assert seen[-1] == len(layer.data) and seen == sorted(seen)


def test_resume_after_dropped_connection(registry, tmp):
    img = big_image()
    seeded(registry, "x/resume", "v1", img, tmp / "layout")
    layer = img.layers[0]
    proxy = TcpProxy(registry.port, cut_after=1 << 20)
    notices = []
    dest = tmp / "blob"
    try:
        ref = parse(f"127.0.0.1:{proxy.port}/x/resume:v1")
        run(using(lambda reg: reg.fetch_blob(ref, ANON, layer.digest, len(layer.data), dest, None, notices.append)))
    finally:
        proxy.close()
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == layer.digest.removeprefix("sha256:")
    assert notices == [0]  # one retry, announced before its wait
    assert b"range: bytes=" in bytes(proxy.sent).lower()  # resumed, not restarted


def test_partial_kept_across_calls_and_oversized_partial_restarts(registry, tmp):
    img = big_image()
    seeded(registry, "x/keep", "v1", img, tmp / "layout")
    layer, dest = img.layers[0], tmp / "blob"
    proxy = TcpProxy(registry.port, cut_after=1 << 20)
    try:
        ref = parse(f"127.0.0.1:{proxy.port}/x/keep:v1")
        with pytest.raises(ShoalError):
            run(using(lambda reg: reg.fetch_blob(ref, ANON, layer.digest, len(layer.data), dest), attempts=1))
    finally:
        proxy.close()
    kept = partial_path(dest).stat().st_size
    assert 0 < kept < len(layer.data) and layer.data.startswith(partial_path(dest).read_bytes())
    ref = parse(f"{registry.domain}/x/keep:v1")
    run(using(lambda reg: reg.fetch_blob(ref, ANON, layer.digest, len(layer.data), dest)))
    assert dest.read_bytes() == layer.data

    dest.unlink()
    partial_path(dest).write_bytes(b"x" * (len(layer.data) + 10))
    run(using(lambda reg: reg.fetch_blob(ref, ANON, layer.digest, len(layer.data), dest)))
    assert dest.read_bytes() == layer.data


def test_digest_mismatch_removes_partial(registry, tmp):
    img = big_image(1 << 20)
    seeded(registry, "x/flip", "v1", img, tmp / "layout")
    layer, dest = img.layers[0], tmp / "blob"

    proxy = TcpProxy(registry.port, flip_after=1 << 19)  # past the ping and the headers, inside the blob
    ref = parse(f"127.0.0.1:{proxy.port}/x/flip:v1")
    try:
        with pytest.raises(DigestMismatch) as exc:
            run(using(lambda reg: reg.fetch_blob(ref, ANON, layer.digest, len(layer.data), dest)))
    finally:
        proxy.close()
    assert exc.value.message == f"filesystem layer verification failed for digest {layer.digest}"
    assert not dest.exists() and not partial_path(dest).exists()


def test_mirror_serves_docker_hub_names(registry, tmp, monkeypatch):
    """--registry-mirror: docker.io names go to the mirror first; a dead mirror hands over to
    "Docker Hub", here another local registry, so nothing leaves the machine."""
    import shoal.registry.client as client_module

    img = two_layer_image()
    digest = seeded(registry, "library/mirrored", "v1", img, tmp)
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setattr(client_module, "HUB_ENDPOINT", dead)
    got = run(using(lambda reg: reg.resolve(parse("mirrored:v1"), ANON), mirrors=[registry.url]))
    assert got.digest == digest
    monkeypatch.setattr(client_module, "HUB_ENDPOINT", registry.url)
    got = run(using(lambda reg: reg.resolve(parse("docker.io/library/mirrored:v1"), ANON), mirrors=[dead]))
    assert got.digest == digest


def test_loopback_https_without_verification(tmp):
    """127.0.0.0/8 is insecure: https is tried first, with a certificate nobody signed."""
    from tests.registry_server import RegistryServer, self_signed

    img = two_layer_image()
    tls_dir = tmp / "tls"
    tls_dir.mkdir()
    with RegistryServer(tls=self_signed(tls_dir)) as reg:
        ol.write_image(tmp / "layout", "v1", img)
        ol.seed(reg.url, tmp / "layout", "x/tls", "v1")

        async def go(r):
            got = await r.resolve(parse(f"{reg.domain}/x/tls:v1"), ANON)
            return got, (await r.pull_endpoint(parse(f"{reg.domain}/x/tls:v1"))).base

        got, base = run(using(go))
    assert got.digest == img.manifest.digest and base == f"https://{reg.domain}"
