"""Layer extraction as root: owners, setuid bits, devices, whiteouts seen through a real
overlay mount, refused escapes, many-layer mounts, and the old store's migration."""

import gzip
import hashlib
import importlib.util
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

from shoal.errors import InvalidParameter
from shoal.runtime import overlay
from shoal.runtime.imageconfig import (
    MT_LAYER_GZIP,
    MT_LAYER_TAR,
    MT_LAYER_ZSTD,
    chain_id,
)
from shoal.runtime.images import ImageStore
from shoal.runtime.lookup import find_executable

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, chown, trusted xattrs, mount)")
REPO = Path(__file__).resolve().parents[2]


def member(name, data=b"", **kw):
    info = tarfile.TarInfo(name)
    info.type = kw.pop("type", tarfile.REGTYPE)
    info.size = len(data) if info.type == tarfile.REGTYPE else 0
    info.mode = kw.pop("mode", 0o644)
    info.mtime = kw.pop("mtime", 1_600_000_000)
    for key, value in kw.items():
        setattr(info, key, value)
    return info, data


def make_tar(*members, pax=None):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if pax and info.name in pax:
                info.pax_headers = pax[info.name]
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def diff_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path):
    return ImageStore(tmp_path)


def add_blob(store, data):
    digest = store.put_blob(data)
    return store.blob_path(digest), digest


def apply(store, data, parent=None, blob=None):
    path, _ = add_blob(store, blob if blob is not None else data)
    return store.apply_layer(path, diff_of(data), parent)


def test_metadata_is_kept(store):
    data = make_tar(
        member("bin/", type=tarfile.DIRTYPE, mode=0o755),
        member("bin/su", b"su", mode=0o4755, uid=0, gid=0),
        member("bin/tool", b"t", mode=0o2711, uid=1000, gid=1001, mtime=1234),
        member("tmp/", type=tarfile.DIRTYPE, mode=0o1777),
        member("bin/again", type=tarfile.LNKTYPE, linkname="bin/tool"),
        member("bin/sh", type=tarfile.SYMTYPE, linkname="/bin/su"),
        member("dev/null", type=tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
        member("run/fifo", type=tarfile.FIFOTYPE, mode=0o600),
        member("bin/ping", b"p", mode=0o755),
        pax={"bin/ping": {"SCHILY.xattr.user.note": "hello"}},
    )
    layer = store.layer_by_diff(diff_of(data), None) or store.content.layer(apply(store, data))
    diff = layer.diff
    assert stat.S_IMODE(os.lstat(diff / "bin/su").st_mode) == 0o4755
    st = os.lstat(diff / "bin/tool")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime) == (0o2711, 1000, 1001, 1234)
    assert stat.S_IMODE(os.lstat(diff / "tmp").st_mode) == 0o1777
    assert os.lstat(diff / "bin/again").st_ino == st.st_ino
    assert os.readlink(diff / "bin/sh") == "/bin/su"
    dev = os.lstat(diff / "dev/null")
    assert stat.S_ISCHR(dev.st_mode) and os.major(dev.st_rdev) == 1 and os.minor(dev.st_rdev) == 3
    assert stat.S_ISFIFO(os.lstat(diff / "run/fifo").st_mode)
    assert os.getxattr(diff / "bin/ping", "user.note") == b"hello"
    assert find_executable([diff], "su", ("PATH=/bin",)) == "/bin/su"
    assert layer.tar_size == len(data)


