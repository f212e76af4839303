"""What `docker create` takes from the image config: Entrypoint + Cmd, Env, User, WorkingDir,
Labels, ExposedPorts (the controller with a fake runtime, an image store on disk)."""

import asyncio
import io
import json
import tarfile

from shoal.controller.containers import CreateRequest
from shoal.runtime.imageconfig import MT_LAYER_TAR
from tests.unit.test_containers_rollback import world


def add_image(store):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("bin/sh", "usr/bin/serve"):
            info = tarfile.TarInfo(name)
            info.size, info.mode = 3, 0o755
            tar.addfile(info, io.BytesIO(b"#!\n"))
    data = buf.getvalue()
    diff_id = store.put_blob(data)
    store.apply_layer(store.blob_path(diff_id), diff_id, None)
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]},
              "config": {"Entrypoint": ["serve"], "Cmd": ["--port", "80"], "Env": ["PATH=/usr/bin:/bin", "MODE=prod"],
                         "User": "1000:1000", "WorkingDir": "/srv", "Labels": {"from": "image", "k": "image"},
                         "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGQUIT", "OnBuild": ["kept raw"]}}
    return store.add_image(json.dumps(config).encode(), layers=[(diff_id, MT_LAYER_TAR)], tag="svc:1")


def test_create_inherits_the_image_config(tmp_path):
    async def go():
        w = await world(tmp_path)
        add_image(w.c.images)
        rec = await w.c.create(CreateRequest(image="svc:1", name="c-a", env=("MODE=dev", "X=1"), labels={"k": "mine"}))
        assert rec.args == ("serve", "--port", "80")
        assert rec.env == ("PATH=/usr/bin:/bin", "MODE=dev", "X=1")
        assert (rec.user, rec.working_dir) == ("1000:1000", "/srv")
        assert rec.labels == {"from": "image", "k": "mine"}
        assert rec.config["ExposedPorts"] == {"80/tcp": {}} and rec.config["StopSignal"] == "SIGQUIT"
        rec = await w.c.create(CreateRequest(image="svc:1", name="c-b", cmd=("--help",), user="0", working_dir="/"))
        assert rec.args == ("serve", "--help") and (rec.user, rec.working_dir) == ("0", "/")
        rec = await w.c.create(CreateRequest(image="svc:1", name="c-c", entrypoint=("sh",), cmd=("-c", "true")))
        assert rec.args == ("sh", "-c", "true")
        rec = await w.c.create(CreateRequest(image="svc:1", name="c-d", entrypoint=("",), cmd=("sh",)))
        assert rec.args == ("sh",)
    asyncio.run(go())
