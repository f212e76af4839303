"""ImageStore: import, Docker-style lookup, tags and removal (no root needed)."""

import gzip
import hashlib
import io
import json
import tarfile

import pytest

from shoal.errors import Conflict, InvalidParameter, NotFound
from shoal.runtime.images import ImageConfig, ImageStore, normalize_name


def make_tar(files: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


@pytest.fixture
def store(tmp_path):
    return ImageStore(tmp_path)


def test_import_unpacks_and_records_metadata(store, tmp_path):
    data = make_tar({"bin/busybox": b"x" * 100, "etc/passwd": b"root:x:0:0::/:/bin/sh\n"}, {"bin/sh": "busybox"})
    image = store.import_tar(data, "busybox", "latest")
    assert image.id.startswith("sha256:") and len(image.id) == 71
    assert image.repo_tags == ("busybox:latest",)
    (top,) = store.lower_dirs(image)
    assert (top / "bin/busybox").read_bytes() == b"x" * 100
    assert (top / "bin/sh").is_symlink()
    assert image.size == 100 + 22 + len("busybox")
    meta = json.loads((tmp_path / "images" / "imagedb" / f"{image.id[7:]}.json").read_text())
    assert meta["repo_tags"] == ["busybox:latest"]
    config = json.loads(store.config_bytes(image))  # dockerd's synthesised import config
    assert image.id == "sha256:" + hashlib.sha256(store.config_bytes(image)).hexdigest()
    assert config["os"] == "linux" and config["rootfs"]["type"] == "layers"
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(data).hexdigest()]
    (layer,) = store.layers_of(image)
    assert layer.blob == layer.diff_id and store.blob_path(layer.blob).read_bytes() == data  # kept uncompressed


def test_import_twice_shares_the_layer(store, tmp_path):
    """As in dockerd, every import is a new image (its config records the time), but the
    tar is one layer on disk; gzip input is stored as the uncompressed tar."""
    data = make_tar({"a": b"1"})
    (tmp_path / "x.tar.gz").write_bytes(gzip.compress(data))
    one = store.import_tar(tmp_path / "x.tar.gz", "one")
    two = store.import_tar(io.BytesIO(data), "two", "v1", config=ImageConfig(cmd=("sh",)))
    assert one.id != two.id and two.config.cmd == ("sh",)
    assert one.diff_ids == two.diff_ids and store.lower_dirs(one) == store.lower_dirs(two)
    assert len(list((tmp_path / "images" / "layers").iterdir())) == 1
    store.remove("one")
    assert store.lower_dirs(two)[0].exists()  # the other image still uses the layer
    report = store.remove("two:v1")
    assert report[-1] == {"Deleted": two.diff_ids[0]}  # the layer goes with the last image
    assert list((tmp_path / "images" / "layers").iterdir()) == []
    assert list((tmp_path / "images" / "blobs" / "sha256").iterdir()) == []


def test_lookup_like_docker(store):
    image = store.import_tar(make_tar({"a": b"1"}), "busybox")
    hexid = image.id[7:]
    for ref in ("busybox", "busybox:latest", "docker.io/library/busybox", image.id, "sha256:" + hexid[:5], hexid[:1], hexid):
        assert store.get(ref).id == image.id, ref
    with pytest.raises(NotFound, match=r"^No such image: busybox:1\.0$"):
        store.get("busybox:1.0")
    with pytest.raises(NotFound, match="No such image: alpine:latest"):
        store.get("alpine")


def test_ambiguous_prefix(store):
    ids = {store.import_tar(make_tar({"f": bytes([i % 2])})).id[7:] for i in range(40)}
    common = next(h[0] for h in ids if sum(x.startswith(h[0]) for x in ids) > 1)
    with pytest.raises(InvalidParameter, match="multiple IDs"):
        store.get(common)


def test_tag_moves_and_remove_untags_first(store, tmp_path):
    a = store.import_tar(make_tar({"a": b"1"}), "app", "v1")
    b = store.import_tar(make_tar({"b": b"2"}), "app", "v2")
    store.tag("app:v2", "app", "v1")  # the name moves to b
    assert store.get("app:v1").id == b.id
    assert store.get(a.id).repo_tags == ()
    assert store.remove("app:v1") == [{"Untagged": "app:v1"}]
    assert store.get(b.id).repo_tags == ("app:v2",)
    report = store.remove("app:v2")
    assert report == [{"Untagged": "app:v2"}, {"Deleted": b.id}, {"Deleted": b.diff_ids[0]}]
    assert not (tmp_path / "images" / "imagedb" / f"{b.id[7:]}.json").exists()
    with pytest.raises(NotFound):
        store.get(b.id)


def test_remove_refuses_in_use_and_multi_tag_by_id(store):
    image = store.import_tar(make_tar({"a": b"1"}), "x")
    store.tag("x", "y")
    with pytest.raises(Conflict, match="must be forced"):
        store.remove(image.id)
    store.untag("y")
    with pytest.raises(Conflict, match="being used"):
        store.remove("x", in_use=lambda img: img.id == image.id)
    assert {"Deleted": image.id} in store.remove("x", in_use=False)


def test_store_reloads_from_disk(store, tmp_path):
    image = store.import_tar(make_tar({"a": b"1"}), "keep", config=ImageConfig(cmd=("sh",), working_dir="/w"))
    again = ImageStore(tmp_path)
    assert again.get("keep") == image
    assert again.get("keep").config.cmd == ("sh",)


@pytest.mark.parametrize("ref", ["UPPER", "a b", "x@sha256:00", "a:b:c:d", "-bad"])
def test_bad_references(ref):
    with pytest.raises(InvalidParameter):
        normalize_name(ref)


def test_bad_tarball_is_a_400(store):
    with pytest.raises(InvalidParameter, match="invalid image tarball"):
        store.import_tar(b"not a tar" * 100, "junk")
    assert store.list() == []
    assert list(store.content.layers.iterdir()) == [] and list(store.content.blobs.iterdir()) == []


def test_store_open_clears_scratch_but_keeps_downloads(store, tmp_path):
    ingest = store.content.ingest
    download = store.ingest_path("sha256:" + "a" * 64).with_suffix(".partial")
    download.write_bytes(b"half")
    (ingest / "import-0123.partial").write_bytes(b"x")
    (ingest / "load-0123").mkdir()
    (store.content.layers / ".tmp-0123").mkdir()
    ImageStore(tmp_path)
    assert sorted(p.name for p in ingest.iterdir()) == [download.name]
    assert list(store.content.layers.iterdir()) == []
