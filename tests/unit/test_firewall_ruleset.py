"""The ruleset builder: golden files, nft's own dry run, and full == incremental (in memory).

Regenerate the golden files with `SHOAL_UPDATE_GOLDEN=1 pytest tests/unit/test_firewall_ruleset.py`.
The dry runs need root and `nft`; they run in a fresh, unnamed namespace (`unshare --net`),
so the machine's own ruleset is never involved.
"""

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shoal.errors import Conflict
from shoal.firewall import EndpointConfig, NetworkConfig, Nft, PortMapping, State
from shoal.firewall.elements import SETS, apply_changes, diff, elements
from shoal.firewall.ruleset import TABLES, cleanup_batch, diff_batch, full_batch

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "nftables"

DEFAULT = NetworkConfig("shoal0", ("172.17.0.0/16",))
FRONT = NetworkConfig("br-front", ("172.18.0.0/16",), ("fd00:18::/64",))
BACK = NetworkConfig("br-back", ("172.19.0.0/16",), icc=False)
VAULT = NetworkConfig("br-vault", ("172.20.0.0/16",), ("fd00:20::/64",), internal=True)
PLAIN = NetworkConfig("br-plain", ("172.21.0.0/16",), masquerade=False)
LOCAL = NetworkConfig("br-local", ("172.22.0.0/16",), host_binding_ipv4="127.0.0.1")

R1 = NetworkConfig("rt3fa9c1", ("10.64.0.0/16",), routed=1068089777)  # nat-outgoing (masquerade) on
R2 = NetworkConfig("rt77b0e2", ("10.65.0.0/16",), routed=2008081122, internal=True)
R3 = NetworkConfig("rt0d11aa", ("10.66.0.0/16",), routed=219261610, masquerade=False)
ROUTED = State(
    (DEFAULT, R1, R2, R3),
    (EndpointConfig("rt3fa9c1", "rt3fa9c1a0b1c", ("10.64.12.1",)),
     EndpointConfig("rt3fa9c1", "rt3fa9c1d2e3f", ("10.64.12.2",)),
     EndpointConfig("rt77b0e2", "rt77b0e29a8b7", ("10.65.40.1",))),
)

WEB = (
    PortMapping("tcp", 8080, "172.18.0.2", 80, "br-front"),
    PortMapping("tcp", 8080, "fd00:18::2", 80, "br-front"),
    PortMapping("udp", 5353, "172.18.0.3", 53, "br-front", host_ip="192.0.2.10"),
    PortMapping("tcp", 9000, "172.18.0.3", 7000, "br-front", count=3),
    PortMapping("tcp", 8443, "fd00:18::3", 443, "br-front", host_ip="2001:db8::10"),
)

STATES = {
    "empty": State(),
    "default_bridge": State((DEFAULT,)),
    "icc_on_and_off": State(
        (FRONT, BACK),
        (EndpointConfig("br-front", "veth0a", ("172.18.0.2", "fd00:18::2")),
         EndpointConfig("br-back", "veth1a", ("172.19.0.2",)), EndpointConfig("br-back", "veth1b", ("172.19.0.3",))),
    ),
    "internal_and_no_masquerade": State(
        (VAULT, PLAIN),
        ports=(PortMapping("tcp", 8081, "172.20.0.2", 80, "br-vault"),),  # internal: never published
    ),
    "published_v4_v6_ranges": State((DEFAULT, FRONT), ports=WEB),
    "routed_networks": ROUTED,
    "host_binding_ipv4": State(
        (LOCAL,),
        ports=(PortMapping("tcp", 8082, "172.22.0.2", 80, "br-local"),
               PortMapping("tcp", 8083, "172.22.0.2", 81, "br-local", host_ip="0.0.0.0")),
    ),
}

