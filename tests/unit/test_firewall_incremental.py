"""The tracked element contents and each step's changes, kept incrementally, equal a full recompute."""

import asyncio

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shoal.errors import Conflict, InvalidParameter
from shoal.firewall import EndpointConfig, NetworkConfig, NoneFirewall, PortMapping
from shoal.firewall.elements import diff, elements

NETS = [NetworkConfig("br-a", subnets4=("10.1.0.0/24",)), NetworkConfig("br-b", subnets4=("10.2.0.0/24",), icc=False),
        NetworkConfig("br-i", subnets4=("10.3.0.0/24",), internal=True)]
ops = st.lists(st.tuples(st.sampled_from(["ep", "port", "port2", "unport", "unport2", "unep", "net", "unnet"]), st.integers(0, 2),
                         st.integers(0, 2)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(ops)
@example([("port", 0, 0), ("port2", 0, 0), ("unport", 0, 0), ("unport2", 0, 0)])
def test_incremental_equals_full(program):
    async def go():
        fw = NoneFirewall()
        for net in NETS:
            await fw.add_network(net)
        for op, n, i in program:
            bridge = NETS[n].bridge
            m = PortMapping("tcp", 20000 + i, f"10.{n + 1}.0.{i + 2}", 80, bridge)
            # another host port to the same container port: one `published` element, two producers
            m2 = PortMapping("tcp", 30000 + i, f"10.{n + 1}.0.{i + 2}", 80, bridge)
            ep = EndpointConfig(bridge, f"veth{n}{i}")
            step = {"net": lambda: fw.add_network(NETS[n]), "unnet": lambda: fw.remove_network(bridge),
                    "ep": lambda: fw.add_endpoint(ep), "unep": lambda: fw.remove_endpoint(ep),
                    "port": lambda: fw.add_ports([m]), "unport": lambda: fw.remove_ports([m]),
                    "port2": lambda: fw.add_ports([m2]), "unport2": lambda: fw.remove_ports([m2])}[op]
            before = elements(fw.state)
            try:
                await step()
            except (Conflict, InvalidParameter):  # a port taken twice; a network that is gone
                continue
            after = elements(fw.state)
            assert fw._contents.values == after  # noqa: SLF001
            assert fw._changes == diff(before, after)  # noqa: SLF001 - exactly what a full diff says

    asyncio.run(go())


def test_conflict_leaves_state_unchanged():
    async def go():
        fw = NoneFirewall()
        await fw.add_network(NETS[0])
        await fw.add_ports([PortMapping("tcp", 8080, "10.1.0.2", 80, "br-a")])
        before = (fw.state, elements(fw.state), dict(fw._contents.counts))  # noqa: SLF001
        with pytest.raises(Conflict):
            await fw.add_ports([PortMapping("tcp", 8080, "10.1.0.3", 80, "br-a")])
        assert (fw.state, fw._contents.values, dict(fw._contents.counts)) == before  # noqa: SLF001

    asyncio.run(go())
