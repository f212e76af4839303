"""A data root written by the single-rootfs image store (before layers) under today's daemon:
its images are migrated at open and its containers, stopped or running, keep working."""

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BEFORE_LAYERS = "626566d"  # the last commit with images/<id>/rootfs


@pytest.fixture
def old_src(tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", BEFORE_LAYERS, "src"], capture_output=True, check=False)
    if archive.returncode != 0:
        pytest.skip(f"commit {BEFORE_LAYERS} is not in this clone")
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    return out / "src"


def test_old_images_and_containers_survive_the_upgrade(make_shoald, busybox_tar, old_src, monkeypatch):
    d = make_shoald(start=False)
    with monkeypatch.context() as m:
        m.setenv("PYTHONPATH", str(old_src))
        d.start()
    image_id = d.docker("import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest").stdout.strip()
    d.docker("create", "--name", "shl-stopped", "busybox", "sh", "-c", "cat /etc/mark 2>/dev/null; echo x > /etc/mark")
    assert d.docker("start", "-a", "shl-stopped").stdout == ""
    d.docker("run", "-d", "--name", "shl-running", "busybox", "sleep", "1000")
    assert (d.root / "data" / "images" / "images" / image_id[7:] / "rootfs").is_dir()
    d.restart()  # today's code
    assert not (d.root / "data" / "images" / "images" / image_id[7:]).exists()
    assert d.docker("image", "inspect", "--format", "{{.Id}}", "busybox").stdout.strip() == image_id
    assert d.docker("exec", "shl-running", "echo", "still").stdout == "still\n"
    assert d.docker("start", "-a", "shl-stopped").stdout == "x\n"  # its upper dir kept its write
    d.docker("restart", "-t", "1", "shl-running")
    assert d.docker("run", "--rm", "busybox", "echo", "new").stdout == "new\n"
    assert "being used" in d.docker("rmi", "-f", image_id, check=False).stderr
