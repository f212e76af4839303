"""Docker's insecure-registry rule and the per-host TLS contexts (certs.d)."""

import asyncio
import ssl

from shoal.registry.transport import InsecureRule, split_host, tls_context


def insecure(rule, domain):
    return asyncio.run(rule.insecure(domain))


def test_loopback_is_always_insecure():
    rule = InsecureRule()
    for domain in ("127.0.0.1:5000", "127.8.9.10", "[::1]:5000", "localhost:5000"):
        assert insecure(rule, domain), domain
    assert not insecure(rule, "registry.invalid:5000")  # unresolvable: secure


def test_configured_insecure_registries():
    rule = InsecureRule(["10.1.0.0/16", "myreg.invalid:5000", "http://other.invalid"])
    assert insecure(rule, "10.1.2.3:5000") and not insecure(rule, "10.2.0.1:5000")
    assert insecure(rule, "myreg.invalid:5000") and not insecure(rule, "myreg.invalid:6000")
    assert insecure(rule, "other.invalid") and insecure(rule, "other.invalid:443")


def test_split_host():
    assert split_host("h:5000") == ("h", 5000) and split_host("[::1]:5000") == ("::1", 5000)
    assert split_host("h") == ("h", None)


def test_tls_context_reads_certs_d(tmp_path):
    from tests.registry_server import self_signed

    folder = tmp_path / "reg.example:5000"
    folder.mkdir()
    cert, _ = self_signed(tmp_path)
    (folder / "ca.crt").write_bytes(cert.read_bytes())
    plain = tls_context(tmp_path, "elsewhere:1", verify=True).cert_store_stats()["x509"]
    ctx = tls_context(tmp_path, "reg.example:5000", verify=True)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.cert_store_stats()["x509"] == plain + 1
    assert tls_context(tmp_path, "reg.example:5000", verify=False).verify_mode == ssl.CERT_NONE
