"""Fan-out of one conmon attach connection to many clients, against a fake conmon socket."""

import asyncio
import socket

from shoal.runtime.attach import Attachment, MonitorSocket
from shoal.runtime.streams import Stream


async def fake_conmon(path):
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    srv.bind(str(path))
    srv.listen(1)
    srv.setblocking(False)
    return srv


def test_fan_out_stdin_detach_and_stdin_once(tmp_path):
    async def main():
        loop = asyncio.get_running_loop()
        srv = await fake_conmon(tmp_path / "attach")
        closed = []
        hub = MonitorSocket(tmp_path / "attach", stdin_once=True, on_close=closed.append)
        a = Attachment(hub, tty=False, stdin=True)
        b = Attachment(hub, tty=False, stdin=False, stderr=False)
        pending = asyncio.create_task(a.write(b"early"))  # waits for the connection
        await asyncio.sleep(0.01)
        assert not pending.done()
        hub.connect()
        conn, _ = await loop.sock_accept(srv)
        assert await pending is True
        assert await loop.sock_recv(conn, 100) == b"early"
        await loop.sock_sendall(conn, b"\x02out")
        await loop.sock_sendall(conn, b"\x03err")
        assert await a.read() == (Stream.STDOUT, b"out")
        assert await a.read() == (Stream.STDERR, b"err")
        assert await b.read() == (Stream.STDOUT, b"out")
        assert await b.write(b"ignored") is True  # b has no stdin
        assert await a.write(b"x\x10") is True
        assert await loop.sock_recv(conn, 100) == b"x"
        assert await a.write(b"\x11tail") is False  # detach keys: a leaves, the process stays
        assert a.detached and await a.read() is None and not a.process_ended
        c = Attachment(hub, tty=False, stdin=True)
        await c.close_stdin()  # StdinOnce: conmon sees EOF on the shared connection
        assert await loop.sock_recv(conn, 100) == b""
        await loop.sock_sendall(conn, b"\x02still")  # output keeps flowing after the half-close
        assert await c.read() == (Stream.STDOUT, b"still")
        conn.close()  # the process exited
        assert await c.read() is None and c.process_ended
        assert await b.read() == (Stream.STDOUT, b"still") and await b.read() is None
        assert closed == [hub]
        late = Attachment(hub, tty=False)
        assert await late.read() is None
        srv.close()

    asyncio.run(asyncio.wait_for(main(), 5))


def test_big_stdin_is_chunked(tmp_path):
    async def main():
        loop = asyncio.get_running_loop()
        srv = await fake_conmon(tmp_path / "attach")
        hub = MonitorSocket(tmp_path / "attach")
        hub.connect()
        conn, _ = await loop.sock_accept(srv)
        att = Attachment(hub, tty=True, stdin=True, detach_keys=b"")
        await att.write(bytes(10000))
        sizes = [len(await loop.sock_recv(conn, 65536)) for _ in range(3)]
        assert sizes == [4096, 4096, 1808]
        hub.close()
        srv.close()
        conn.close()

    asyncio.run(asyncio.wait_for(main(), 5))
