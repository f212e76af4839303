"""Real containers through runc and conmon (root). Every object is ours: data roots are
/tmp/shrt-* temp dirs, network namespaces are shrt-<random>, and both are deleted by exact name."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from shoal.errors import Conflict, NotFound, NotModified
from shoal.runtime import ContainerSpec, ExecSpec, ImageStore, Runtime, Stream
from shoal.runtime.overlay import is_mounted

REPO = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not (shutil.which("runc") and shutil.which("conmon")), reason="needs runc and conmon"),
]


@pytest.fixture(scope="module")
def rootfs_tar():
    tmp = Path(tempfile.mkdtemp(prefix="shrt-tar-"))
    try:
        subprocess.run([str(REPO / "scripts/build-busybox-rootfs"), str(tmp / "busybox.tar")], check=True)
        yield tmp / "busybox.tar"
    finally:
        shutil.rmtree(tmp)


@pytest.fixture
def root(rootfs_tar):
    path = Path(tempfile.mkdtemp(prefix="shrt-"))
    ImageStore(path).import_tar(rootfs_tar, "busybox")
    try:
        yield path
    finally:
        asyncio.run(_delete_all(path))
        shutil.rmtree(path)


async def _delete_all(path: Path) -> None:
    runtime = Runtime(path, ImageStore(path))
    for state in await runtime.restore():
        await runtime.delete(state.id)


@pytest.fixture
def netns():
    name = f"shrt-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def cid() -> str:
    return secrets.token_hex(32)


async def collect(att, until: bytes | None = None) -> dict[Stream, bytes]:
    out = {Stream.STDOUT: b"", Stream.STDERR: b""}
    while (item := await att.read()) is not None:
        out[item[0]] += item[1]
        if until is not None and until in out[Stream.STDOUT]:
            break
    return out


def run(coro, timeout=20):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_container_in_a_netns_with_etc_files(root, netns, tmp_path):
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n10.9.9.9 peer\n")
    (tmp_path / "hostname").write_text("web\n")
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.11\n")
    spec = ContainerSpec(
        id=cid(), hostname="web", netns=f"/run/netns/{netns}", hosts=tmp_path / "hosts",
        hostname_file=tmp_path / "hostname", resolv_conf=tmp_path / "resolv.conf",
        args=("sh", "-c", "hostname; cat /etc/hosts /etc/resolv.conf; ip -o link; ping -c1 -W1 127.0.0.1; "
                          "echo oops >&2; echo hi > /etc/hosts; touch /new; exit 3"))

    async def main():
        rt = Runtime(root, ImageStore(root))
        await rt.create(spec, "busybox")
        assert rt.state(spec.id).status == "created"
        att = await rt.attach(spec.id)
        await rt.start(spec.id)
        out = await collect(att)
        assert await rt.wait(spec.id) == 3
        st = rt.state(spec.id)
        assert st.status == "exited" and st.exit_code == 3 and st.finished_at >= st.started_at
        logs = [(e.stream, e.data) async for e in rt.logs(spec.id)]
        return out, logs, rt

    out, logs, rt = run(main())
    text = out[Stream.STDOUT].decode()
    assert text.startswith("web\n") and "10.9.9.9 peer" in text and "nameserver 127.0.0.11" in text
    assert "lo:" in text and "1 packets received" in text
    assert "eth0" not in text  # only the namespace's own loopback
    assert out[Stream.STDERR] == b"oops\n"
    assert (Stream.STDERR, b"oops\n") in logs and b"".join(d for s, d in logs if s == Stream.STDOUT) == out[Stream.STDOUT]
    assert (tmp_path / "hosts").read_text() == "hi\n"  # bind-mounted read-write
    assert (root / "containers" / spec.id / "upper" / "new").exists()  # writes land in upper
    assert not list((root / "images").glob("layers/*/diff/new"))  # the image stays untouched
    run(rt.delete(spec.id))
    assert not (root / "containers" / spec.id).exists()


def test_tty_stdin_resize_detach_exec_and_stop(root):
    spec = ContainerSpec(id=cid(), args=("sh",), tty=True, open_stdin=True)

    async def main():
        rt = Runtime(root, ImageStore(root))
        await rt.create(spec, "busybox")
        att = await rt.attach(spec.id, stdin=True)
        await rt.start(spec.id)
        with pytest.raises(NotModified):
            await rt.start(spec.id)
        await rt.resize(spec.id, 33, 77)
        await att.write(b"stty size; echo $((6*7))\n")
        out = await collect(att, until=b"42\r\n")
        assert b"33 77" in out[Stream.STDOUT]
        assert await att.write(b"\x10\x11") is False and att.detached
        assert rt.state(spec.id).running

        ex = await rt.exec(spec.id, ExecSpec(args=("sh", "-c", "echo out; echo err >&2; read x; echo got $x; exit 5"),
                                             open_stdin=True))
        await ex.write(b"hello\n")
        got = await collect(ex.attachment)
        assert got == {Stream.STDOUT: b"out\ngot hello\n", Stream.STDERR: b"err\n"}
        assert await ex.wait() == 5 and rt.exec_state(ex.id).exit_code == 5
        tty_ex = await rt.exec(spec.id, ExecSpec(args=("tty",), tty=True))
        assert b"/dev/pts/" in (await collect(tty_ex.attachment))[Stream.STDOUT]
        assert await tty_ex.wait() == 0

        t0 = time.monotonic()
        assert await rt.stop(spec.id, timeout=0.5) == 137  # sh as pid 1 ignores SIGTERM
        assert time.monotonic() - t0 < 5
        with pytest.raises(Conflict):
            await rt.kill(spec.id)
        await rt.delete(spec.id)
        await rt.delete(spec.id)  # idempotent
        with pytest.raises(NotFound):
            rt.state(spec.id)

    run(main())


def test_stdin_once_closes_stdin_and_restart_works(root):
    spec = ContainerSpec(id=cid(), args=("sh", "-c", "cat; echo done"), open_stdin=True, stdin_once=True)

    async def main():
        rt = Runtime(root, ImageStore(root))
        await rt.create(spec, "busybox")
        next_exit = asyncio.ensure_future(rt.wait(spec.id, "next-exit"))  # like `docker run`
        for round_ in (1, 2):
            att = await rt.attach(spec.id, stdin=True)
            await rt.start(spec.id)
            await att.write(b"round %d\n" % round_)
            await att.close_stdin()
            assert (await collect(att))[Stream.STDOUT] == b"round %d\ndone\n" % round_
            assert await rt.wait(spec.id) == 0
        assert next_exit.done() and next_exit.result() == 0
        logs = b"".join([e.data async for e in rt.logs(spec.id)])
        assert logs == b"round 1\ndone\nround 2\ndone\n"
        assert [e.data async for e in rt.logs(spec.id, tail=1)] == [b"done\n"]
        await rt.delete(spec.id)

    run(main())


DAEMON = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from shoal.runtime import ContainerSpec, ImageStore, Runtime
    async def main(root, quick, slow):
        rt = Runtime(Path(root), ImageStore(Path(root)))
        for cid, script in ((quick, "exit 7"), (slow, "echo up; sleep 1; exit 4")):
            await rt.create(ContainerSpec(id=cid, args=("sh", "-c", script)), "busybox")
            await rt.start(cid)
    asyncio.run(main(*sys.argv[1:]))
""")


