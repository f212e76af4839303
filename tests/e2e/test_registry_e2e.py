"""Images from a real registry through shoald, driven by the docker CLI and the SDK (issue #11).

The registry (Debian's docker-registry 2.8) listens on 127.0.0.1:5000 inside shoald's own
host namespace, seeded with skopeo from OCI layouts built here: a busybox base layer, a layer
that whites out and replaces files of the base (an opaque directory too), and a zstd layer
with a setuid file. What a container sees is what the layers say.
"""

from __future__ import annotations

import gzip
import json
import shutil
import tempfile
from pathlib import Path

import pytest

from tests import oci_layout as ol
from tests.registry_server import RegistryServer, have_registry

pytestmark = [
    pytest.mark.skipif(shutil.which("docker") is None, reason="docker CLI not installed"),
    pytest.mark.skipif(not have_registry(), reason="needs docker-registry and skopeo (scripts/setup installs them)"),
]
REPO = "test/app"


def app_image(busybox_tar: Path, extra: str = "v1") -> ol.Image:
    upper = [
        ol.directory("data"), ol.file("data/hello", f"hello from layer two {extra}\n"),
        ol.whiteout("home"),  # a directory of the base: gone from the container's view
        ol.directory("var"), ol.opaque("var"), ol.file("var/new", "new\n"),  # var/tmp of the base hidden
    ]
    top = [ol.file("usr/bin/suid", "#!/bin/sh\necho suid\n", mode=0o4755), ol.file("data/top", "top\n")]
    image = ol.build_image([[], upper, top], compression=["gzip", "gzip", "zstd"],
                           Env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "APP=one"],
                           Cmd=["cat", "/data/hello"], WorkingDir="/data", Labels={"org.test": "yes"},
                           ExposedPorts={"8080/tcp": {}})
    return _with_base(image, busybox_tar)


def _with_base(image: ol.Image, busybox_tar: Path) -> ol.Image:
    """Replace the empty first layer by the busybox rootfs (a real shell for `docker run`)."""
    raw = busybox_tar.read_bytes()
    base = ol.Blob(ol.LAYER_TYPES["gzip"], gzip.compress(raw, mtime=0))
    diff_ids = (ol.sha256(raw), *image.diff_ids[1:])
    cfg = json.loads(image.config.data)
    cfg["rootfs"]["diff_ids"] = list(diff_ids)
    config = ol.Blob(ol.OCI_CONFIG, json.dumps(cfg).encode())
    layers = (base, *image.layers[1:])
    manifest = {"schemaVersion": 2, "mediaType": ol.OCI_MANIFEST, "config": config.descriptor(),
                "layers": [b.descriptor() for b in layers]}
    return ol.Image(ol.Blob(ol.OCI_MANIFEST, json.dumps(manifest).encode()), config, layers, diff_ids)


@pytest.fixture
def reg(make_shoald, busybox_tar):
    """shoald (no images) and a registry in its namespace holding test/app:v1."""
    d = make_shoald()
    server = RegistryServer(netns=d.netns).start()
    layout = Path(tempfile.mkdtemp(prefix="sht-layout-"))
    try:
        image = app_image(busybox_tar)
        ol.write_image(layout, "v1", image)
        digest = ol.seed(server.url, layout, REPO, "v1", netns=d.netns)
        yield d, server, image, digest
    finally:
        server.stop()
        shutil.rmtree(layout, ignore_errors=True)


def test_pull_shows_progress_and_the_container_sees_the_layers(reg):
    d, server, image, digest = reg
    name = f"{server.domain}/{REPO}:v1"
    out = d.docker("pull", name).stdout
    assert "v1: Pulling from test/app" in out
    assert out.count("Pull complete") == 3
    assert f"Digest: {digest}" in out
    assert f"Status: Downloaded newer image for {name}" in out
    assert out.rstrip().endswith(name)
    assert d.docker("run", "--rm", name).stdout == "hello from layer two v1\n"
    view = d.docker("run", "--rm", name, "sh", "-c",
                    "pwd; echo $APP; ls /var; test -e /home && echo home || echo no-home; "
                    "stat -c %a /usr/bin/suid; cat /data/top").stdout.split("\n")
    assert view[:6] == ["/data", "one", "new", "no-home", "4755", "top"]
    again = d.docker("pull", name).stdout
    assert f"Status: Image is up to date for {name}" in again
    assert "Pull complete" not in again


