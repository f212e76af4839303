"""Who sees which names: the embedded DNS resolution matrix (no I/O)."""

import pytest

from shoal.dns import DnsEntry, DnsRecords
from shoal.model import Endpoint

WEB = "a1" * 32
DB = "b2" * 32
CLIENT = "c3" * 32
LB1 = "d4" * 32
LB2 = "e5" * 32
BOTH = "f6" * 32


@pytest.fixture
def rec():
    r = DnsRecords()
    r.add("n-front", "frontnet", DnsEntry(WEB, "web", ("www",), "172.20.0.2/16", "fd00::2/64", hostname="webhost"))
    r.add("n-back", "back.net", DnsEntry(WEB, "web", (), "172.21.0.2"))
    r.add("n-back", "back.net", DnsEntry(DB, "db", ("database",), "172.21.0.3"))
    r.add("n-front", "frontnet", DnsEntry(CLIENT, "client", (), "172.20.0.9"))
    r.add("n-front", "frontnet", DnsEntry(LB1, "lb1", ("lb",), "172.20.0.11"))
    r.add("n-front", "frontnet", DnsEntry(LB2, "lb2", ("LB",), "172.20.0.12"))
    r.add("n-back", "back.net", DnsEntry(BOTH, "both", (), "172.21.0.20"))
    r.add("n-front", "frontnet", DnsEntry(BOTH, "both", (), "172.20.0.20"))
    return r


def v4(rec, who, name):
    return rec.resolve(who, name, 4).addresses


@pytest.mark.parametrize(
    "who,name,expected",
    [
        (CLIENT, "web", ("172.20.0.2",)),  # container name on a shared network
        (CLIENT, "web.", ("172.20.0.2",)),  # trailing dot
        (CLIENT, "WeB.", ("172.20.0.2",)),  # case-insensitive
        (CLIENT, "www", ("172.20.0.2",)),  # network alias
        (CLIENT, WEB[:12], ("172.20.0.2",)),  # short id
        (CLIENT, WEB[:12].upper(), ("172.20.0.2",)),
        (CLIENT, "webhost", ("172.20.0.2",)),  # hostname
        (CLIENT, "web.frontnet", ("172.20.0.2",)),  # name.network
        (CLIENT, "www.FRONTNET.", ("172.20.0.2",)),
        (CLIENT, "client", ("172.20.0.9",)),  # itself
        (CLIENT, "db", ()),  # not on a shared network
        (CLIENT, "database", ()),
        (CLIENT, "db.back.net", ()),  # naming the network does not widen the view
        (CLIENT, "web.back.net", ()),
        (CLIENT, WEB, ()),  # the full id is not a name
        (CLIENT, "nosuch", ()),
        (CLIENT, "web.nosuchnet", ()),
        (DB, "db.back.net", ("172.21.0.3",)),  # a network name with a dot
        (DB, "web", ("172.21.0.2",)),  # the address on the network they share
        (DB, "web.back.net", ("172.21.0.2",)),
        (DB, "web.frontnet", ()),
        (DB, "www", ()),  # the alias is only on frontnet
        (WEB, "db", ("172.21.0.3",)),
        (BOTH, "web", ("172.21.0.2",)),  # first network the querier joined wins
        (BOTH, "web.frontnet", ("172.20.0.2",)),
        ("unknown-sandbox", "web", ()),
    ],
)
def test_name_resolution_matrix(rec, who, name, expected):
    assert v4(rec, who, name) == expected


def test_shared_alias_gives_every_address(rec):
    assert set(v4(rec, CLIENT, "lb")) == {"172.20.0.11", "172.20.0.12"}


def test_aaaa_for_a_name_without_ipv6_is_known_but_empty(rec):
    res = rec.resolve(WEB, "db", 6)
    assert res.addresses == () and res.known
    assert rec.resolve(CLIENT, "web", 6).addresses == ("fd00::2",)
    assert not rec.resolve(CLIENT, "nosuch", 6).known
    assert not rec.resolve(CLIENT, "db", 6).known  # not visible at all


