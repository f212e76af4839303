"""The message pipeline and the forwarder, driven with dnspython-built queries (no sockets)."""

import asyncio

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.reversename
import dns.rrset
import pytest

from shoal.dns import DnsEntry, DnsRecords, Forwarder, Resolver, SandboxConf, parse_upstream
from shoal.errors import InvalidParameter

WEB, CLIENT, DB = "a1" * 32, "c3" * 32, "b2" * 32
UP = ("127.0.0.53",)


class FakeForward:
    def __init__(self, reply=None):
        self.calls = []
        self.reply = reply  # callable(query) -> Message | None

    async def __call__(self, query, upstreams, tcp):
        self.calls.append((query.question[0].name.to_text(), tuple(upstreams), tcp))
        return self.reply(query) if self.reply else None


def external_answer(query):
    resp = dns.message.make_response(query)
    resp.answer.append(dns.rrset.from_text(query.question[0].name, 300, "IN", "A", "192.0.2.1"))
    return resp


@pytest.fixture
def rec():
    r = DnsRecords()
    r.add("n1", "front", DnsEntry(WEB, "web", ("www",), "172.20.0.2", "fd00::2"))
    r.add("n1", "front", DnsEntry(CLIENT, "client", (), "172.20.0.9"))
    r.add("n2", "back", DnsEntry(DB, "db", (), "172.21.0.3"))
    return r


def ask(resolver, name, rdtype="A", *, who=CLIENT, udp=True, conf=None, **make):
    q = dns.message.make_query(name, rdtype, **make)
    wire = asyncio.run(resolver.handle(conf or SandboxConf(who, UP), q.to_wire(), udp=udp))
    return q, dns.message.from_wire(wire)


def addrs(resp):
    return sorted(rd.to_text() for rrset in resp.answer for rd in rrset)


def test_a_answer_is_authoritative_with_ttl_600(rec):
    fwd = FakeForward()
    q, r = ask(Resolver(rec, fwd), "WeB.", "A")
    assert r.id == q.id and r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.QR and r.flags & dns.flags.AA and r.flags & dns.flags.RA and r.flags & dns.flags.RD
    (rrset,) = r.answer
    assert rrset.name.to_text() == "WeB." and rrset.ttl == 600 and addrs(r) == ["172.20.0.2"]
    assert fwd.calls == []


def test_aaaa(rec):
    _, r = ask(Resolver(rec, FakeForward()), "www.front", "AAAA")
    assert addrs(r) == ["fd00::2"]


def test_aaaa_for_a_name_without_ipv6_is_nodata_not_nxdomain(rec):
    fwd = FakeForward()
    _, r = ask(Resolver(rec, fwd), "client", "AAAA")
    assert r.rcode() == dns.rcode.NOERROR and r.answer == [] and r.flags & dns.flags.AA
    assert fwd.calls == []


@pytest.mark.parametrize("ip,name", [("172.20.0.2", "web.front."), ("fd00::2", "web.front.")])
def test_ptr_for_a_container_on_a_shared_network(rec, ip, name):
    _, r = ask(Resolver(rec, FakeForward()), dns.reversename.from_address(ip), "PTR")
    assert r.flags & dns.flags.AA and [rd.to_text() for rd in r.answer[0]] == [name] and r.answer[0].ttl == 600


def test_unknown_and_invisible_names_and_other_types_are_forwarded(rec):
    fwd = FakeForward(external_answer)
    res = Resolver(rec, fwd)
    q, r = ask(res, "example.org", "A")
    assert r.id == q.id and addrs(r) == ["192.0.2.1"] and not r.flags & dns.flags.AA
    ask(res, "db", "A")  # exists, but not on a network CLIENT shares
    ask(res, "web", "MX")
    ask(res, dns.reversename.from_address("172.21.0.3"), "PTR")
    ask(res, "example.org", "A", udp=False)
    assert fwd.calls == [
        ("example.org.", UP, False), ("db.", UP, False), ("web.", UP, False),
        ("3.0.21.172.in-addr.arpa.", UP, False), ("example.org.", UP, True),
    ]


def test_no_upstream_answer_is_servfail(rec):
    _, r = ask(Resolver(rec, FakeForward()), "example.org")
    assert r.rcode() == dns.rcode.SERVFAIL and r.flags & dns.flags.QR


