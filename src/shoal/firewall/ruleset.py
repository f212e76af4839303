"""nft text for shoal's two tables: fixed chains, data only in sets and maps.

Both tables are called `shoal` and live in the daemon's host namespace:

  inet shoal
    guard        prerouting, raw     a container may not reach the host's 127.0.0.0/8
    prerouting   nat, dstnat         to a local address: jump publish
    output       nat, -100           the host's own connections to a local address: jump publish
    publish      (jumped to)         DNAT through dnat4_host, dnat4, dnat6_host, dnat6
    forward      filter              established; same bridge (icc vmap); internal; published;
                                     anything else into a bridge is dropped
    postrouting  nat, srcnat         masquerade hairpin, 127.0.0.1 and egress
  bridge shoal
    forward      filter              ICC off: no IP between ports in icc_off_ports

Every lookup is one set or map lookup, so the packet path and the size of an update do
not grow with networks, endpoints or ports; a change is a handful of element adds/deletes.

- full_batch(state): `table` / `delete table` / definition / elements, one atomic batch.
- diff_batch(old, new): element deletes and adds only; "" when nothing changes.
- cleanup_batch(): removes both tables (idempotent).
- TABLES: the chains per family, for readers and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

from shoal.firewall.config import State
from shoal.firewall.elements import BRIDGE, INET, SETS, Change, SetRef, SetSpec, diff, elements

TABLE = "shoal"
HEADER = "# shoal firewall: generated from shoal's state; changes made here are overwritten"


@dataclass(frozen=True)
class Chain:
    """A chain; `hook` is the base-chain line without its trailing `;`, "" for a regular one."""

    name: str
    hook: str
    rules: tuple[str, ...]


def _rule(text: str, comment: str = "") -> str:
    return f'{text} comment "{comment}"' if comment else text


def guard_chain() -> Chain:
    """route_localnet=1 on a bridge would let a container reach the host's loopback services."""
    return Chain("guard", "type filter hook prerouting priority raw; policy accept", (
        _rule("iifname @bridges ip daddr 127.0.0.0/8 drop", "no container to the host's loopback"),
    ))


def prerouting_chain() -> Chain:
    """Traffic from other hosts and from containers to any of the host's addresses."""
    return Chain("prerouting", "type nat hook prerouting priority dstnat; policy accept", (
        "fib daddr type local jump publish",
    ))


def output_chain() -> Chain:
    """The host's own connections, 127.0.0.1 included; ::1 cannot leave lo (no route_localnet
    for IPv6), so it is left alone and the client sees a refusal instead of a timeout."""
    return Chain("output", "type nat hook output priority -100; policy accept", (
        "ip6 daddr ::1 return",
        "fib daddr type local jump publish",
    ))


def publish_chain() -> Chain:
    """A mapping for one host address wins over one for every address."""
    return Chain("publish", "", tuple(
        f"dnat {family} to {key} map @dnat{v}{suffix}"
        for v, family in ((4, "ip"), (6, "ip6"))
        for suffix, key in (("_host", f"{family} daddr . meta l4proto . th dport"), ("", "meta l4proto . th dport"))
    ))


def forward_chain() -> Chain:
    """Docker's isolation in one pass: a bridge is entered only from itself (ICC), by replies,
    or through a published port; internal bridges are neither left nor entered."""
    return Chain("forward", "type filter hook forward priority filter; policy accept", (
        "ct state established,related accept",
        _rule("iifname . oifname vmap @icc", "within one bridge"),
        _rule("iifname @internal drop", "internal: no egress"),
        _rule("oifname @internal drop", "internal: no ingress"),
        _rule("ct status dnat ip daddr . meta l4proto . th dport @published4 accept", "published port"),
        _rule("ct status dnat ip6 daddr . meta l4proto . th dport @published6 accept", "published port"),
        *routed_rules(),
        _rule("oifname @bridges drop", "other bridges, unpublished ports, direct access"),
    ))


def routed_rules() -> tuple[str, ...]:
    """Routed networks have no bridge: a routed endpoint's host veth is entered only from
    its own network's pool (whichever host the packet comes from), and an internal one is
    left only toward it. The pool's tag goes in the packet mark for the one lookup that
    compares it with the veth's (`ifname . mark`); the mark is cleared first, so a source
    outside every pool matches no member (a mark set before is lost on these packets
    only). IPv6 is not routed yet."""
    return (
        _rule("oifname @routed_ports meta mark set 0", "routed: no tag yet"),
        _rule("oifname @routed_ports meta mark set ip saddr map @routed_tags4", "routed: the source's network"),
        _rule("oifname . meta mark @routed_members accept", "routed: from its own network"),
        _rule("oifname @routed_ports drop", "routed: from anywhere else"),
        _rule("iifname @routed_internal meta mark set 0", "routed internal: no tag yet"),
        _rule("iifname @routed_internal meta mark set ip daddr map @routed_tags4",
              "routed internal: the destination's network"),
        _rule("iifname . meta mark @routed_members accept", "routed internal: within its network"),
        _rule("iifname @routed_internal drop", "routed internal: no egress"),
    )