def test_inspect_and_images_show_what_the_registry_said(reg):
    d, server, image, digest = reg
    name = f"{server.domain}/{REPO}:v1"
    d.docker("pull", "-q", name)
    info = json.loads(d.docker("image", "inspect", name).stdout)[0]
    assert info["Id"] == image.config.digest
    assert info["RepoTags"] == [name]
    assert info["RepoDigests"] == [f"{server.domain}/{REPO}@{digest}"]
    assert info["RootFS"] == {"Type": "layers", "Layers": list(image.diff_ids)}
    cfg = info["Config"]
    assert cfg["Cmd"] == ["cat", "/data/hello"] and cfg["WorkingDir"] == "/data"
    assert cfg["Labels"] == {"org.test": "yes"} and "8080/tcp" in cfg["ExposedPorts"]
    rows = d.docker("images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}").stdout
    assert f"{server.domain}/{REPO} v1 {digest}" in rows
    by_digest = f"{server.domain}/{REPO}@{digest}"
    assert json.loads(d.docker("image", "inspect", by_digest).stdout)[0]["Id"] == image.config.digest


def test_run_pulls_a_missing_image_as_the_cli_does(reg):
    d, server, _, _ = reg
    p = d.docker("run", "--rm", f"{server.domain}/{REPO}:v1", "echo", "ran")
    assert p.stdout == "ran\n"
    assert "Unable to find image" in p.stderr


def test_the_sdk_pulls(reg):
    import docker

    d, server, image, _ = reg
    client = docker.DockerClient(base_url=d.host)
    try:
        pulled = client.images.pull(f"{server.domain}/{REPO}", tag="v1")
        assert pulled.id == image.config.digest
        assert pulled.tags == [f"{server.domain}/{REPO}:v1"]
    finally:
        client.close()


def test_missing_tag_and_registry_down_are_dockerds_errors_and_leave_nothing(reg):
    d, server, _, _ = reg
    missing = d.docker("pull", f"{server.domain}/{REPO}:nope", check=False)
    assert missing.returncode == 1
    assert f"manifest for {server.domain}/{REPO}:nope not found: manifest unknown" in missing.stderr
    down = d.docker("pull", "127.0.0.1:5999/x/y:z", check=False)
    assert down.returncode == 1 and "connection refused" in down.stderr
    assert d.docker("images", "-q").stdout == ""


def test_push_to_another_repository_and_pull_it_back(reg):
    d, server, image, _ = reg
    name = f"{server.domain}/{REPO}:v1"
    d.docker("pull", "-q", name)
    other = f"{server.domain}/other/app:v2"
    d.docker("tag", name, other)
    out = d.docker("push", other).stdout
    assert f"The push refers to repository [{server.domain}/other/app]" in out
    assert "Mounted from test/app" in out or "Pushed" in out
    assert "v2: digest: sha256:" in out
    d.docker("rmi", other, name)
    assert d.docker("images", "-q").stdout == ""
    d.docker("pull", "-q", other)
    assert json.loads(d.docker("image", "inspect", other).stdout)[0]["Id"] == image.config.digest
    again = d.docker("push", other).stdout
    assert again.count("Layer already exists") == 3


def test_an_imported_image_pushes_and_pulls(reg, busybox_tar):
    d, server, _, _ = reg
    name = f"{server.domain}/imported/box:1"
    d.docker("import", "--change", 'CMD ["sh"]', str(busybox_tar), name)
    assert "1: digest: sha256:" in d.docker("push", name).stdout
    image_id = json.loads(d.docker("image", "inspect", name).stdout)[0]["Id"]
    d.docker("rmi", name)
    d.docker("pull", "-q", name)
    assert json.loads(d.docker("image", "inspect", name).stdout)[0]["Id"] == image_id
    assert d.docker("run", "--rm", name, "echo", "ok").stdout == "ok\n"