def test_whiteouts_and_opaque_dirs_through_a_real_overlay(store, tmp_path):
    base = make_tar(member("a/gone", b"1"), member("a/kept", b"2"), member("d/old", b"3"),
                    member("f/sub", b"4"), member("top", b"5"))
    top = make_tar(member("a/.wh.gone"), member("d/.wh..wh..opq"), member("d/new", b"6"),
                   member(".wh.f"), member(".wh..wh.plnk"), member("f2", b"7"))
    c1 = apply(store, base)
    c2 = apply(store, top, c1)
    diff = store.content.layer(c2).diff
    wh = os.lstat(diff / "a/gone")
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    assert os.getxattr(diff / "d", "trusted.overlay.opaque") == b"y"
    assert not (diff / ".wh..wh.plnk").exists() and not (diff / "d/.wh..wh..opq").exists()
    merged = tmp_path / "m"
    overlay.mount_overlay(store.content.lower_dirs(c2), tmp_path / "u", tmp_path / "w", merged)
    try:
        assert not (merged / "a/gone").exists() and (merged / "a/kept").read_bytes() == b"2"
        assert sorted(os.listdir(merged / "d")) == ["new"]
        assert not (merged / "f").exists() and (merged / "top").exists() and (merged / "f2").exists()
    finally:
        overlay.unmount(merged)
    lowers = store.content.lower_dirs(c2)  # the merged view create checks commands against
    assert find_executable(lowers, "/a/gone") is None and find_executable(lowers, "/f/sub") is None


@pytest.mark.parametrize("members", [
    [member("../x", b"evil")],
    [member("a/../../x", b"evil")],
    [member("link", type=tarfile.SYMTYPE, linkname="/tmp"), member("link/shl-escape", b"evil")],
    [member("link", type=tarfile.SYMTYPE, linkname="../../../../../tmp"), member("link/shl-escape", b"e")],
    [member("hard", type=tarfile.LNKTYPE, linkname="/etc/passwd")],
    [member("hard", type=tarfile.LNKTYPE, linkname="../../../../etc/passwd")],
    [member("dir/", type=tarfile.DIRTYPE), member("dir/.wh.")],
    [member("dir/", type=tarfile.DIRTYPE), member("dir/.wh..")],
    [member("dir/", type=tarfile.DIRTYPE), member("dir/.wh...")],
], ids=["dotdot", "nested-dotdot", "abs-symlink", "rel-symlink", "hardlink-abs", "hardlink-out", "bare-wh",
        "wh-dot", "wh-dotdot"])
def test_escapes_are_refused_and_leave_nothing(store, members):
    data = make_tar(*members)
    with pytest.raises(InvalidParameter):
        apply(store, data)
    assert list(store.content.layers.iterdir()) == []
    assert not Path("/tmp/shl-escape").exists()


def test_a_directory_replaced_by_a_symlink_gets_no_time_outside(store, tmp_path):
    """`a/victim/` then `a -> tmp_path`: the directory times set at the end must not follow
    the symlink to the host's directory of the same name."""
    victim = tmp_path / "victim"
    victim.mkdir()
    before = victim.stat().st_mtime
    data = make_tar(member("a/", type=tarfile.DIRTYPE, mode=0o755), member("a/victim/", type=tarfile.DIRTYPE, mtime=12345),
                    member("a", type=tarfile.SYMTYPE, linkname=str(tmp_path)))
    apply(store, data)
    assert victim.stat().st_mtime == before


def test_absolute_names_are_rerooted(store):
    data = make_tar(member("/etc/hostname", b"inside"))
    diff = store.content.layer(apply(store, data)).diff
    assert (diff / "etc/hostname").read_bytes() == b"inside"


def test_a_file_replaces_rather_than_merges(store):
    data = make_tar(member("x/", type=tarfile.DIRTYPE), member("x/in", b"1"), member("x", b"file"),
                    member("y", type=tarfile.SYMTYPE, linkname="/etc"), member("y", b"plain"))
    diff = store.content.layer(apply(store, data)).diff
    assert (diff / "x").read_bytes() == b"file" and not (diff / "y").is_symlink()


def test_diff_id_mismatch_leaves_nothing(store):
    data = make_tar(member("a", b"1"))
    path, _ = add_blob(store, gzip.compress(data))
    with pytest.raises(InvalidParameter, match="layer verification failed"):
        store.apply_layer(path, diff_of(data + b"\0" * 512), None)
    assert list(store.content.layers.iterdir()) == [] and list(store.content.links.iterdir()) == []


