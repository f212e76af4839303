"""`--cluster-store-opt kv.cacertfile/certfile/keyfile`: Docker's rule (all three: TLS with a
client certificate), start-up errors that say what to fix, https to every member. The
handshakes themselves are tested against a real etcd in tests/cluster/test_etcd_tls.py."""

from __future__ import annotations

import asyncio
import shutil
import ssl

import pytest

from shoal.errors import InvalidParameter
from shoal.store import EtcdKV, open_kv
from shoal.store.cluster import tls_context
from tests.certs import make_pki

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("sht-pki"), "unit", ["127.0.0.1"])


def test_all_three_give_https_to_every_member_with_our_certificate(pki):
    kv = open_kv("etcd://127.0.0.1:2379,127.0.0.2:2379/shoal", pki.opts())
    try:
        assert isinstance(kv, EtcdKV)
        assert kv.endpoints == ["https://127.0.0.1:2379", "https://127.0.0.2:2379"]
        assert kv.url == "etcd://127.0.0.1:2379,127.0.0.2:2379/shoal"  # /info shows the flag as given
    finally:
        asyncio.run(kv.close())
    context = tls_context(pki.opts())
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "sht unit CA"),),)]  # that CA only


def test_no_tls_options_is_plain_http_and_other_options_are_not_ours(pki):
    assert tls_context({"discovery.ttl": "5"}) is None
    kv = open_kv("etcd://127.0.0.1:2379", {"discovery.ttl": "5"})
    assert kv.endpoints == ["http://127.0.0.1:2379"]
    asyncio.run(kv.close())


@pytest.mark.parametrize("given, missing", [
    (("kv.cacertfile",), "kv.certfile and kv.keyfile"),
    (("kv.certfile", "kv.keyfile"), "kv.cacertfile"),
    (("kv.cacertfile", "kv.certfile"), "kv.keyfile"),
])
def test_a_partial_set_is_refused_at_start_naming_what_is_missing(pki, given, missing):
    """Docker would quietly talk plain http here; a start-up error is safer."""
    opts = {k: v for k, v in pki.opts().items() if k in given}
    with pytest.raises(InvalidParameter, match=f"without {missing}: TLS to the cluster store needs all of") as e:
        open_kv("etcd://127.0.0.1:2379", opts)
    assert "or none for plain http" in e.value.message


def test_files_that_are_not_what_they_should_be_are_start_up_errors(pki, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(InvalidParameter, match=r"kv.cacertfile=.*junk.pem: not a PEM CA certificate"):
        tls_context({**pki.opts(), "kv.cacertfile": str(junk)})
    with pytest.raises(InvalidParameter, match=r"kv.certfile=.*junk.pem, kv.keyfile=.*: not a PEM certificate"):
        tls_context({**pki.opts(), "kv.certfile": str(junk)})
    # a key that is not the certificate's
    with pytest.raises(InvalidParameter, match="not a PEM certificate and its private key"):
        tls_context({**pki.opts(), "kv.keyfile": str(pki.server_key)})
    with pytest.raises(InvalidParameter, match="kv.keyfile=.*nope.pem: no such file"):
        tls_context({**pki.opts(), "kv.keyfile": str(tmp_path / "nope.pem")})