def test_save_and_load_round_trip(reg, tmp_path):
    d, server, image, _ = reg
    name = f"{server.domain}/{REPO}:v1"
    d.docker("pull", "-q", name)
    tar = tmp_path / "app.tar"
    d.docker("save", "-o", str(tar), name)
    d.docker("rmi", name)
    out = d.docker("load", "-i", str(tar)).stdout
    assert f"Loaded image: {name}" in out
    assert json.loads(d.docker("image", "inspect", name).stdout)[0]["Id"] == image.config.digest
    assert d.docker("run", "--rm", name).stdout == "hello from layer two v1\n"


def test_shoal_cli_pulls_and_pushes(reg):
    d, server, _, _ = reg
    name = f"{server.domain}/{REPO}:v1"
    out = d.shoal("pull", name).stdout
    assert "Pull complete" in out and out.rstrip().endswith(name)
    d.shoal("image", "tag", name, f"{server.domain}/cli/app:1")
    assert "1: digest: sha256:" in d.shoal("push", f"{server.domain}/cli/app:1").stdout


def _blob_file(server: RegistryServer, digest: str) -> Path:
    hexd = digest.removeprefix("sha256:")
    return server.tmp / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexd[:2] / hexd / "data"


def _store_files(d) -> dict[str, list[str]]:
    base = d.root / "data" / "images" / "images"
    return {part: sorted(p.name for p in (base / part).iterdir()) if (base / part).is_dir() else []
            for part in ("layers", "blobs/sha256", "blobs/ingest")}


def test_a_corrupt_layer_fails_the_pull_leaves_no_image_and_the_next_pull_reuses_the_rest(reg):
    d, server, image, _ = reg
    name = f"{server.domain}/{REPO}:v1"
    top = _blob_file(server, image.layers[-1].digest)
    good = top.read_bytes()
    top.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
    failed = d.docker("pull", name, check=False)
    assert failed.returncode == 1
    assert f"filesystem layer verification failed for digest {image.layers[-1].digest}" in failed.stderr
    assert d.docker("images", "-q").stdout == ""
    left = _store_files(d)
    assert left["layers"] == [] and left["blobs/sha256"] == []  # nothing no image owns
    assert all(name.endswith(".partial") for name in left["blobs/ingest"])
    top.write_bytes(good)
    again = d.docker("pull", name).stdout
    assert again.count("Pull complete") == 3
    assert again.count("Downloading") <= 2  # the two good layers came back from ingest, not the wire
    assert d.docker("run", "--rm", name).stdout == "hello from layer two v1\n"


def test_rmi_keeps_a_shared_base_and_prune_removes_dangling(reg, busybox_tar):
    d, server, image, _ = reg
    layout = Path(tempfile.mkdtemp(prefix="sht-layout-"))
    try:
        v2 = app_image(busybox_tar, extra="v2")
        ol.write_image(layout, "v2", v2)
        ol.seed(server.url, layout, REPO, "v2", netns=d.netns)
    finally:
        shutil.rmtree(layout, ignore_errors=True)
    d.docker("pull", "-q", f"{server.domain}/{REPO}:v1")
    out = d.docker("pull", f"{server.domain}/{REPO}:v2").stdout
    assert "Already exists" in out  # the busybox base is shared
    layers_before = _store_files(d)["layers"]
    d.docker("rmi", f"{server.domain}/{REPO}:v1")
    assert d.docker("run", "--rm", f"{server.domain}/{REPO}:v2").stdout == "hello from layer two v2\n"
    assert len(_store_files(d)["layers"]) < len(layers_before)
    d.docker("tag", f"{server.domain}/{REPO}:v2", "keep:1")
    d.docker("rmi", f"{server.domain}/{REPO}:v2")
    pruned = json.loads(json.dumps(d.api("POST", "/images/prune")[1]))
    assert pruned["ImagesDeleted"] is None  # keep:1 still names it
    d.docker("rmi", "keep:1")
    assert _store_files(d)["layers"] == []