def test_containers_outlive_the_daemon(root):
    quick, slow = cid(), cid()
    subprocess.run([sys.executable, "-c", DAEMON, str(root), quick, slow], check=True, timeout=30)

    async def main():
        rt = Runtime(root, ImageStore(root))
        states = {s.id: s for s in await rt.restore()}
        assert states[slow].status == "running" and states[slow].pid > 0
        att = await rt.attach(slow)  # a new daemon can attach and exec again
        ex = await rt.exec(slow, ExecSpec(args=("echo", "still here")))
        assert (await collect(ex.attachment))[Stream.STDOUT] == b"still here\n" and await ex.wait() == 0
        follow = [e.data async for e in rt.logs(slow, follow=True)]  # ends when the container exits
        assert await rt.wait(slow) == 4
        assert follow == [b"up\n"] and await att.read() is None and att.process_ended
        assert rt.state(quick).status == "exited" and rt.state(quick).exit_code == 7
        merged = root / "containers" / slow / "merged"
        assert is_mounted(merged)
        await rt.delete(slow)
        await rt.delete(quick)
        assert not is_mounted(merged) and list((root / "containers").iterdir()) == []
        ps = subprocess.run(["runc", "--root", str(root / "runc"), "list", "-q"], capture_output=True, text=True)
        assert ps.stdout.strip() == ""

    run(main())


def test_missing_executable_is_reported(root):
    spec = ContainerSpec(id=cid(), args=("/nope",))

    async def main():
        rt = Runtime(root, ImageStore(root))
        await rt.create(spec, "busybox")
        with pytest.raises(Exception, match="nope"):
            await rt.start(spec.id)
        assert rt.state(spec.id).status == "created"
        await rt.delete(spec.id)

    run(main())
