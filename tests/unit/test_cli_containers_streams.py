"""The byte-level pieces of attach/exec: frame demultiplexing, detach keys, raw HTTP parsing."""

from __future__ import annotations

import io
import socket
import threading

import pytest

from shoal.cli.client import parse_host
from shoal.cli.errors import CliError, DaemonError
from shoal.cli.hijack import (
    DEFAULT_DETACH_KEYS, Demuxer, EscapeDetector, OutputSink, detach_bytes, frame, parse_detach_keys,
)
from shoal.cli.rawhttp import RawConnection, daemon_error, encode_query, Head
from shoal.cli.refs import familiar, image_path, parse_normalized

# ---------------------------------------------------------------------------------------------
# frames


def test_demuxer_handles_frames_split_anywhere():
    data = frame(1, b"hello ") + frame(2, b"oops\n") + frame(1, b"world\n") + frame(0, b"echoed")
    for cut in range(len(data) + 1):
        demux = Demuxer()
        got = demux.feed(data[:cut]) + demux.feed(data[cut:])
        assert got == [(1, b"hello "), (2, b"oops\n"), (1, b"world\n"), (0, b"echoed")]


def test_demuxer_byte_by_byte_and_empty_frames():
    demux = Demuxer()
    got = []
    for byte in frame(2, b"") + frame(1, b"x" * 70000):
        got += demux.feed(bytes([byte]))
    assert got == [(2, b""), (1, b"x" * 70000)]


def test_demuxer_errors_like_stdcopy():
    with pytest.raises(CliError, match="error from daemon in stream: boom"):
        Demuxer().feed(frame(3, b"boom"))
    with pytest.raises(CliError, match="Unrecognized input header: 9"):
        Demuxer().feed(bytes([9, 0, 0, 0, 0, 0, 0, 1]) + b"x")


def test_output_sink_routes_streams():
    out, err = io.BytesIO(), io.BytesIO()
    sink = OutputSink(out, err, tty=False)
    sink.write(frame(1, b"a") + frame(2, b"b")[:5])
    sink.write(frame(2, b"b")[5:] + frame(0, b"c"))
    assert (out.getvalue(), err.getvalue()) == (b"ac", b"b")
    raw = io.BytesIO()
    OutputSink(raw, raw, tty=True).write(frame(1, b"a"))
    assert raw.getvalue() == frame(1, b"a")  # a TTY stream is never framed


# ---------------------------------------------------------------------------------------------
# detach keys


@pytest.mark.parametrize("keys, expected", [
    ("ctrl-p,ctrl-q", b"\x10\x11"), ("ctrl-a", b"\x01"), ("a,b", b"ab"), ("ctrl-@,ctrl-[,ctrl-_", b"\x00\x1b\x1f"),
    ("ctrl-Z", b"\x1a"),
])
def test_parse_detach_keys(keys, expected):
    assert parse_detach_keys(keys) == expected


@pytest.mark.parametrize("keys", ["ctrl-", "ctrl-1", "abc", "ctrl-ab"])
def test_invalid_detach_keys_fall_back_to_the_default(keys):
    with pytest.raises(ValueError):
        parse_detach_keys(keys)
    assert detach_bytes(keys) == DEFAULT_DETACH_KEYS
    assert detach_bytes("") == DEFAULT_DETACH_KEYS


def feed_all(detector: EscapeDetector, chunks: list[bytes]) -> tuple[bytes, bool]:
    out = b""
    for chunk in chunks:
        data, done = detector.feed(chunk)
        out += data
        if done:
            return out, True
    return out, False


@pytest.mark.parametrize("chunks, forwarded, detached", [
    ([b"ls\r", b"\x10", b"\x11"], b"ls\r", True),  # typed one key at a time
    ([b"ls\r\x10\x11after"], b"ls\r", True),  # in one read; what follows is dropped
    ([b"\x10", b"x"], b"\x10x", False),  # a prefix that is not the sequence passes through
    ([b"\x10\x10", b"\x11"], b"\x10", True),  # a repeated first key restarts the match
    ([b"a\x11b"], b"a\x11b", False),
    ([b"\x10"], b"", False),  # held until the next key decides
])
def test_escape_detector(chunks, forwarded, detached):
    assert feed_all(EscapeDetector(DEFAULT_DETACH_KEYS), chunks) == (forwarded, detached)


def test_escape_detector_flush_and_single_key():
    det = EscapeDetector(b"\x10\x11")
    assert det.feed(b"x\x10") == (b"x", False)
    assert det.flush() == b"\x10"
    assert EscapeDetector(b"\x01").feed(b"ab\x01c") == (b"ab", True)


# ---------------------------------------------------------------------------------------------
# raw HTTP


def test_query_encoding_sorts_keys_like_go():
    query = encode_query([("stream", "1"), ("changes", "CMD [\"sh\"]"), ("changes", "ENV A=1"), ("fromSrc", "-")])
    assert query == "?changes=CMD+%5B%22sh%22%5D&changes=ENV+A%3D1&fromSrc=-&stream=1"
    assert encode_query([]) == ""


