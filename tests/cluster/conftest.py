"""The `cluster` tier: real etcd members on 127.0.0.1 (root, Debian's etcd-server)."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.certs import make_pki
from tests.cluster.etcd import EtcdCluster


def pytest_collection_modifyitems(items):
    for item in items:
        if "/cluster/" in str(item.fspath):
            item.add_marker(pytest.mark.cluster)


def _need_etcd() -> None:
    if os.geteuid() != 0:
        pytest.skip("the cluster tier runs as root")
    if shutil.which("etcd") is None:
        pytest.skip("etcd is missing: apt-get install etcd-server (scripts/setup)")


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory):
    """The busybox rootfs every lab host imports (built once per session)."""
    out = tmp_path_factory.mktemp("img") / "busybox.tar"
    script = Path(__file__).resolve().parents[2] / "scripts" / "build-busybox-rootfs"
    subprocess.run([str(script), str(out)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def etcd1():
    """One member, shared by the session (tests use their own key prefixes)."""
    _need_etcd()
    cluster = EtcdCluster(1)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def _etcd3_session():
    _need_etcd()
    cluster = EtcdCluster(3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def etcd3(_etcd3_session):
    """Three members, all running and healthy when the test starts (stopped ones restart)."""
    _etcd3_session.start()
    yield _etcd3_session
    _etcd3_session.start()


@pytest.fixture(scope="session")
def pki_dir():
    """Where the session's throwaway CAs live (a `sht-` temp dir, removed at the end)."""
    root = Path(tempfile.mkdtemp(prefix="sht-tls-pki-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pki(pki_dir):
    """The CA etcd trusts, its server certificate (127.0.0.1) and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    return make_pki(pki_dir, "etcd", ["127.0.0.1"])


@pytest.fixture(scope="session")
def other_pki(pki_dir, pki):
    """A CA etcd does not know, with certificates of its own (for the failures)."""
    return make_pki(pki_dir, "other", ["127.0.0.1"])


@pytest.fixture(scope="session")
def etcd_tls(pki):
    """One member serving https only and requiring a client certificate from `pki`."""
    _need_etcd()
    cluster = EtcdCluster(1, pki=pki)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