@pytest.fixture
def token_reg(make_shoald):
    """shoald and, in its namespace, a registry behind a token server (alice/secret may
    push; anonymous users may pull). The token server runs in this process, its socket
    made inside shoald's namespace."""
    from shoal.kernel.sandbox import entered
    from tests.registry_server import TokenAuth
    from tests.token_server import TokenServer

    d = make_shoald()
    tokens = TokenServer(users={"alice": "secret"})
    with entered(f"/run/netns/{d.netns}"):
        tokens.start()
    server = RegistryServer(netns=d.netns)
    server.auth = TokenAuth(tokens.realm, tokens.service, tokens.issuer, tokens.write_bundle(server.tmp / "signer.pem"))
    server.start()
    try:
        yield d, server, tokens
    finally:
        server.stop()
        tokens.stop()


def test_login_push_and_pull_through_bearer_tokens(token_reg, busybox_tar):
    d, server, tokens = token_reg
    name = f"{server.domain}/alice/box:1"
    d.docker("import", str(busybox_tar), name)
    denied = d.docker("push", name, check=False)
    assert denied.returncode == 1 and "denied" in denied.stderr
    wrong = d.docker("login", "-u", "alice", "--password-stdin", server.domain, input="nope\n", check=False)
    assert wrong.returncode == 1 and "unauthorized" in wrong.stderr.lower()
    ok = d.docker("login", "-u", "alice", "--password-stdin", server.domain, input="secret\n")
    assert "Login Succeeded" in ok.stdout
    assert "1: digest: sha256:" in d.docker("push", name).stdout
    d.docker("rmi", name)
    d.docker("logout", server.domain)
    d.docker("pull", "-q", name)  # anonymous pull is allowed
    scopes = [r.get("scope") for r in tokens.requests]
    assert any("repository:alice/box:pull,push" in str(s) for s in scopes)


def test_an_index_gives_this_hosts_platform_or_the_one_asked_for(reg, busybox_tar):
    d, server, _, _ = reg
    amd = app_image(busybox_tar, extra="amd64")
    arm = ol.build_image([[ol.file("arm", "arm\n")]], arch="arm64", variant="v8", Cmd=["true"])
    index, held = ol.build_index([amd, arm])
    layout = Path(tempfile.mkdtemp(prefix="sht-layout-"))
    try:
        ol.write_layout(layout, "multi", index, held)
        pushed = ol.seed(server.url, layout, "test/multi", "multi", all=True, netns=d.netns)
    finally:
        shutil.rmtree(layout, ignore_errors=True)
    name = f"{server.domain}/test/multi:multi"
    out = d.docker("pull", name).stdout
    assert f"Digest: {pushed}" in out  # the index's digest, as dockerd reports it
    assert d.docker("run", "--rm", name).stdout == "hello from layer two amd64\n"
    d.docker("rmi", name)
    d.docker("pull", "--platform", "linux/arm64", name)
    info = json.loads(d.docker("image", "inspect", name).stdout)[0]
    assert info["Architecture"] == "arm64" and info["Id"] == arm.config.digest


