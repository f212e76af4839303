"""`-v`, `--mount` and `--tmpfs` parsed as dockerd 20.10 parses them, with its messages
(measured on dockerd 20.10.24), and what they become in the OCI spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.errors import InvalidParameter
from shoal.runtime.spec import ContainerSpec, oci_config, spec_from_json, spec_to_json
from shoal.runtime.volumes import (
    MountPoint,
    check_volume_name,
    copy_up,
    mounts_json,
    oci_mount,
    ordered,
    parse_bind,
    parse_mount,
    parse_tmpfs,
)


def test_bind_with_modes_shows_as_dockerd():
    mp = parse_bind("/srv/data:/h:ro,Z")
    assert mp.inspect() == {"Type": "bind", "Source": "/srv/data", "Destination": "/h", "Mode": "ro,Z",
                            "RW": False, "Propagation": "rprivate"}
    assert mp.create  # a missing -v source is made as a directory at start
    assert oci_mount(mp) == {"destination": "/h", "type": "bind", "source": "/srv/data",
                             "options": ["rbind", "rprivate", "ro"]}
    assert parse_bind("/a:/b:rslave").propagation == "rslave"


def test_named_volume_shows_mode_z():
    mp = parse_bind("v1:/data")
    assert (mp.type, mp.name, mp.mode, mp.rw, mp.copy) == ("volume", "v1", "z", True, True)
    assert not parse_bind("v1:/data:nocopy").copy
    assert not parse_bind("v1:/data:ro").rw


@pytest.mark.parametrize("spec, message", [
    ("rel/path:/x", 'create rel/path: "rel/path" includes invalid characters for a local volume name, only '
                    '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'),
    ("/a:rel", "invalid volume specification: '/a:rel': invalid mount config for type \"bind\": invalid mount "
               "path: 'rel' mount path must be absolute"),
    ("v1:/x:bogus", "invalid mode: bogus"),
    ("/a:/x:ro,rw", "invalid mode: ro,rw"),
    ("/:/", "invalid volume specification: '/:/': invalid mount config for type \"bind\": invalid "
            "specification: destination can't be '/'"),
    ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
])
def test_bind_errors_are_dockerds(spec, message):
    with pytest.raises(InvalidParameter) as exc:
        parse_bind(spec)
    assert exc.value.message == message


def test_volume_names():
    check_volume_name("ab")
    with pytest.raises(InvalidParameter, match="volume name is too short, names should be at least two"):
        check_volume_name("a")
    with pytest.raises(InvalidParameter, match='"a b" includes invalid characters'):
        check_volume_name("a b")


def test_mount_types():
    bind = parse_mount({"Type": "bind", "Source": "/srv", "Target": "/b", "ReadOnly": True,
                        "BindOptions": {"Propagation": "rslave"}})
    assert bind.inspect() == {"Type": "bind", "Source": "/srv", "Destination": "/b", "Mode": "", "RW": False,
                              "Propagation": "rslave"}
    assert not bind.create  # --mount refuses a missing source instead
    vol = parse_mount({"Type": "volume", "Source": "v2", "Target": "/v2", "VolumeOptions": {"NoCopy": True}})
    assert (vol.name, vol.mode, vol.copy, vol.anonymous) == ("v2", "z", False, False)
    assert parse_mount({"Type": "volume", "Target": "/anon"}).anonymous
    tmp = parse_mount({"Type": "tmpfs", "Target": "/tm", "TmpfsOptions": {"SizeBytes": 1000000, "Mode": 0o700}})
    assert tmp.tmpfs_options == ("size=976k", "mode=700")
    assert oci_mount(tmp)["options"] == ["nosuid", "nodev", "noexec", "size=976k", "mode=700", "rw"]


@pytest.mark.parametrize("m, message", [
    ({"Type": "bind", "Target": "/x"}, 'invalid mount config for type "bind": field Source must not be empty'),
    ({"Type": "tmpfs", "Source": "a", "Target": "/x"},
     'invalid mount config for type "tmpfs": field Source must not be specified'),
    ({"Type": "foo", "Target": "/x"}, 'invalid mount config for type "foo": mount type unknown'),
    ({"Type": "volume", "Source": "v1", "Target": "/"},
     "invalid mount config for type \"volume\": invalid specification: destination can't be '/'"),
    ({"Type": "bind", "Source": "/tmp", "Target": "/x", "BindOptions": {"Propagation": "bogus"}},
     'invalid mount config for type "bind": invalid propagation mode: bogus'),
    ({"Type": "volume", "Source": "v", "Target": "/x", "VolumeOptions": {"Subpath": "../up"}},
     'invalid mount config for type "volume": subpath must be a relative path within the volume'),
])
def test_mount_errors_are_dockerds(m, message):
    with pytest.raises(InvalidParameter) as exc:
        parse_mount(m)
    assert exc.value.message == message


def test_tmpfs_flag():
    mp = parse_tmpfs("/t", "size=1m,mode=1777")
    assert mp.hidden and mounts_json(type("C", (), {"mounts": (mp.to_dict(),)})()) == []
    with pytest.raises(InvalidParameter, match="invalid mount path: 'rel' mount path must be absolute"):
        parse_tmpfs("rel", "")
    with pytest.raises(InvalidParameter, match="Unknown mount option bogus"):
        parse_tmpfs("/t", "bogus")


def test_round_trip_and_order():
    mp = parse_mount({"Type": "volume", "Source": "v2", "Target": "/a/b"})
    assert MountPoint.from_dict(mp.to_dict()) == mp
    assert [m.destination for m in ordered([mp, parse_bind("/x:/a")])] == ["/a", "/a/b"]


def test_spec_places_user_mounts_under_the_network_files(tmp_path):
    hosts = tmp_path / "hosts"
    user = ({"destination": "/etc", "type": "bind", "source": "/v", "options": ["rbind", "rprivate"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "tmpfs", "options": ["rw"]})
    spec = ContainerSpec(id="c" * 64, args=("sh",), hosts=hosts, mounts=user)
    dests = [m["destination"] for m in oci_config(spec, tmp_path)["mounts"]]
    assert dests.count("/dev/shm") == 1 and dests.index("/etc") < dests.index("/etc/hosts")
    assert spec_from_json(spec_to_json(spec)).mounts == user


def test_copy_up_fills_only_an_empty_volume(tmp_path: Path):
    image, vol = tmp_path / "img", tmp_path / "vol"
    (image / "sub").mkdir(parents=True)
    (image / "sub" / "f").write_text("x")
    (image / "link").symlink_to("sub/f")
    vol.mkdir()
    copy_up(image, vol)
    assert (vol / "sub" / "f").read_text() == "x" and (vol / "link").is_symlink()
    (image / "new").write_text("y")
    copy_up(image, vol)
    assert not (vol / "new").exists()
