"""controller.volumes against the memory store: records, in-use, prune rules, rollback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shoal.controller.undo import Undo
from shoal.controller.volumes import Volumes
from shoal.errors import Conflict, InvalidParameter, NotFound
from shoal.model import Container
from shoal.store.memory import MemoryStore


def _volumes(tmp_path: Path, records: dict | None = None) -> Volumes:
    return Volumes(MemoryStore(), tmp_path / "volumes", records if records is not None else {})


def _container(cid: str, config: dict | None = None, **host_config) -> Container:
    return Container(id=cid, name=cid, created="", image="busybox", image_id="x", args=("sh",),
                     config=config or {}, host_config=host_config)


def test_create_inspect_remove(tmp_path):
    v = _volumes(tmp_path)
    rec = asyncio.run(v.create("data1", labels={"a": "b"}))
    assert (tmp_path / "volumes" / "data1" / "_data").is_dir()
    assert v.json(rec)["Mountpoint"] == str(tmp_path / "volumes" / "data1" / "_data")
    assert asyncio.run(v.create("data1", options={"o": "x"})) == rec  # the existing one, as dockerd
    asyncio.run(v.remove("data1"))
    assert not (tmp_path / "volumes" / "data1").exists()
    with pytest.raises(NotFound, match="get data1: no such volume"):
        v.get("data1")
    asyncio.run(v.remove("data1", force=True))


@pytest.mark.parametrize("kwargs, exc, message", [
    ({"name": "x1", "driver": "foo"}, NotFound, 'create x1: error looking up volume plugin foo: plugin "foo" not found'),
    ({"name": "x1", "options": {"size": "1m"}}, InvalidParameter, "create x1: quota size requested but no quota support"),
    ({"name": "x1", "options": {"device": "/d"}}, InvalidParameter, 'create x1: missing required option: "type"'),
    ({"name": "../x"}, InvalidParameter, 'create ../x: "../x" includes invalid characters'),
])
def test_create_refusals_change_nothing(tmp_path, kwargs, exc, message):
    v = _volumes(tmp_path)
    with pytest.raises(exc) as err:
        asyncio.run(v.create(**kwargs))
    assert err.value.message.startswith(message)
    assert v.list() == [] and not (tmp_path / "volumes").exists()


def test_attach_makes_volumes_undone_on_failure_and_in_use(tmp_path):
    records: dict = {}
    v = _volumes(tmp_path, records)
    c = _container("c" * 64, {"Volumes": {"/anon": {}}}, Binds=["named1:/n", "/host:/h:ro"], Tmpfs={"/t": "size=1m"})
    undo = Undo()
    done = asyncio.run(v.attach(c, ("/img",), undo))
    names = {m["destination"]: m for m in done.mounts}
    assert set(names) == {"/n", "/h", "/t", "/img", "/anon"}
    assert names["/img"]["anonymous"] and len(names["/img"]["name"]) == 64
    with pytest.raises(Conflict, match="remove named1: volume is in use - \\[c{64}\\]"):
        asyncio.run(v.remove("named1"))  # pending: its record is not written yet
    asyncio.run(undo.run())
    assert v.list() == []


def test_duplicate_and_missing_mount_source(tmp_path):
    v = _volumes(tmp_path)
    with pytest.raises(InvalidParameter, match="Duplicate mount point: /x"):
        asyncio.run(v.attach(_container("d" * 64, Binds=["/a:/x", "vv:/x"]), (), Undo()))
    missing = tmp_path / "nope"
    with pytest.raises(InvalidParameter, match=f"bind source path does not exist: {missing}"):
        asyncio.run(v.attach(_container("d" * 64, Mounts=[{"Type": "bind", "Source": str(missing),
                                                             "Target": "/x"}]), (), Undo()))
    assert v.list() == []


def test_prune_rules(tmp_path):
    records: dict = {}
    v = _volumes(tmp_path, records)
    asyncio.run(v.create("named1"))
    asyncio.run(v.create("anon" * 16, anonymous=True))
    gone, _ = asyncio.run(v.prune(lambda created, labels: False, anonymous_only=True))
    assert gone == ["anon" * 16]
    gone, _ = asyncio.run(v.prune(lambda created, labels: False, anonymous_only=False))
    assert gone == ["named1"]


def test_a_removed_container_leaves_no_volume_in_use(tmp_path):
    """Pending names go with the record (the create's) or with the removal, even when the
    record came and went between two lookups."""
    records: dict = {}
    v = _volumes(tmp_path, records)
    done = asyncio.run(v.attach(_container("e" * 64, Binds=["named1:/n"]), (), Undo()))
    records[done.id] = done
    records.pop(done.id)
    asyncio.run(v.detach(done, remove_anonymous=False))
    asyncio.run(v.remove("named1"))
    assert v.list() == []


def test_volume_driver_applies_to_binds_and_anonymous_volumes(tmp_path):
    v = _volumes(tmp_path)
    with pytest.raises(NotFound, match='error looking up volume plugin foo: plugin "foo" not found'):
        asyncio.run(v.attach(_container("f" * 64, Binds=["nv:/x"], VolumeDriver="foo"), (), Undo()))
    with pytest.raises(NotFound, match='plugin "foo" not found'):
        asyncio.run(v.attach(_container("f" * 64, VolumeDriver="foo"), ("/img",), Undo()))
    assert v.list() == []
