"""Push against registry 2.8: existence checks, cross-repository mounts, monolithic and
chunked uploads, the manifest last with its digest; and the same through token auth."""

from __future__ import annotations

import asyncio

import pytest

from shoal.errors import Forbidden, ShoalError
from shoal.registry import Credentials, Registry, parse
from tests import oci_layout as ol
from tests.registry.conftest import random_file
from tests.tcp_proxy import TcpProxy

ANON = Credentials()


def run(coro):
    return asyncio.run(coro)


def write_blobs(tmp, img):
    for blob in img.blobs:
        (tmp / blob.digest.removeprefix("sha256:")).write_bytes(blob.data)


async def push_image(reg, ref, creds, img, tmp, progress=None):
    """What the lead's push does, reduced: blobs first (skipping existing ones), manifest last."""
    done = {}
    for blob in (img.config, *img.layers):
        if await reg.blob_exists(ref, creds, blob.digest):
            done[blob.digest] = "exists"
            continue
        await reg.upload_blob(ref, creds, blob.digest, len(blob.data), tmp / blob.digest.removeprefix("sha256:"),
                              progress)
        done[blob.digest] = "pushed"
    return done, await reg.put_manifest(ref, creds, img.manifest.data, img.manifest.media_type)


@pytest.mark.parametrize("chunk_size", [64 << 20, 100_000])  # monolithic PUT, then PATCH chunks
def test_push_then_pull(registry, tmp, chunk_size):
    img = ol.build_image([[random_file("a", 250_000)], [random_file("b", 1000)]])
    write_blobs(tmp, img)
    proxy = TcpProxy(registry.port)  # to see the requests on the wire
    ref = parse(f"127.0.0.1:{proxy.port}/push/mono{chunk_size}:v1")
    sent = []

    async def go():
        async with Registry(chunk_size=chunk_size) as reg:
            first = await push_image(reg, ref, ANON, img, tmp, sent.append)
            again = await push_image(reg, ref, ANON, img, tmp)
            resolved = await reg.resolve(ref, ANON)
            return first, again, resolved

    try:
        (first, digest), (again, digest2), resolved = run(go())
    finally:
        proxy.close()
    assert set(first.values()) == {"pushed"} and set(again.values()) == {"exists"}
    assert digest == digest2 == img.manifest.digest == resolved.digest
    assert resolved.manifest == img.manifest.data
    assert max(sent) == len(img.layers[0].data) and sent[-1] == len(img.layers[1].data)
    wire = bytes(proxy.sent)
    assert (b"PATCH /v2/push/" in wire) == (chunk_size < len(img.layers[0].data))
    assert wire.count(b"Content-Range: ") == (-(-len(img.layers[0].data) // chunk_size) if b"PATCH" in wire else 0)


def test_mount_and_fallback(registry, tmp):
    img = ol.build_image([[random_file("m", 5000)]])
    write_blobs(tmp, img)
    layer = img.layers[0]
    source, target = parse(f"{registry.domain}/mount/src:v1"), parse(f"{registry.domain}/mount/dst:v1")

    async def go():
        async with Registry() as reg:
            await push_image(reg, source, ANON, img, tmp)
            before = await reg.blob_exists(target, ANON, layer.digest)
            mounted = await reg.mount_blob(target, ANON, layer.digest, source.remote)
            after = await reg.blob_exists(target, ANON, layer.digest)
            missing = await reg.mount_blob(target, ANON, "sha256:" + "e" * 64, "mount/nowhere")
            return before, mounted, after, missing

    assert run(go()) == (False, True, True, False)


def test_manifest_before_blobs_is_refused(registry, tmp):
    img = ol.build_image([[random_file("z", 100)]])

    async def go():
        async with Registry() as reg:
            await reg.put_manifest(parse(f"{registry.domain}/push/early:v1"), ANON, img.manifest.data,
                                   img.manifest.media_type)

    with pytest.raises(ShoalError, match="manifest blob unknown"):
        run(go())


def test_push_with_token_auth(token_registry, tmp):
    reg_server, tokens = token_registry
    src = ol.build_image([[random_file("s", 3000)]])
    write_blobs(tmp, src)
    alice = Credentials("alice", "secret")
    source, target = parse(f"{reg_server.domain}/team/base:v1"), parse(f"{reg_server.domain}/team/app:v1")

    async def go():
        async with Registry(chunk_size=1000) as reg:
            await push_image(reg, source, alice, src, tmp)
            tokens.requests.clear()
            mounted = await reg.mount_blob(target, alice, src.layers[0].digest, source.remote)
            with pytest.raises(Forbidden, match="denied"):
                await reg.put_manifest(target, ANON, src.manifest.data, src.manifest.media_type)
            return mounted

    assert run(go()) is True
    scopes = [r["scope"] for r in tokens.requests if r["method"] == "GET"]
    assert ["repository:team/app:pull,push", "repository:team/base:pull"] in scopes