def test_compressed_layers_and_already_exists(store):
    data = make_tar(member("z", b"zstd!"))
    for blob in (gzip.compress(data), zstandard.ZstdCompressor().compress(data)):
        chain = apply(store, data, blob=blob)
        assert chain == diff_of(data)
    assert len(list(store.content.layers.iterdir())) == 1
    progress = []
    path, _ = add_blob(store, gzip.compress(data))
    store.apply_layer(path, diff_of(data), None, lambda done, total: progress.append((done, total)))
    assert progress == []  # already exists: the blob is not read again


def _image(store, layer_tars, tag, media=MT_LAYER_GZIP):
    chains, layers, parent = [], [], None
    for data in layer_tars:
        path, digest = add_blob(store, gzip.compress(data, mtime=0))
        parent = store.apply_layer(path, diff_of(data), parent)
        layers.append((digest, media))
        chains.append(parent)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_of(d) for d in layer_tars]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "layers": [], "tag": tag}).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    return store.add_image(config, layers=layers, manifest=manifest, manifest_media_type="application/x-test",
                           repo_digest=f"docker.io/library/{tag.split(':')[0]}@{digest}", tag=tag), chains


def test_shared_base_is_stored_once_and_kept_while_used(store):
    base = make_tar(member("bin/sh", b"#!", mode=0o755))
    one, chains1 = _image(store, [base, make_tar(member("one", b"1"))], "one:latest")
    two, chains2 = _image(store, [base, make_tar(member("two", b"2"))], "two:latest")
    assert chains1[0] == chains2[0] and len(list(store.content.layers.iterdir())) == 3
    assert [layer.diff_id for layer in store.layers_of(one)] == list(one.diff_ids)
    assert store.manifest_for(one, "one")[1] == "application/x-test"
    assert store.get(one.repo_digests[0]).id == one.id
    report = store.remove("one")
    assert {"Deleted": chains1[1]} in report and {"Deleted": chains1[0]} not in report
    assert store.content.layer(chains1[0]) is not None and store.content.layer(chains1[1]) is None
    assert store.has_blob(two.layers[0][0]) and not store.has_blob(one.layers[1][0])
    store.tag("two", "again")
    untag = store.remove(two.repo_digests[0])  # by repo digest: other names remain
    assert untag == [{"Untagged": two.repo_digests[0]}]
    store.untag("two")
    store.untag("again")
    pruned = store.prune()
    assert pruned["ImagesDeleted"][0] == {"Deleted": two.id} and pruned["SpaceReclaimed"] > 0
    assert list(store.content.layers.iterdir()) == [] and list(store.content.blobs.iterdir()) == []


def test_many_layers_mount_and_too_many_are_refused(store, tmp_path):
    parent = None
    for i in range(129):
        parent = apply(store, make_tar(member(f"f{i}", str(i).encode())), parent)
        if i == 99:
            hundred = parent
    lowers = store.content.lower_dirs(hundred)
    assert len(b":".join(os.fsencode(str(p)) for p in lowers)) > overlay.PAGE  # the fsconfig path
    merged = tmp_path / "m"
    overlay.mount_overlay(lowers, tmp_path / "u", tmp_path / "w", merged)
    try:
        assert (merged / "f0").read_bytes() == b"0" and (merged / "f99").read_bytes() == b"99"
    finally:
        overlay.unmount(merged)
    with pytest.raises(InvalidParameter, match="max depth exceeded"):
        store.content.lower_dirs(parent)
    assert chain_id(None, "sha256:" + "0" * 64) == "sha256:" + "0" * 64