def serve_once(reply: bytes, tmp_path, until: bytes = b"\r\n\r\n") -> tuple[str, threading.Thread, list[bytes]]:
    path = str(tmp_path / "s.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    got: list[bytes] = []

    def run() -> None:
        conn, _ = server.accept()
        data = b""
        while not data.endswith(until) and (more := conn.recv(65536)):
            data += more
        got.append(data)
        conn.sendall(reply)
        conn.close()
        server.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return path, thread, got


@pytest.mark.parametrize("reply, body", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\n\r\n", b"hello"),
    (b"HTTP/1.1 200 OK\r\n\r\nhello", b"hello"),
    (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
])
def test_raw_connection_reads_bodies(tmp_path, reply, body):
    path, thread, got = serve_once(reply, tmp_path)
    conn = RawConnection(parse_host(f"unix://{path}"))
    conn.send("GET", "/x?a=1", headers={"X-Test": "1"})
    head = conn.read_head()
    assert conn.read_body(head) == body
    conn.close()
    thread.join(5)
    assert got[0].startswith(b"GET /x?a=1 HTTP/1.1\r\nHost: localhost\r\n") and b"X-Test: 1\r\n" in got[0]


def test_raw_connection_streams_file_bodies_chunked(tmp_path):
    path, thread, got = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", tmp_path, b"0\r\n\r\n")
    conn = RawConnection(parse_host(f"unix://{path}"))
    conn.send("POST", "/images/create", body=io.BytesIO(b"tar-bytes"))
    assert conn.read_head().status == 200
    thread.join(5)
    assert got[0].endswith(b"Transfer-Encoding: chunked\r\n\r\n9\r\ntar-bytes\r\n0\r\n\r\n")


def test_daemon_errors_are_mapped_like_the_api_client():
    json_head = Head(404, "Not Found", {"content-type": "application/json"})
    err = daemon_error(json_head, b'{"message": "No such container: x"}')
    assert isinstance(err, DaemonError) and err.not_found
    assert err.message == "Error response from daemon: No such container: x"
    text = daemon_error(Head(500, "X", {"content-type": "text/plain"}), b'{"message": "m"}\n')
    assert text.message == 'Error response from daemon: {"message": "m"}'
    assert "check if the server supports" in daemon_error(Head(400, "Bad Request"), b"", "/v1.50/x").message


# ---------------------------------------------------------------------------------------------
# image references


@pytest.mark.parametrize("text, name, familiar_text", [
    ("busybox", "docker.io/library/busybox", "busybox"),
    ("busybox:1.36", "docker.io/library/busybox", "busybox:1.36"),
    ("me/app", "docker.io/me/app", "me/app"),
    ("localhost:5000/app:v1", "localhost:5000/app", "localhost:5000/app:v1"),
    ("docker.io/library/bb:1", "docker.io/library/bb", "bb:1"),
    ("index.docker.io/x/y", "docker.io/x/y", "x/y"),
])
def test_references(text, name, familiar_text):
    ref = parse_normalized(text)
    assert (ref.name(), ref.familiar_string(), familiar(text)) == (name, familiar_text, familiar_text)


@pytest.mark.parametrize("text, message", [
    ("Bad", "invalid reference format: repository name (library/Bad) must be lowercase"),
    ("bad name", "invalid reference format"),
    ("a" * 64, "cannot specify 64-byte hexadecimal strings"),
    ("x:", "invalid reference format"),
])
def test_bad_references(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_normalized(text)


def test_image_paths_keep_reference_punctuation():
    assert image_path("me/app:1") == "me/app:1"
    assert image_path("x@sha256:ab") == "x@sha256:ab"
    assert image_path("a b?") == "a%20b%3F"


# ---------------------------------------------------------------------------------------------
# signals during a session


def test_signal_relay_writes_signal_numbers_to_its_pipe():
    import os
    import signal

    from shoal.cli.term import SignalRelay

    with SignalRelay((signal.SIGWINCH, signal.SIGUSR1)) as relay:
        os.kill(os.getpid(), signal.SIGWINCH)
        os.kill(os.getpid(), signal.SIGUSR1)
        assert os.read(relay.read_fd, 16) == bytes([signal.SIGWINCH, signal.SIGUSR1])
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_terminal_turns_signals_into_resize_and_kill_calls():
    import signal

    from shoal.cli.attach import Terminal

    calls: list = []
    term = Terminal(None, io.BytesIO(), io.BytesIO(), tty=False, resize=lambda size: calls.append(("resize", size)),
                    kill=lambda signum: calls.append(("kill", signum)))
    term.on_signals(bytes([signal.SIGWINCH, signal.SIGINT, signal.SIGHUP]))
    assert calls == [("resize", (0, 0)), ("kill", signal.SIGINT), ("kill", signal.SIGHUP)]
    term.on_signals(bytes([signal.SIGTERM]))
    with pytest.raises(CliError) as info:  # the third SIGINT/SIGTERM: docker's forced exit
        term.on_signals(bytes([signal.SIGINT]))
    assert info.value.exit_code == 130


def test_raw_terminal_is_restored(tmp_path):
    import os
    import pty
    import termios

    from shoal.cli.term import raw_terminal

    master, slave = pty.openpty()
    try:
        with os.fdopen(os.dup(slave), "rb", buffering=0) as stream:
            before = termios.tcgetattr(slave)
            with raw_terminal(stream, True):
                raw = termios.tcgetattr(slave)
                assert not raw[3] & (termios.ECHO | termios.ICANON | termios.ISIG)
                assert not raw[1] & termios.OPOST and raw[6][termios.VMIN] == 1
            assert termios.tcgetattr(slave) == before
            with raw_terminal(stream, False):
                assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)
