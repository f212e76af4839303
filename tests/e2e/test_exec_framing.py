"""Exec output framing follows the start request's Tty, not the exec's (dockerd 20.10,
measured 2026-12-01): raw clients that create with one and start with the other get
what dockerd gives them."""

import httpx
import pytest

from .conftest import needs_docker

pytestmark = needs_docker


@pytest.mark.parametrize("create_tty, start_tty, framed, text", [
    (True, False, True, b"hi\r\n"), (True, None, True, b"hi\r\n"), (False, True, False, b"hi\n"),
    (False, False, True, b"hi\n")])
def test_exec_framing_follows_the_start_request(box, create_tty, start_tty, framed, text):
    d = box
    d.docker("run", "-d", "--name", "t1", "busybox", "sleep", "60")
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(d.sock)), base_url="http://shoal", timeout=30) as c:
        eid = c.post("/v1.41/containers/t1/exec",
                     json={"Cmd": ["echo", "hi"], "AttachStdout": True, "Tty": create_tty}).json()["Id"]
        body = {"Detach": False} if start_tty is None else {"Detach": False, "Tty": start_tty}
        out = c.post(f"/v1.41/exec/{eid}/start", json=body).content
    assert out == ((b"\x01\x00\x00\x00" + len(text).to_bytes(4, "big") + text) if framed else text)
