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


def test_a_stalled_client_is_bounded_then_dropped_and_the_others_get_everything(tmp_path, monkeypatch):
    from shoal.runtime import attach

    monkeypatch.setattr(attach, "QUEUE_LIMIT", 64 * 1024)

    async def main():
        loop = asyncio.get_running_loop()
        srv = await fake_conmon(tmp_path / "attach")
        hub = MonitorSocket(tmp_path / "attach", stall_timeout=0.2)
        hub.connect()
        conn, _ = await loop.sock_accept(srv)
        stalled = Attachment(hub, tty=False)
        reader = Attachment(hub, tty=False)
        chunk, count = b"\x02" + bytes(16 * 1024), 200  # 3.2 MB against a 64 KiB bound
        peak = 0

        async def produce():
            for _ in range(count):
                await loop.sock_sendall(conn, chunk)
            conn.close()

        async def consume():
            nonlocal peak
            got = 0
            while (item := await reader.read()) is not None:
                got += len(item[1])
                peak = max(peak, stalled._queued)
            return got

        producer = asyncio.create_task(produce())
        assert await consume() == count * (len(chunk) - 1)
        await producer
        # the stalled client never held more than its bound plus one message, then was dropped
        assert peak <= attach.QUEUE_LIMIT + len(chunk)
        assert stalled.lagged and not stalled.process_ended
        assert await stalled.read() is None
        assert reader.process_ended
        srv.close()

    asyncio.run(asyncio.wait_for(main(), 10))


def test_a_slow_client_is_waited_for_and_misses_nothing(tmp_path, monkeypatch):
    from shoal.runtime import attach

    monkeypatch.setattr(attach, "QUEUE_LIMIT", 32 * 1024)

    async def main():
        loop = asyncio.get_running_loop()
        srv = await fake_conmon(tmp_path / "attach")
        hub = MonitorSocket(tmp_path / "attach", stall_timeout=5)
        hub.connect()
        conn, _ = await loop.sock_accept(srv)
        slow = Attachment(hub, tty=False)
        chunk, count = b"\x02" + bytes(8 * 1024), 40

        async def produce():
            for _ in range(count):
                await loop.sock_sendall(conn, chunk)
            conn.close()

        producer = asyncio.create_task(produce())
        got, peak = 0, 0
        while (item := await slow.read()) is not None:
            got += len(item[1])
            peak = max(peak, slow._queued)
            await asyncio.sleep(0.005)  # slower than the producer
        await producer
        assert got == count * (len(chunk) - 1) and not slow.lagged
        assert peak <= attach.QUEUE_LIMIT + len(chunk)
        srv.close()

    asyncio.run(asyncio.wait_for(main(), 10))