def test_a_full_disk_fails_the_pull_in_dockerds_words_and_leaves_nothing(make_shoald, busybox_tar):
    """The image store on a 6 MiB tmpfs, a 10 MiB layer that cannot be compressed."""
    import os
    import subprocess

    d = make_shoald(start=False)
    images = d.root / "data" / "images"
    images.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "sht-full", str(images)], check=True)
    d.start()
    server = RegistryServer(netns=d.netns).start()
    layout = Path(tempfile.mkdtemp(prefix="sht-layout-"))
    try:
        big = ol.build_image([[ol.file("big", os.urandom(10 << 20))]], Cmd=["true"])
        ol.write_image(layout, "1", big)
        ol.seed(server.url, layout, "test/big", "1", netns=d.netns)
        p = d.docker("pull", f"{server.domain}/test/big:1", check=False)
        assert p.returncode == 1 and "no space left on device" in p.stderr
        assert d.docker("images", "-q").stdout == ""
        left = _store_files(d)
        assert left["layers"] == [] and left["blobs/sha256"] == []
    finally:
        server.stop()
        shutil.rmtree(layout, ignore_errors=True)


def test_dockerd_loads_what_shoald_saves_and_the_other_way(reg, tmp_path):
    """Docker 25's save format read by dockerd 20.10's `docker load`, and 20.10's by shoald."""
    from tests.conftest import delete_netns, new_netns
    from tests.e2e.test_docker_plugins import Dockerd

    if shutil.which("dockerd") is None:
        pytest.skip("dockerd (Debian's docker.io) not installed")
    d, server, image, _ = reg
    name = f"{server.domain}/{REPO}:v1"
    d.docker("pull", "-q", name)
    ours = tmp_path / "ours.tar"
    d.docker("save", "-o", str(ours), name)
    netns, root = new_netns("dkl"), Path(tempfile.mkdtemp(prefix="sht-dkl-"))
    (root / "plugins").mkdir()
    dockerd = Dockerd(netns, root, root / "plugins")
    try:
        dockerd.start()
        assert f"Loaded image: {name}" in dockerd.docker("load", "-i", str(ours)).stdout
        info = json.loads(dockerd.docker("image", "inspect", name).stdout)[0]
        assert info["Id"] == image.config.digest and info["RootFS"]["Layers"] == list(image.diff_ids)
        ran = dockerd.docker("run", "--rm", "--network", "none", name, "sh", "-c", "cat /data/hello; ls /var")
        assert ran.stdout == "hello from layer two v1\nnew\n"  # layers, whiteouts and opaque dirs kept
        dockerd.docker("tag", name, "from/dockerd:1")
        theirs = tmp_path / "theirs.tar"
        dockerd.docker("save", "-o", str(theirs), "from/dockerd:1")
    finally:
        dockerd.stop()
        dockerd.kill_leftovers()
        delete_netns(netns)
        subprocess_umount_below(root)
        shutil.rmtree(root, ignore_errors=True)
    d.docker("rmi", name)
    assert "Loaded image: from/dockerd:1" in d.docker("load", "-i", str(theirs)).stdout
    assert json.loads(d.docker("image", "inspect", "from/dockerd:1").stdout)[0]["Id"] == image.config.digest
    assert d.docker("run", "--rm", "from/dockerd:1").stdout == "hello from layer two v1\n"


def subprocess_umount_below(root: Path) -> None:
    from tests.e2e.conftest import unmount_below

    unmount_below(root)


def test_a_base_layer_an_import_already_holds_is_not_pulled_again(reg, busybox_tar):
    """The imported busybox (a plain tar blob) and the registry's busybox layer (gzip) are
    one layer: the pull says "Already exists", the image runs, and it pushes elsewhere."""
    d, server, image, _ = reg
    d.docker("import", str(busybox_tar), "local/box:1")
    name = f"{server.domain}/{REPO}:v1"
    out = d.docker("pull", name).stdout
    assert out.count("Already exists") == 1 and out.count("Pull complete") == 2
    assert d.docker("run", "--rm", name).stdout == "hello from layer two v1\n"
    d.docker("tag", name, f"{server.domain}/again/app:1")
    assert "1: digest: sha256:" in d.docker("push", f"{server.domain}/again/app:1").stdout
    d.docker("rmi", "local/box:1", f"{server.domain}/again/app:1", name)
    d.docker("pull", "-q", f"{server.domain}/again/app:1")
    assert d.docker("run", "--rm", f"{server.domain}/again/app:1").stdout == "hello from layer two v1\n"
