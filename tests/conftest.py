"""Shared fixtures.  Root tiers create their own namespaces, prefixed `sht-`, and delete
exactly those; nothing here touches objects it did not create."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess

import pytest

NETNS_PREFIX = "sht-"


def is_root() -> bool:
    return os.geteuid() == 0


needs_root = pytest.mark.skipif(not is_root(), reason="needs root (network namespaces)")


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def new_netns(tag: str = "") -> str:
    name = f"{NETNS_PREFIX}{tag}{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)  # as on any real host
    return name


def delete_netns(name: str) -> None:
    assert name.startswith(NETNS_PREFIX)
    subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


@pytest.fixture
def netns():
    """A fresh, empty network namespace; removed (with every link in it) afterwards."""
    if not is_root():
        pytest.skip("needs root (network namespaces)")
    name = new_netns()
    try:
        yield name
    finally:
        delete_netns(name)


def pytest_sessionfinish(session, exitstatus) -> None:  # noqa: ANN001 - pytest hook
    """runc made the shared /shoal cgroup parent for the tests' containers; rmdir it where it
    is empty (a running shoald's containers keep theirs: a busy cgroup cannot be removed)."""
    if is_root():
        from shoal.runtime import remove_cgroup_parent

        remove_cgroup_parent()