def test_no_upstreams_at_all_is_servfail_without_forwarding(rec):
    fwd = FakeForward(external_answer)
    _, r = ask(Resolver(rec, fwd), "example.org", conf=SandboxConf(CLIENT, ()))
    assert r.rcode() == dns.rcode.SERVFAIL and fwd.calls == []


def test_ndots_set_keeps_single_labels_local(rec):
    fwd = FakeForward(external_answer)
    conf = SandboxConf(CLIENT, UP, ndots_set=True)
    _, r = ask(Resolver(rec, fwd), "printer", conf=conf)
    assert r.rcode() == dns.rcode.NOERROR and r.answer == [] and fwd.calls == []
    _, r = ask(Resolver(rec, fwd), "printer.lan", conf=conf)
    assert addrs(r) == ["192.0.2.1"]


def many_records(n):
    r = DnsRecords()
    for i in range(n):
        r.add("n", "net", DnsEntry(f"{i:064x}", f"c{i}", ("many",), f"10.0.{i // 250}.{i % 250 + 2}"))
    return r


def test_udp_answers_are_truncated_to_512_with_tc():
    wire = dns.message.make_query("many", "A").to_wire()
    raw = asyncio.run(Resolver(many_records(60), FakeForward()).handle(SandboxConf(f"{0:064x}"), wire, udp=True))
    r = dns.message.from_wire(raw)
    assert len(raw) <= 512 and r.flags & dns.flags.TC and 0 < len(addrs(r)) < 60


def test_udp_answers_fit_the_edns_size_and_tcp_is_not_cut():
    res = Resolver(many_records(60), FakeForward())
    conf = SandboxConf(f"{0:064x}")
    q = dns.message.make_query("many", "A", use_edns=0, payload=4096)
    r = dns.message.from_wire(asyncio.run(res.handle(conf, q.to_wire(), udp=True)))
    assert not r.flags & dns.flags.TC and len(addrs(r)) == 60 and r.edns == 0
    q = dns.message.make_query("many", "A")
    r = dns.message.from_wire(asyncio.run(res.handle(conf, q.to_wire(), udp=False)))
    assert not r.flags & dns.flags.TC and len(addrs(r)) == 60


def test_forwarded_answers_are_truncated_too(rec):
    def big(query):
        resp = dns.message.make_response(query)
        resp.answer.append(dns.rrset.from_text_list(query.question[0].name, 60, "IN", "A",
                                                    [f"192.0.2.{i}" for i in range(1, 80)]))
        return resp

    q = dns.message.make_query("big.example", "A")
    raw = asyncio.run(Resolver(rec, FakeForward(big)).handle(SandboxConf(CLIENT, UP), q.to_wire(), udp=True))
    r = dns.message.from_wire(raw)
    assert len(raw) <= 512 and r.flags & dns.flags.TC and 0 < len(addrs(r)) < 79


def test_garbage_gets_formerr_or_nothing(rec):
    res = Resolver(rec, FakeForward())
    conf = SandboxConf(CLIENT, UP)
    assert asyncio.run(res.handle(conf, b"\x12\x34", udp=True)) is None  # shorter than a header
    reply = asyncio.run(res.handle(conf, b"\x12\x34\x01\x00" + b"\x00\x05" + bytes(6) + b"\xff" * 9, udp=True))
    assert reply[:2] == b"\x12\x34" and reply[2] & 0x80 and reply[3] & 0x0F == dns.rcode.FORMERR
    response = dns.message.make_response(dns.message.make_query("web", "A"))
    assert asyncio.run(res.handle(conf, response.to_wire(), udp=True)) is None  # never answer answers


def test_two_questions_formerr_and_other_opcodes_notimp(rec):
    res = Resolver(rec, FakeForward())
    conf = SandboxConf(CLIENT, UP)
    q = dns.message.make_query("web", "A")
    q.question.append(dns.message.make_query("www", "A").question[0])
    r = dns.message.from_wire(asyncio.run(res.handle(conf, q.to_wire(), udp=True)))
    assert r.rcode() == dns.rcode.FORMERR
    q = dns.message.make_query("web", "A")
    q.set_opcode(dns.opcode.NOTIFY)
    r = dns.message.from_wire(asyncio.run(res.handle(conf, q.to_wire(), udp=True)))
    assert r.rcode() == dns.rcode.NOTIMP


