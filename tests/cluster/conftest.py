"""The `cluster` tier: real etcd members on 127.0.0.1 (root, Debian's etcd-server)."""

import os
import shutil

import pytest

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