DIFFS = {
    "diff_publish": (STATES["icc_on_and_off"], STATES["icc_on_and_off"].with_ports(WEB)),
    "diff_routed_endpoint_leaves": (ROUTED, ROUTED.without_endpoint("rt3fa9c1d2e3f")),
    "diff_remove_network": (STATES["icc_on_and_off"], STATES["icc_on_and_off"].without_network("br-back")),
}


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.nft"
    if os.environ.get("SHOAL_UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; run with SHOAL_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from {path}; if intended, run with SHOAL_UPDATE_GOLDEN=1"


@pytest.mark.parametrize("name", sorted(STATES))
def test_full_ruleset_golden(name):
    check_golden(name, full_batch(STATES[name]))


@pytest.mark.parametrize("name", sorted(DIFFS))
def test_incremental_batch_golden(name):
    old, new = DIFFS[name]
    check_golden(name, diff_batch(old, new))


def test_cleanup_golden():
    check_golden("cleanup", cleanup_batch())


# --- nft's dry run ------------------------------------------------------------------------

def dry_run_nft() -> Nft:
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"):
        pytest.skip("nft dry run needs root, nft and unshare")
    return Nft(prefix=("unshare", "--net"))


@pytest.mark.parametrize("name", sorted(STATES))
def test_full_ruleset_passes_nft_check(name):
    dry_run_nft().run(full_batch(STATES[name]), check=True)


@pytest.mark.parametrize("name", sorted(DIFFS))
def test_incremental_batch_passes_nft_check(name):
    old, new = DIFFS[name]
    dry_run_nft().run(full_batch(old) + diff_batch(old, new), check=True)


def test_cleanup_passes_nft_check_with_and_without_tables():
    nft = dry_run_nft()
    nft.run(cleanup_batch(), check=True)
    nft.run(full_batch(STATES["icc_on_and_off"]) + cleanup_batch(), check=True)


# --- shape: the packet path does not depend on the state -------------------------------

def test_chains_are_the_same_for_every_state():
    def definitions(state):
        text = full_batch(state)
        return text[: text.index("add element")] if "add element" in text else text

    assert len({definitions(s) for s in STATES.values()}) == 1


def test_every_set_is_declared_in_its_table():
    text = full_batch(State())
    for family, name in SETS:
        block = text[text.index(f"table {family} shoal {{"):]
        assert f" {name} {{" in block[: block.index("\n}")]
    assert set(TABLES) == {family for family, _ in SETS}


def test_one_more_port_is_a_small_batch_however_many_exist():
    many = tuple(PortMapping("tcp", 10000 + i, f"172.17.{i // 250}.{i % 250 + 2}", 80, "shoal0") for i in range(2000))
    base = State((DEFAULT,), ports=many)
    extra = PortMapping("udp", 53, "172.17.0.2", 53, "shoal0")
    assert diff_batch(base, base.with_ports([extra])).count("\n") == 6  # two elements, two statements


def test_unchanged_state_gives_empty_batch():
    state = STATES["published_v4_v6_ranges"]
    assert diff_batch(state, state) == ""
    # an endpoint on an ICC-on network needs no rule at all
    assert diff_batch(state, state.with_endpoint(EndpointConfig("br-front", "veth9"))) == ""


def test_shared_published_element_survives_removing_one_mapping():
    any_ip = PortMapping("tcp", 8080, "172.17.0.2", 80, "shoal0")
    loopback = PortMapping("tcp", 8081, "172.17.0.2", 80, "shoal0", host_ip="127.0.0.1")
    both = State((DEFAULT,), ports=(any_ip, loopback))
    batch = diff_batch(both, both.without_ports([loopback]))
    assert "published4" not in batch and "127.0.0.1 . tcp . 8081" in batch


def test_same_host_port_to_two_places_is_a_conflict():
    a = PortMapping("tcp", 8080, "172.17.0.2", 80, "shoal0")
    b = PortMapping("tcp", 8080, "172.17.0.3", 80, "shoal0")
    with pytest.raises(Conflict, match="tcp . 8080"):
        elements(State((DEFAULT,), ports=(a, b)))


def test_changed_map_value_is_deleted_then_added():
    old = State((NetworkConfig("br-x", ("10.1.0.0/24",)),))
    new = old.with_network(NetworkConfig("br-x", ("10.1.0.0/24",), icc=False))
    assert diff_batch(old, new) == (
        'delete element inet shoal icc {\n\t"br-x" . "br-x"\n}\n'
        'add element inet shoal icc {\n\t"br-x" . "br-x" : drop\n}\n'
    )


# --- property: incremental == full, in memory --------------------------------------------

BRIDGES = ["br-a", "br-b", "br-c"]


@st.composite
def states(draw):
    nets = []
    for i, bridge in enumerate(draw(st.lists(st.sampled_from(BRIDGES), unique=True))):
        nets.append(NetworkConfig(
            bridge, (f"10.{i}.0.0/16",), (f"fd00:{i}::/64",) if draw(st.booleans()) else (),
            icc=draw(st.booleans()), masquerade=draw(st.booleans()), internal=draw(st.booleans()),
            host_binding_ipv4=draw(st.sampled_from(["", "0.0.0.0", "127.0.0.1", "2001:db8::1"])),
        ))
    if not nets:
        return State()
    bridge = st.sampled_from([n.bridge for n in nets])
    eps = draw(st.lists(st.builds(EndpointConfig, bridge, st.sampled_from(["v0", "v1", "v2", "v3"])),
                        unique_by=lambda e: e.port))
    addresses = st.sampled_from([("10.9.0.2", ""), ("10.9.0.2", "127.0.0.1"),
                                 ("fd00:9::2", ""), ("fd00:9::2", "2001:db8::1")])
    ports = [
        PortMapping(proto, host_port, container_ip, container_port, b, host_ip, count)
        for proto, host_port, (container_ip, host_ip), container_port, b, count in draw(st.lists(st.tuples(
            st.sampled_from(["tcp", "udp"]), st.integers(8000, 8010), addresses, st.integers(80, 82), bridge,
            st.integers(1, 3)), max_size=4))
    ]
    return State(tuple(nets), tuple(eps), tuple(ports))


def elements_or_none(state):
    try:
        return elements(state)
    except Conflict:
        return None


@settings(max_examples=300, deadline=None)
@given(states(), states())
def test_diff_turns_one_state_into_the_other(a, b):
    ea, eb = elements_or_none(a), elements_or_none(b)
    assume(ea is not None and eb is not None)
    changes = diff(ea, eb)
    assert apply_changes(ea, changes) == eb
    ops = [c.op for c in changes]
    assert ops == sorted(ops, key=lambda op: op != "delete")
    assert diff(ea, ea) == []


@settings(max_examples=100, deadline=None)
@given(states())
def test_full_batch_holds_every_element(state):
    found = elements_or_none(state)
    assume(found is not None)
    text = full_batch(state)
    for items in found.values():
        for key, value in items.items():
            assert (f"\t{key} : {value}" if value else f"\t{key}") in text
