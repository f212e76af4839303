"""docker save / docker load: Docker 25's tar, the legacy one skopeo writes, plain OCI layouts."""

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile

import pytest

from shoal.errors import InvalidParameter
from shoal.runtime.imageconfig import (
    MT_LAYER_GZIP,
    MT_LAYER_TAR,
    MT_OCI_CONFIG,
    MT_OCI_INDEX,
    MT_OCI_MANIFEST,
    ImageConfig,
    chain_ids,
    container_args,
    merge_env,
)
from shoal.runtime.images import ImageStore

SKOPEO = shutil.which("skopeo")


def layer_tar(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oci_layout(path, *, name=None):
    """An OCI image layout with a gzip and a plain layer, built with the standard library."""
    (path / "blobs" / "sha256").mkdir(parents=True)

    def blob(data):
        (path / "blobs" / "sha256" / digest(data)[7:]).write_bytes(data)
        return digest(data)

    tars = [layer_tar({"bin/sh": b"#!/bin/true\n", "etc/os": b"base\n"}), layer_tar({"app": b"app\n"})]
    stored = [gzip.compress(tars[0], mtime=0), tars[1]]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Entrypoint": ["/bin/sh"], "Cmd": ["-c", "true"], "Env": ["A=1"],
                                    "Labels": {"x": "y"}, "ExposedPorts": {"80/tcp": {}}},
                         "rootfs": {"type": "layers", "diff_ids": [digest(t) for t in tars]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
                           "config": {"mediaType": MT_OCI_CONFIG, "digest": blob(config), "size": len(config)},
                           "layers": [{"mediaType": mt, "digest": blob(b), "size": len(b)}
                                      for mt, b in zip([MT_LAYER_GZIP, MT_LAYER_TAR], stored)]}).encode()
    annotations = {"org.opencontainers.image.ref.name": "v1"}
    if name:
        annotations["io.containerd.image.name"] = name
    index = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX,
             "manifests": [{"mediaType": MT_OCI_MANIFEST, "digest": blob(manifest), "size": len(manifest),
                            "annotations": annotations}]}
    (path / "index.json").write_text(json.dumps(index))
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return [digest(t) for t in tars], digest(config)