def postrouting_chain() -> Chain:
    """Hairpin: a container reaching a published port of its own bridge must see the reply
    come back through the host, so the source becomes the gateway; likewise 127.0.0.1.
    Hairpin goes by source (a container address on the bridge it leaves by), not input interface: br_netfilter may bridge a DNAT'd
    packet back to its own bridge, and then postrouting has no input interface.
    Egress: routed from a masquerading bridge to anywhere (Docker's `-s SUBNET ! -o BRIDGE`,
    by the bridge it came from; what leaves by its own bridge is hairpin, masqueraded too)."""
    return Chain("postrouting", "type nat hook postrouting priority srcnat; policy accept", (
        _rule("ct status dnat oifname . ip saddr @hairpin4 masquerade", "hairpin"),
        _rule("ct status dnat oifname . ip6 saddr @hairpin6 masquerade", "hairpin"),
        _rule("oifname @bridges ip saddr 127.0.0.0/8 masquerade", "host loopback to a published port"),
        _rule("iifname @masquerading masquerade", "egress"),
        _rule("ip saddr @routed_masq4 ip daddr != @routed_pools4 masquerade", "routed: nat-outgoing"),
    ))


def bridge_forward_chain() -> Chain:
    """ICC off at L2, whether or not br_netfilter passes bridged traffic to inet; ARP stays."""
    return Chain("forward", "type filter hook forward priority filter; policy accept", (
        _rule("iifname @icc_off_ports meta protocol { ip, ip6 } drop", "ICC off"),
        _rule("oifname @icc_off_ports meta protocol { ip, ip6 } drop", "ICC off"),
    ))


TABLES: dict[str, tuple[Chain, ...]] = {
    INET: (guard_chain(), prerouting_chain(), output_chain(), publish_chain(), forward_chain(),
           postrouting_chain()),
    BRIDGE: (bridge_forward_chain(),),
}


def _set_lines(name: str, spec: SetSpec) -> list[str]:
    lines = [f"\t{'map' if spec.map else 'set'} {name} {{", f"\t\ttype {spec.type}"]
    if spec.interval:
        lines.append("\t\tflags interval")
    return lines + [f'\t\tcomment "{spec.comment}"', "\t}"]


def _chain_lines(chain: Chain) -> list[str]:
    lines = [f"\tchain {chain.name} {{"]
    if chain.hook:
        lines.append(f"\t\t{chain.hook};")
    return lines + [f"\t\t{rule}" for rule in chain.rules] + ["\t}"]


def table_lines(family: str) -> list[str]:
    """Add-then-delete makes the replace work whether or not the table exists."""
    lines = [f"table {family} {TABLE}", f"delete table {family} {TABLE}", f"table {family} {TABLE} {{"]
    for (fam, name), spec in SETS.items():
        if fam == family:
            lines += _set_lines(name, spec)
    for chain in TABLES[family]:
        lines += _chain_lines(chain)
    return lines + ["}"]


def _group_lines(op: str, ref: SetRef, changes: list[Change]) -> list[str]:
    """One element per line, so nft's error line numbers point at the element."""
    items = [c.key if op == "delete" or c.value is None else f"{c.key} : {c.value}" for c in changes]
    body = [f"\t{item}," for item in items[:-1]] + [f"\t{items[-1]}"]
    return [f"{op} element {ref[0]} {TABLE} {ref[1]} {{", *body, "}"]


def change_lines(changes: list[Change]) -> list[str]:
    lines: list[str] = []
    for (op, ref), group in groupby(changes, key=lambda c: (c.op, c.ref)):
        lines += _group_lines(op, ref, list(group))
    return lines


def full_batch(state: State) -> str:
    """The whole of shoal's firewall for `state`; nft applies it atomically or not at all."""
    lines = [HEADER]
    for family in TABLES:
        lines += table_lines(family)
    lines += change_lines(diff(elements(State()), elements(state)))
    return "\n".join(lines) + "\n"


def diff_batch(old: State, new: State) -> str:
    """Element changes only; applied to the ruleset of `old` it gives that of `new`."""
    return changes_batch(diff(elements(old), elements(new)))


def changes_batch(changes: list[Change]) -> str:
    lines = change_lines(changes)
    return "\n".join(lines) + "\n" if lines else ""


def cleanup_batch() -> str:
    """Remove shoal's tables, present or not (`shoald --cleanup`)."""
    lines = [HEADER]
    for family in TABLES:
        lines += [f"table {family} {TABLE}", f"delete table {family} {TABLE}"]
    return "\n".join(lines) + "\n"