def test_a_for_an_ipv6_only_name_is_known_but_empty():
    r = DnsRecords()
    r.add("n", "v6only", DnsEntry("x" * 64, "six", (), "", "fd00::6"))
    r.add("n", "v6only", DnsEntry("y" * 64, "other", (), "", "fd00::7"))
    res = r.resolve("y" * 64, "six", 4)
    assert res.addresses == () and res.known


def test_reverse_only_on_shared_networks(rec):
    assert rec.reverse(CLIENT, "172.20.0.2") == "web.frontnet"
    assert rec.reverse(CLIENT, "fd00:0::2") == "web.frontnet"
    assert rec.reverse(CLIENT, "172.21.0.3") is None
    assert rec.reverse(WEB, "172.21.0.3") == "db.back.net"
    assert rec.reverse(CLIENT, "not-an-ip") is None


def test_reverse_of_anonymous_endpoint_uses_first_alias():
    r = DnsRecords()
    r.add("n", "net", DnsEntry("x" * 64, "", ("anon", "other"), "10.0.0.2"))
    assert r.reverse("x" * 64, "10.0.0.2") == "anon.net"


def test_disconnect_and_replace(rec):
    rec.remove("n-front", WEB)
    assert v4(rec, CLIENT, "web") == ()
    assert v4(rec, CLIENT, "www") == ()
    assert v4(rec, DB, "web") == ("172.21.0.2",)
    rec.add("n-front", "frontnet", DnsEntry(WEB, "web", ("new",), "172.20.0.5"))
    assert v4(rec, CLIENT, "web") == ("172.20.0.5",)
    assert v4(rec, CLIENT, "new") == ("172.20.0.5",)
    rec.add("n-front", "frontnet", DnsEntry(WEB, "web", (), "172.20.0.6"))  # replace in place
    assert v4(rec, CLIENT, "new") == () and v4(rec, CLIENT, "web") == ("172.20.0.6",)
    rec.remove("n-front", "nobody")
    rec.remove("nonet", WEB)


def test_querier_loses_its_view_on_disconnect(rec):
    rec.remove("n-front", CLIENT)
    assert v4(rec, CLIENT, "web") == ()
    assert rec.networks_of(CLIENT) == []


def test_remove_sandbox_and_empty_networks_are_forgotten(rec):
    for sid in (WEB, DB, BOTH):
        rec.remove_sandbox(sid)
    assert rec.networks_of(WEB) == []
    assert rec.entry("n-back", DB) is None
    assert v4(rec, CLIENT, "lb1") == ("172.20.0.11",)


def test_dns_names_and_from_endpoint():
    ep = Endpoint(id="e", network_id="n", name="web", sandbox_id=WEB, ipv4="172.18.0.2/16", aliases=("w", "WEB"))
    e = DnsEntry.from_endpoint(ep, hostname="h")
    assert (e.ipv4, e.ipv6, e.container_id) == ("172.18.0.2", "", WEB)
    assert e.dns_names() == ["web", "w", WEB[:12], "h"]


def test_a_link_alias_is_the_targets_name_for_the_linking_container_only():
    r = DnsRecords()
    r.add("n1", "app", DnsEntry("tgt", name="db", ipv4="10.0.0.2/24"))
    r.add("n1", "app", DnsEntry("me", name="web", ipv4="10.0.0.3/24", links=(("store", "db"),)))
    r.add("n1", "app", DnsEntry("other", name="x", ipv4="10.0.0.4/24"))
    assert r.resolve("me", "store", 4).addresses == ("10.0.0.2",)
    assert r.resolve("me", "STORE.app", 4).addresses == ("10.0.0.2",)
    assert r.resolve("other", "store", 4).addresses == ()
    r.remove("n1", "tgt")  # the target left: the alias no longer resolves
    assert r.resolve("me", "store", 4).addresses == ()
