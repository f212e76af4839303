"""Fixtures for the registry client tests: a real docker-registry 2.8 on 127.0.0.1 of this
namespace (no root needed), seeded with skopeo. CI installs both (scripts/setup)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests import oci_layout as ol
from tests.registry_server import RegistryServer, TokenAuth, have_registry
from tests.token_server import TokenServer


def pytest_collection_modifyitems(items):
    for item in items:
        if "/registry/" in str(item.fspath):
            item.add_marker(pytest.mark.registry)
            if not have_registry():
                item.add_marker(pytest.mark.skip(reason="needs docker-registry and skopeo (scripts/setup installs them)"))


@pytest.fixture
def tmp(tmp_path_factory):
    path = Path(tempfile.mkdtemp(prefix="shr-test-"))
    yield path
    import shutil
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def registry():
    with RegistryServer() as reg:
        yield reg


@pytest.fixture
def token_registry():
    """A registry behind the token server; user alice/secret may push, anonymous may pull."""
    tokens = TokenServer(users={"alice": "secret"}).start()
    reg = RegistryServer()
    auth = TokenAuth(tokens.realm, tokens.service, tokens.issuer, tokens.write_bundle(reg.tmp / "signer.pem"))
    reg.auth = auth
    try:
        reg.start()
        yield reg, tokens
    finally:
        reg.stop()
        tokens.stop()


def seeded(reg: RegistryServer, repo: str, tag: str, image: ol.Image, layout: Path, **kw) -> str:
    ol.write_image(layout, tag, image)
    return ol.seed(reg.url, layout, repo, tag, **kw)


def random_file(path: str, size: int) -> ol.Entry:
    return ol.file(path, os.urandom(size))

