"""What the cluster tier's lab tests share: the docker CLI against one lab host, inspect,
polling, and a raw API call."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path


def docker(h, *args, check=True, timeout=60):
    env = {**os.environ, "DOCKER_HOST": h.docker_host, "DOCKER_CONFIG": str(Path(h.data_root).parent / "cfg")}
    p = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} on {h.name} failed: {p.stderr}")
    return p


def inspect(h, ref):
    return json.loads(docker(h, "inspect", ref).stdout)[0]


def eventually(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        time.sleep(0.05)


def api(h, method, path):
    import httpx

    with httpx.Client(transport=httpx.HTTPTransport(uds=h.sock), base_url="http://shoal", timeout=30) as c:
        r = c.request(method, path)
    return r.status_code, r.json()