def tar_dir(path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for child in sorted(path.iterdir()):
            tar.add(child, arcname=child.name)
    buf.seek(0)
    return buf


def files_of(store, image):
    lowers = store.lower_dirs(image)
    return {p.name for d in lowers for p in d.iterdir()}


@pytest.mark.skipif(SKOPEO is None, reason="needs skopeo")
def test_load_a_legacy_archive_written_by_skopeo(tmp_path):
    diff_ids, config_digest = oci_layout(tmp_path / "oci")
    (tmp_path / "policy.json").write_text('{"default":[{"type":"insecureAcceptAnything"}]}')
    subprocess.run([SKOPEO, "--policy", str(tmp_path / "policy.json"), "copy", f"oci:{tmp_path / 'oci'}:v1",
                    f"docker-archive:{tmp_path / 'x.tar'}:test/app:v1"], check=True, capture_output=True)
    with tarfile.open(tmp_path / "x.tar") as archive:
        names = archive.getnames()
    assert "manifest.json" in names and any(n.endswith("layer.tar") or len(n) == 64 for n in names)
    store = ImageStore(tmp_path / "root")
    with open(tmp_path / "x.tar", "rb") as f:
        assert store.load(f) == ["Loaded image: test/app:v1"]
    image = store.get("test/app:v1")
    assert image.id == config_digest and image.diff_ids == tuple(diff_ids)
    assert files_of(store, image) == {"bin", "etc", "app"}
    assert container_args(image.config, None, None) == ("/bin/sh", "-c", "true")
    with open(tmp_path / "x.tar", "rb") as f:  # again: every layer already exists
        assert store.load(f) == ["Loaded image: test/app:v1"]


def test_load_plain_oci_layout_tars(tmp_path):
    oci_layout(tmp_path / "a")
    oci_layout(tmp_path / "b", name="docker.io/library/named:v1")
    store = ImageStore(tmp_path / "root")
    (line,) = store.load(tar_dir(tmp_path / "a"))
    assert line.startswith("Loaded image ID: sha256:")
    assert store.load(tar_dir(tmp_path / "b")) == ["Loaded image: named:v1"]
    image = store.get("named:v1")
    assert [layer.media_type for layer in store.layers_of(image)] == [MT_LAYER_GZIP, MT_LAYER_TAR]
    assert image.config.labels == {"x": "y"} and image.config.exposed_ports == ("80/tcp",)


def test_save_then_load_round_trip(tmp_path):
    oci_layout(tmp_path / "oci", name="docker.io/library/app:v1")
    store = ImageStore(tmp_path / "one")
    store.load(tar_dir(tmp_path / "oci"))
    store.tag("app:v1", "app", "v2")
    image = store.get("app:v1")
    out = io.BytesIO()
    store.save(["app"], out)  # a repository: all its tags
    tar = tarfile.open(fileobj=io.BytesIO(out.getvalue()))  # noqa: SIM115 - in memory
    legacy = json.load(tar.extractfile("manifest.json"))
    assert legacy[0]["Config"] == f"blobs/sha256/{image.id[7:]}"
    assert sorted(legacy[0]["RepoTags"]) == ["app:v1", "app:v2"]
    for path, diff_id in zip(legacy[0]["Layers"], image.diff_ids):  # uncompressed, named by DiffID
        assert path == f"blobs/sha256/{diff_id[7:]}" and digest(tar.extractfile(path).read()) == diff_id
    index = json.load(tar.extractfile("index.json"))
    assert {m["annotations"]["io.containerd.image.name"] for m in index["manifests"]} == {
        "docker.io/library/app:v1", "docker.io/library/app:v2"}
    assert json.load(tar.extractfile("oci-layout")) == {"imageLayoutVersion": "1.0.0"}
    assert all(m.mtime == 0 for m in tar.getmembers())
    again = ImageStore(tmp_path / "two")
    assert sorted(again.load(io.BytesIO(out.getvalue()))) == ["Loaded image: app:v1", "Loaded image: app:v2"]
    assert again.get("app:v2").id == image.id and files_of(again, again.get("app:v2")) == {"bin", "etc", "app"}
    second = io.BytesIO()
    store.save(["app:v1"], second)
    with tarfile.open(fileobj=io.BytesIO(second.getvalue())) as saved:
        assert json.load(saved.extractfile("manifest.json"))[0]["RepoTags"] == ["app:v1"]
    if SKOPEO:  # another reader of both halves of the format
        (tmp_path / "saved.tar").write_bytes(out.getvalue())
        for transport in ("docker-archive", "oci-archive"):
            ref = f"{transport}:{tmp_path / 'saved.tar'}" + (":v1" if transport == "oci-archive" else "")
            got = subprocess.run([SKOPEO, "inspect", "--raw", ref], capture_output=True, text=True, check=False)
            assert got.returncode == 0, got.stderr


def _archive(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(data, tuple):
                info.type, info.linkname = data[1] if len(data) > 1 else tarfile.SYMTYPE, data[0]
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


@pytest.mark.parametrize("members", [
    {"manifest.json": json.dumps([{"Config": "../../../etc/hostname", "Layers": []}]).encode()},
    {"manifest.json": json.dumps([{"Config": "c", "Layers": []}]).encode(), "c": ("/etc/hostname",)},
    {"../evil": b"x"},
    {"link": ("/tmp",), "link/evil": b"x"},
    {"nothing": b"here"},
    {"hard": ("/etc/hostname", tarfile.LNKTYPE)},
    {"link": ("/etc",), "hard": ("link/hostname", tarfile.LNKTYPE)},
], ids=["config-outside", "config-symlink-out", "dotdot-member", "through-symlink", "no-manifest", "hardlink-out",
        "hardlink-via-symlink"])
def test_load_guards_every_path(tmp_path, members):
    store = ImageStore(tmp_path)
    with pytest.raises(InvalidParameter):
        store.load(_archive(members))
    assert store.list() == [] and [p.name for p in store.content.ingest.iterdir()] == []


def test_config_helpers():
    assert merge_env(("PATH=/bin", "A=1"), ("A=2", "B=3")) == ("PATH=/bin", "A=2", "B=3")
    cfg = ImageConfig(entrypoint=("/init",), cmd=("serve",))
    assert container_args(cfg, None, None) == ("/init", "serve")
    assert container_args(cfg, None, ("sh",)) == ("/init", "sh")
    assert container_args(cfg, ("/bin/sh",), None) == ("/bin/sh",)
    assert container_args(cfg, ("",), ("ls",)) == ("ls",)
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    assert chain_ids([a, b]) == [a, digest(f"{a} {b}".encode())]


def test_load_follows_a_legacy_symlinked_layer(tmp_path):
    """Docker before 25 writes a layer it already saved as a symlink to the first copy."""
    layer = layer_tar({"bin/sh": b"#!\n"})
    configs = [json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": [c]},
                           "rootfs": {"type": "layers", "diff_ids": [digest(layer)]}}).encode() for c in ("a", "b")]
    members = {"one/layer.tar": layer, "two/layer.tar": ("../one/layer.tar",),
               "a.json": configs[0], "b.json": configs[1],
               "manifest.json": json.dumps([{"Config": "a.json", "RepoTags": ["x:a"], "Layers": ["one/layer.tar"]},
                                            {"Config": "b.json", "RepoTags": ["x:b"], "Layers": ["two/layer.tar"]}]
                                           ).encode()}
    store = ImageStore(tmp_path)
    assert store.load(_archive(members)) == ["Loaded image: x:a", "Loaded image: x:b"]
    assert store.get("x:a").diff_ids == store.get("x:b").diff_ids
    assert len(list(store.content.layers.iterdir())) == 1