def _old_store_module():
    source = subprocess.run(["git", "-C", str(REPO), "show", "626566d:src/shoal/runtime/images.py"],
                            capture_output=True, text=True, check=True).stdout
    spec = importlib.util.spec_from_loader("shoal_old_images", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules["shoal_old_images"] = module  # dataclasses look their module up
    exec(compile(source, "old_images.py", "exec"), module.__dict__)  # noqa: S102 - our own older code
    return module


def test_old_single_rootfs_images_are_migrated(tmp_path):
    old = _old_store_module()
    data = make_tar(member("bin/", type=tarfile.DIRTYPE, mode=0o755), member("bin/sh", b"#!", mode=0o4755),
                    member("bin/ln", type=tarfile.LNKTYPE, linkname="bin/sh"))
    made = old.ImageStore(tmp_path).import_tar(data, "busybox", config=old.ImageConfig(cmd=("sh",), working_dir="/w"))
    store = ImageStore(tmp_path)
    image = store.get("busybox")
    assert image.id == made.id  # containers name the old id
    assert image.config.cmd == ("sh",) and image.config.working_dir == "/w"
    (top,) = store.lower_dirs(image)
    assert stat.S_IMODE(os.lstat(top / "bin/sh").st_mode) == 0o4755
    assert os.lstat(top / "bin/ln").st_ino == os.lstat(top / "bin/sh").st_ino
    assert not (tmp_path / "images" / made.id[7:]).exists()
    (layer,) = store.layers_of(image)
    assert store.has_blob(layer.blob) and layer.blob == layer.diff_id
    with tarfile.open(store.blob_path(layer.blob)) as blob:
        assert "bin/sh" in blob.getnames()
    assert ImageStore(tmp_path).get(made.id) == image  # and it stays migrated
    assert MT_LAYER_TAR == image.layers[0][1] and MT_LAYER_ZSTD


def test_rmi_of_a_repositorys_last_tag_takes_its_digests(store):
    image, _ = _image(store, [make_tar(member("f", b"1"))], "app:1")
    store.tag("app:1", "other", "2")
    (digest_ref,) = image.repo_digests
    assert store.remove("app:1") == [{"Untagged": "app:1"}, {"Untagged": digest_ref}]
    left = store.get("other:2")
    assert left.repo_digests == () and store.manifest_for(left, "app") is None
    assert not store.has_blob(image.manifests[digest_ref][0])
    assert store.remove("other:2")[:2] == [{"Untagged": "other:2"}, {"Deleted": image.id}]


def test_store_open_sets_aside_what_no_image_owns(tmp_path):
    """A crash between a pull's layer and its image record: the next open deletes the layer
    and moves its blob back to ingest (where the next pull resumes from it)."""
    store = ImageStore(tmp_path)
    data = make_tar(member("x", b"orphan"))
    path, digest = add_blob(store, gzip.compress(data))
    chain = store.apply_layer(path, diff_of(data), None)
    kept = make_tar(member("k", b"kept"))
    kept_path, kept_digest = add_blob(store, kept)
    kept_chain = store.apply_layer(kept_path, diff_of(kept), None)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [diff_of(kept)]}}).encode()
    store.add_image(config, layers=[(kept_digest, MT_LAYER_TAR)], tag="kept:1")
    reopened = ImageStore(tmp_path)
    assert reopened.content.layer(chain) is None and not reopened.has_blob(digest)
    partial = reopened.ingest_path(digest)
    assert partial.with_name(partial.name + ".partial").exists()
    assert reopened.content.layer(kept_chain) is not None and reopened.has_blob(kept_digest)
    assert reopened.get("kept:1").layers == ((kept_digest, MT_LAYER_TAR),)


def test_pinned_layers_and_blobs_survive_release_and_set_aside(store):
    """What an in-flight pull counts on ("Already exists") is not freed by another pull's
    failure, an rmi or a prune until it unpins."""
    data = make_tar(member("p", b"pinned"))
    path, digest = add_blob(store, data)
    chain = store.apply_layer(path, diff_of(data), None)
    store.pin([chain, digest])
    store.pin([chain, digest])  # two pulls
    store.set_aside(blobs=[digest], chains=[chain])
    store.unpin([chain, digest])
    store.release(blobs=[digest], chains=[chain])
    assert store.content.layer(chain) is not None and store.has_blob(digest)
    store.unpin([chain, digest])
    store.release(blobs=[digest], chains=[chain])
    assert store.content.layer(chain) is None and not store.has_blob(digest)
