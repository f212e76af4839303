"""Docker stream framing and detach keys (no I/O)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.errors import InvalidParameter
from shoal.runtime.streams import DEFAULT_DETACH_KEYS, EscapeProxy, FrameDecoder, Stream, frame, parse_detach_keys


def test_frame_header_is_docker_layout():
    assert frame(Stream.STDERR, b"hey") == b"\x02\x00\x00\x00\x00\x00\x00\x03hey"
    assert frame(Stream.STDOUT, b"") == b"\x01\x00\x00\x00\x00\x00\x00\x00"


@given(st.lists(st.tuples(st.sampled_from(list(Stream)), st.binary(max_size=300))), st.integers(1, 50))
def test_decoder_inverts_framing_under_any_chunking(frames, chunk):
    wire = b"".join(frame(s, d) for s, d in frames)
    dec, got = FrameDecoder(), []
    for i in range(0, len(wire), chunk):
        got += dec.feed(wire[i : i + chunk])
    assert got == frames and dec.pending == 0


@pytest.mark.parametrize(("keys", "expected"), [
    ("ctrl-p,ctrl-q", b"\x10\x11"),
    ("", DEFAULT_DETACH_KEYS),
    (None, DEFAULT_DETACH_KEYS),
    ("ctrl-@,ctrl-_,ctrl-[,ctrl-^", b"\x00\x1f\x1b\x1e"),
    ("a,ctrl-a,Z", b"a\x01Z"),
    ("ctrl-\\,ctrl-]", b"\x1c\x1d"),
])
def test_parse_detach_keys(keys, expected):
    assert parse_detach_keys(keys) == expected


@pytest.mark.parametrize("keys", ["ctrl-", "ctrl-1", "ab", "ctrl-p,,ctrl-q", "ctrl-P"])
def test_parse_detach_keys_rejects_garbage(keys):
    with pytest.raises(InvalidParameter, match="Invalid detach keys"):
        parse_detach_keys(keys)


def test_escape_proxy_detaches_and_drops_the_rest():
    proxy = EscapeProxy(b"\x10\x11")
    assert proxy.feed(b"ls\n\x10\x11after") == (b"ls\n", True)


def test_escape_proxy_passes_a_broken_prefix_through():
    proxy = EscapeProxy(b"\x10\x11")
    assert proxy.feed(b"a\x10") == (b"a", False)  # held: could be the start of the sequence
    assert proxy.feed(b"b") == (b"\x10b", False)
    assert proxy.feed(b"\x10\x10\x11") == (b"\x10", True)  # the second 0x10 restarts the match


def test_escape_proxy_across_reads_and_flush():
    proxy = EscapeProxy(b"abc")
    assert proxy.feed(b"xa") == (b"x", False)
    assert proxy.feed(b"b") == (b"", False)
    assert proxy.flush() == b"ab"
    assert proxy.feed(b"ab") == (b"", False)
    assert proxy.feed(b"c") == (b"", True)


def test_single_key_sequence():
    assert EscapeProxy(b"q").feed(b"abq") == (b"ab", True)


@given(st.binary(max_size=200))
def test_escape_proxy_is_transparent_without_the_sequence(data):
    keys = b"\x10\x11"
    proxy = EscapeProxy(keys)
    out, detached = proxy.feed(data)
    if keys in data:
        assert detached and out == data[: data.index(keys)]
    else:
        assert not detached and out + proxy.flush() == data
