"""One DNS message in, one out: parse, answer from the records or forward, render.

Mirrors libnetwork's `resolver.go` `ServeDNS`:

* A/AAAA for a name the querier can see: authoritative answer, TTL 600, addresses in
  random order (libnetwork shuffles); a name known only for the other family: NOERROR
  with no data, never NXDOMAIN (so clients do not give up on the name).
* PTR for an address on a shared network: `name.network.`.
* Everything else (unknown names, other types, PTR of foreign addresses) goes upstream;
  no upstream answer, or no upstream at all: SERVFAIL.
* If the user set ndots, a single-label A/AAAA name that is not a container is answered
  empty instead of forwarded, so the client goes on with its search domains.
* UDP replies are cut to 512 bytes, or the query's EDNS size, keeping whole records and
  setting TC (libnetwork uses miekg's `Msg.Truncate`); TCP replies are not cut.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset

from shoal.dns.records import DnsRecords

TTL = 600
UDP_MIN_SIZE = 512
TCP_MAX_SIZE = 65535
OUR_PAYLOAD = 4096
HEADER_LEN = 12


@dataclass(frozen=True)
class SandboxConf:
    """Per-sandbox settings: who is asking, where unknown names go, whether ndots was set."""

    sandbox_id: str
    upstreams: tuple[str, ...] = ()
    ndots_set: bool = False


def parse(wire: bytes) -> tuple[dns.message.Message | None, bytes | None]:
    """(query, None) to go on, (None, reply) for an error reply, (None, None) to drop."""
    if len(wire) < HEADER_LEN or wire[2] & 0x80:  # too short, or a response (no loops)
        return None, None
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # DNSException, and plain ValueError/KeyError on some garbage
        return None, _header_only(wire, dns.rcode.FORMERR)
    if query.opcode() != dns.opcode.QUERY:
        return None, _error(query, dns.rcode.NOTIMP)
    if len(query.question) != 1:
        return None, _error(query, dns.rcode.FORMERR)
    return query, None


def _header_only(wire: bytes, rcode: int) -> bytes:
    """A reply to a message too broken to parse: same id, QR, opcode and RD kept, no sections."""
    flags = 0x8000 | (wire[2] & 0x79) << 8 | rcode
    return wire[:2] + flags.to_bytes(2, "big") + bytes(8)


def _error(query: dns.message.Message, rcode: int) -> bytes:
    resp = dns.message.make_response(query, recursion_available=True, our_payload=OUR_PAYLOAD)
    resp.set_rcode(rcode)
    resp.question = resp.question[:1]
    return resp.to_wire(max_size=UDP_MIN_SIZE, prefer_truncation=True)


def servfail(query: dns.message.Message) -> dns.message.Message:
    resp = dns.message.make_response(query, recursion_available=True, our_payload=OUR_PAYLOAD)
    resp.set_rcode(dns.rcode.SERVFAIL)
    return resp


def answer_locally(
    records: DnsRecords, conf: SandboxConf, query: dns.message.Message,
    shuffle: Callable[[list], None] | None = random.shuffle,
) -> dns.message.Message | None:
    """The reply shoal gives itself, or None when the query must go upstream."""
    q = query.question[0]
    if q.rdclass != dns.rdataclass.IN:
        return None
    if q.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return _address_answer(records, conf, query, shuffle)
    if q.rdtype == dns.rdatatype.PTR:
        return _ptr_answer(records, conf, query)
    return None


def _local_response(query: dns.message.Message) -> dns.message.Message:
    resp = dns.message.make_response(query, recursion_available=True, our_payload=OUR_PAYLOAD)
    resp.flags |= dns.flags.AA
    return resp


def _address_answer(records, conf, query, shuffle) -> dns.message.Message | None:
    q = query.question[0]
    family = 4 if q.rdtype == dns.rdatatype.A else 6
    res = records.resolve(conf.sandbox_id, q.name.to_text(), family)
    if res.addresses:
        resp = _local_response(query)
        addrs = list(res.addresses)
        if shuffle is not None and len(addrs) > 1:
            shuffle(addrs)
        resp.answer.append(dns.rrset.from_text_list(q.name, TTL, "IN", q.rdtype, addrs))
        return resp
    if res.known:
        return _local_response(query)
    if conf.ndots_set and len(q.name.labels) <= 2:  # one label plus the root
        return dns.message.make_response(query, recursion_available=True, our_payload=OUR_PAYLOAD)
    return None


def _ptr_answer(records, conf, query) -> dns.message.Message | None:
    q = query.question[0]
    try:
        ip = dns.reversename.to_address(q.name)
    except (dns.exception.DNSException, ValueError):
        return None
    name = records.reverse(conf.sandbox_id, ip)
    if name is None:
        return None
    resp = _local_response(query)
    resp.answer.append(dns.rrset.from_text(q.name, TTL, "IN", "PTR", name.rstrip(".") + "."))
    return resp


def render(response: dns.message.Message, query: dns.message.Message, *, udp: bool) -> bytes:
    """Wire form, cut to what the client accepts over UDP (whole records, TC set)."""
    if udp:
        limit = max(UDP_MIN_SIZE, query.payload) if query.edns >= 0 else UDP_MIN_SIZE
    else:
        limit = TCP_MAX_SIZE
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        pass
    # dnspython truncates between RRsets; one record per RRset keeps as many as fit.
    for section in (response.answer, response.authority, response.additional):
        section[:] = [_single(rrset, rd) for rrset in section for rd in rrset]
    return response.to_wire(max_size=limit, prefer_truncation=True)


def _single(rrset: dns.rrset.RRset, rdata) -> dns.rrset.RRset:
    one = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype, rrset.covers)
    one.add(rdata, rrset.ttl)
    return one


Forward = Callable[[dns.message.Message, Sequence[str], bool], Awaitable["dns.message.Message | None"]]


class Resolver:
    """The message pipeline, with the forwarder injected (a fake in unit tests)."""

    def __init__(self, records: DnsRecords, forward: Forward, shuffle: Callable[[list], None] | None = random.shuffle):
        self.records = records
        self._forward = forward
        self._shuffle = shuffle

    def prepare(self, conf: SandboxConf, wire: bytes, *, udp: bool) -> tuple[bytes | None, dns.message.Message | None]:
        """Synchronous part: (reply, None) when answered here, (None, query) to forward,
        (None, None) to drop.  Lets the UDP path answer local names without a task."""
        query, reply = parse(wire)
        if query is None:
            return reply, None
        local = answer_locally(self.records, conf, query, self._shuffle)
        if local is None:
            return None, query
        return render(local, query, udp=udp), None

    async def forward(self, conf: SandboxConf, query: dns.message.Message, *, udp: bool) -> bytes:
        resp = None
        if conf.upstreams:
            resp = await self._forward(query, conf.upstreams, not udp)
        try:
            return render(resp if resp is not None else servfail(query), query, udp=udp)
        except Exception:  # an upstream reply dnspython cannot render again
            return render(servfail(query), query, udp=udp)

    async def handle(self, conf: SandboxConf, wire: bytes, *, udp: bool) -> bytes | None:
        """The whole pipeline for one message; None means send nothing."""
        reply, query = self.prepare(conf, wire, udp=udp)
        if query is None:
            return reply
        return await self.forward(conf, query, udp=udp)
