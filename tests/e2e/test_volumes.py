"""Bind mounts, volumes and tmpfs through the docker CLI and the SDK, against shoald.

The messages and shapes expected below were measured on dockerd 20.10.24 (Debian's
docker.io) with the same commands: inspect's `Mounts` (a `--tmpfs` is not listed, a named
volume's Mode is "z"), a missing `-v` source made at start but a missing `--mount` source
refused, `rm -v` taking anonymous volumes only, prune at API 1.41 taking named volumes too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import needs_docker

pytestmark = needs_docker


def _mounts(d, ref: str) -> dict[str, dict]:
    return {m["Destination"]: m for m in json.loads(d.docker("inspect", "-f", "{{json .Mounts}}", ref).stdout)}


def test_named_volume_carries_data_and_survives_a_restart(box):
    assert box.docker("volume", "create", "--label", "k=v", "data1").stdout.strip() == "data1"
    box.docker("run", "--rm", "-v", "data1:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    assert box.docker("run", "--rm", "-v", "data1:/data", "busybox", "cat", "/data/f").stdout == "kept\n"
    info = json.loads(box.docker("volume", "inspect", "data1").stdout)[0]
    assert {k: info[k] for k in ("Driver", "Labels", "Name", "Options", "Scope")} == {
        "Driver": "local", "Labels": {"k": "v"}, "Name": "data1", "Options": None, "Scope": "local"}
    assert info["Mountpoint"] == str(box.root / "data" / "volumes" / "data1" / "_data")
    box.restart()
    assert "data1" in box.docker("volume", "ls", "-q").stdout.split()
    assert box.docker("run", "--rm", "-v", "data1:/data", "busybox", "cat", "/data/f").stdout == "kept\n"


def test_binds_read_only_and_missing_sources(box, tmp_path: Path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "f").write_text("hi\n")
    out = box.docker("run", "--rm", "-v", f"{host}:/h:ro", "busybox", "sh", "-c",
                     "cat /h/f; echo x > /h/new || echo refused")
    assert out.stdout == "hi\nrefused\n" and not (host / "new").exists()
    box.docker("create", "--name", "b1", "-v", f"{host}:/h:ro,Z", "--mount",
               f"type=bind,src={host},dst=/b,readonly", "busybox")
    m = _mounts(box, "b1")
    assert m["/h"] == {"Type": "bind", "Source": str(host), "Destination": "/h", "Mode": "ro,Z", "RW": False,
                       "Propagation": "rprivate"}
    assert m["/b"]["Mode"] == "" and m["/b"]["RW"] is False
    missing = tmp_path / "made" / "here"
    box.docker("run", "--rm", "-v", f"{missing}:/x", "busybox", "true")
    assert missing.is_dir()  # a -v source is made at start, as dockerd does
    p = box.docker("run", "--rm", "--mount", f"type=bind,src={tmp_path / 'nope'},dst=/x", "busybox", "true",
                   check=False)
    assert p.returncode != 0
    assert f'invalid mount config for type "bind": bind source path does not exist: {tmp_path / "nope"}' in p.stderr
    assert not (tmp_path / "nope").exists()


def test_tmpfs_mounts(box):
    out = box.docker("run", "--rm", "--tmpfs", "/t:size=1m", "--mount", "type=tmpfs,dst=/tm,tmpfs-size=1000000,"
                     "tmpfs-mode=0700", "busybox", "sh", "-c", "mount | grep -E ' /(t|tm) '").stdout
    assert "tmpfs on /t type tmpfs" in out and "size=1024k" in out
    assert "tmpfs on /tm type tmpfs" in out and "mode=700" in out
    box.docker("create", "--name", "t1", "--tmpfs", "/t", "--mount", "type=tmpfs,dst=/tm", "busybox")
    assert set(_mounts(box, "t1")) == {"/tm"}  # dockerd lists no --tmpfs in Mounts
    assert json.loads(box.docker("inspect", "-f", "{{json .HostConfig.Tmpfs}}", "t1").stdout) == {"/t": ""}


def test_image_volumes_copy_up_and_rm_v(box, busybox_tar):
    box.docker("import", "--change", 'CMD ["sh"]', "--change", "VOLUME /etc", str(busybox_tar), "volimg")
    box.docker("run", "--name", "iv", "-v", "named1:/srv", "volimg", "sh", "-c", "echo new > /etc/zz")
    m = _mounts(box, "iv")
    anon = m["/etc"]["Name"]
    assert m["/etc"]["Mode"] == "" and m["/srv"]["Mode"] == "z" and len(anon) == 64
    assert json.loads(box.docker("inspect", "-f", "{{json .Config.Volumes}}", "iv").stdout) == {"/etc": {}}
    box.docker("create", "--name", "iv2", "-v", "/anon", "volimg")  # dockerd merges the image's in
    assert json.loads(box.docker("inspect", "-f", "{{json .Config.Volumes}}", "iv2").stdout) == {
        "/anon": {}, "/etc": {}}
    assert set(_mounts(box, "iv2")) == {"/anon", "/etc"}
    box.docker("rm", "-v", "iv2")
    assert "passwd" in box.docker("run", "--rm", "-v", f"{anon}:/e", "busybox", "ls", "/e").stdout  # copied up
    out = box.docker("run", "--rm", "--volumes-from", "iv:ro", "busybox", "sh", "-c",
                     "cat /etc/zz; echo > /etc/q || echo refused").stdout
    assert out == "new\nrefused\n"
    assert box.docker("run", "--rm", "-v", "empty1:/etc:nocopy", "volimg", "ls", "/etc").stdout.split() == [
        "hostname", "hosts", "resolv.conf"]  # the network's files still go on top, as dockerd's
    p = box.docker("volume", "rm", anon, check=False)
    assert p.returncode != 0 and f"remove {anon}: volume is in use - [" in p.stderr
    box.docker("rm", "-v", "iv")
    names = box.docker("volume", "ls", "-q").stdout.split()
    assert anon not in names and "named1" in names


def test_volume_api_answers_as_dockerd(box):
    assert box.api("GET", "/volumes/nope") == (404, {"message": "get nope: no such volume"})
    assert box.api("POST", "/volumes/create", {"Name": "x1", "Driver": "foo"}) == (
        404, {"message": 'create x1: error looking up volume plugin foo: plugin "foo" not found'})
    status, body = box.api("POST", "/volumes/create", {"Name": "a"})
    assert status == 400 and "volume name is too short" in body["message"]
    assert box.api("POST", "/volumes/create", {"Name": "b1", "DriverOpts": {"foo": "x"}}) == (
        400, {"message": 'create b1: invalid option: "foo"'})
    assert box.api("POST", "/volumes/create", {"Name": "b2", "DriverOpts": {"type": "tmpfs"}}) == (
        400, {"message": 'create b2: missing required option: "device"'})
    status, body = box.api("POST", "/volumes/create", {"Name": "b3", "Labels": {"a": 1}})
    assert status == 400 and body["message"] == (
        "json: cannot unmarshal number into Go struct field VolumeCreateBody.Labels of type string")
    status, body = box.api("POST", "/volumes/create", {"Name": "tv", "DriverOpts": {
        "type": "tmpfs", "device": "tmpfs", "o": "size=1m"}})
    assert status == 201 and body["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
    assert "size=1024k" in box.docker("run", "--rm", "-v", "tv:/m", "busybox", "sh", "-c", "mount | grep ' /m '").stdout
    assert box.api("DELETE", "/volumes/tv")[0] == 204
    assert box.api("DELETE", "/volumes/tv?force=1")[0] == 204


def test_prune_follows_the_api_version(box):
    box.docker("volume", "create", "named2")
    box.docker("create", "--name", "user", "-v", "used:/u", "busybox")
    box.docker("run", "--name", "a1", "-v", "/anon", "busybox", "true")
    anon = _mounts(box, "a1")["/anon"]["Name"]
    box.docker("rm", "a1")  # without -v: the anonymous volume stays, unused
    out = box.docker("volume", "prune", "-f").stdout  # API 1.52: anonymous volumes only
    assert anon in out and "named2" not in out
    status, body = box.api("POST", "/v1.41/volumes/prune")  # dockerd 20.10: every unused volume
    assert status == 200 and body["VolumesDeleted"] == ["named2"]
    assert box.docker("volume", "ls", "-q").stdout.split() == ["used"]
    assert box.docker("volume", "ls", "-q", "--filter", "dangling=true").stdout == ""


def test_sdk_volumes(box):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=box.host)
    vol = client.volumes.create("sdkvol", labels={"k": "v"})
    out = client.containers.run("busybox", ["sh", "-c", "echo sdk > /m/f; cat /m/f"],
                                volumes={"sdkvol": {"bind": "/m", "mode": "rw"}}, remove=True)
    assert out == b"sdk\n"
    assert [v.name for v in client.volumes.list(filters={"label": "k=v"})] == ["sdkvol"]
    vol.remove()
    assert client.volumes.list() == []


def test_shoal_volume_commands(box):
    assert box.shoal("volume", "create", "--label", "x=y", "clivol").stdout == "clivol\n"
    assert box.shoal("volume", "ls").stdout == "DRIVER    VOLUME NAME\nlocal     clivol\n"
    assert box.shoal("volume", "ls", "-q", "-f", "label=x=y").stdout == "clivol\n"
    assert box.shoal("volume", "inspect", "-f", "{{.Name}} {{.Driver}}", "clivol").stdout == "clivol local\n"
    p = box.shoal("volume", "rm", "clivol", "nope", check=False)
    assert p.returncode == 1 and p.stdout == "clivol\n" and "get nope: no such volume" in p.stderr
    box.shoal("volume", "create", "gone1")
    out = box.shoal("volume", "prune", "-af").stdout
    assert out == "Deleted Volumes:\ngone1\n\nTotal reclaimed space: 0B\n"


def test_volume_subpath_stays_inside_the_volume(box):
    """dockerd 20.10 has no `volume-subpath` (its API drops the field); shoal does what
    dockerd >= 26 does, and refuses a subpath that a symlink leads out of the volume."""
    box.docker("run", "--rm", "-v", "sp:/d", "busybox", "sh", "-c", "mkdir -p /d/sub/deep; ln -s / /d/esc")
    out = box.docker("run", "--rm", "--mount", "type=volume,src=sp,dst=/x,volume-subpath=sub", "busybox", "ls", "/x")
    assert out.stdout == "deep\n"
    p = box.docker("run", "--rm", "--mount", "type=volume,src=sp,dst=/x,volume-subpath=esc", "busybox", "true",
                   check=False)
    assert p.returncode != 0 and "subpath 'esc' leads out of volume sp" in p.stderr


def test_defaults_dockerd_fills_in(box, tmp_path: Path):
    """A bind of the data root or above it is rslave, any other rprivate; `--rm` takes the
    anonymous volumes; `ps --filter volume=` matches a mount's name, source or destination."""
    (tmp_path / "plain").mkdir()
    box.docker("create", "--name", "pp", "-v", f"{box.root}:/above", "-v", f"{tmp_path / 'plain'}:/plain",
               "-v", "fv:/fv", "busybox")
    m = _mounts(box, "pp")
    assert (m["/above"]["Propagation"], m["/plain"]["Propagation"], m["/fv"]["Propagation"]) == (
        "rslave", "rprivate", "")
    host_config = json.loads(box.docker("inspect", "-f", "{{json .HostConfig}}", "pp").stdout)
    assert (host_config["VolumesFrom"], host_config["VolumeDriver"]) == (None, "")
    assert box.docker("ps", "-a", "--filter", "volume=fv", "--format", "{{.Names}}").stdout == "pp\n"
    assert box.docker("ps", "-a", "--filter", "volume=/plain", "-q").stdout.strip()
    before = box.docker("volume", "ls", "-q").stdout
    box.docker("run", "--rm", "-v", "/gone", "busybox", "true")
    assert box.docker("volume", "ls", "-q").stdout == before