def test_shared_alias_answers_shuffle():
    r = DnsRecords()
    for i in range(8):
        r.add("n", "net", DnsEntry(f"{i:064x}", f"c{i}", ("lb",), f"10.0.0.{i + 2}"))
    res = Resolver(r, FakeForward())
    orders = {tuple(rd.to_text() for rd in ask(res, "lb", who=f"{0:064x}")[1].answer[0]) for _ in range(10)}
    assert len(orders) > 1


# -- the forwarder --------------------------------------------------------------------------
class Upstreams:
    """Fake dns.asyncquery.udp/tcp: per address, an rcode to answer, or an exception."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.seen = []

    async def __call__(self, q, where, timeout=None, port=53):
        self.seen.append((where, port, timeout))
        what = self.behaviour.get(where, dns.rcode.NOERROR)
        if isinstance(what, Exception):
            raise what
        if what == "hang":
            await asyncio.sleep(3600)
        resp = dns.message.make_response(q)
        resp.set_rcode(what)
        return resp


def forward(fwd, upstreams, tcp=False):
    return asyncio.run(fwd(dns.message.make_query("x.example", "A"), upstreams, tcp))


def test_forwarder_moves_on_after_servfail_refused_and_errors_but_not_nxdomain():
    udp = Upstreams({"10.9.0.1": dns.rcode.SERVFAIL, "10.9.0.2": OSError("refused"), "10.9.0.3": dns.rcode.NXDOMAIN})
    fwd = Forwarder(udp_query=udp, timeout=1.5)
    r = forward(fwd, ["10.9.0.1", "10.9.0.2", "10.9.0.3", "10.9.0.4"])
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert udp.seen == [("10.9.0.1", 53, 1.5), ("10.9.0.2", 53, 1.5), ("10.9.0.3", 53, 1.5)]


def test_forwarder_uses_at_most_three_servers_and_tcp_when_asked():
    udp = Upstreams({a: dns.rcode.REFUSED for a in ("10.9.0.1", "10.9.0.2", "10.9.0.3")})
    tcp = Upstreams({})
    fwd = Forwarder(udp_query=udp, tcp_query=tcp)
    assert forward(fwd, ["10.9.0.1", "10.9.0.2", "10.9.0.3", "10.9.0.4"]) is None
    assert [s[0] for s in udp.seen] == ["10.9.0.1", "10.9.0.2", "10.9.0.3"]
    assert forward(fwd, ["[::1]:5353"], tcp=True).rcode() == dns.rcode.NOERROR and tcp.seen == [("::1", 5353, 4.0)]
    assert fwd.active == 0


def test_forwarder_refuses_beyond_its_concurrency_limit():
    udp = Upstreams({"10.9.0.1": "hang"})
    fwd = Forwarder(udp_query=udp, max_concurrent=2)

    async def go():
        q = dns.message.make_query("x.example", "A")
        hung = [asyncio.create_task(fwd(q, ["10.9.0.1"], False)) for _ in range(2)]
        await asyncio.sleep(0)
        assert fwd.active == 2
        assert await fwd(q, ["10.9.0.2"], False) is None
        for t in hung:
            t.cancel()
        await asyncio.gather(*hung, return_exceptions=True)
        assert fwd.active == 0

    asyncio.run(go())
    assert [s[0] for s in udp.seen] == ["10.9.0.1", "10.9.0.1"]


@pytest.mark.parametrize("text,expected", [
    ("192.0.2.1", ("192.0.2.1", 53)), ("192.0.2.1:5353", ("192.0.2.1", 5353)),
    ("2001:db8::1", ("2001:db8::1", 53)), ("[2001:db8::1]:54", ("2001:db8::1", 54)), ("[::1]", ("::1", 53)),
])
def test_parse_upstream(text, expected):
    assert parse_upstream(text) == expected


@pytest.mark.parametrize("text", ["dns.example", "192.0.2.1:0", "192.0.2.1:x", "[::1]:99999", ""])
def test_parse_upstream_rejects(text):
    with pytest.raises(InvalidParameter):
        parse_upstream(text)
