"""The Firewall protocol the controller calls, and the bookkeeping every backend shares.

- Firewall: the verbs (apply_state, add/remove network, endpoint, ports, cleanup).
- TrackedFirewall: keeps the current State; each verb computes the next State, checks it
  (a host port published twice is a Conflict), and moves on only if the backend's
  `_commit` succeeded, so the state always says what the kernel holds.

How the controller uses it: `apply_state` once at start and restore (the whole state
rebuilt from the store); then one verb per change, after the kernel objects exist (a
network after its bridge, an endpoint after its veth) and before they are deleted.
"""

from __future__ import annotations

import asyncio
from typing import Callable, Iterable, Protocol

from shoal.firewall.config import EndpointConfig, NetworkConfig, PortMapping, State
from shoal.firewall.contents import Contents, Plan
from shoal.firewall.elements import Change, diff, endpoint_elements, network_elements, port_elements


class Firewall(Protocol):
    """Shoal's packet filtering and NAT for bridge networks, in the host namespace."""

    @property
    def state(self) -> State: ...

    async def apply_state(self, state: State) -> None:
        """Replace everything with the ruleset for `state` (start, restore, repair)."""

    async def add_network(self, network: NetworkConfig) -> None:
        """Add a network, or replace the one on the same bridge."""

    async def remove_network(self, bridge: str) -> None:
        """Remove a network with its endpoints and ports; unknown bridges are ignored."""

    async def add_endpoint(self, endpoint: EndpointConfig) -> None: ...

    async def remove_endpoint(self, endpoint: EndpointConfig) -> None: ...

    async def add_ports(self, ports: Iterable[PortMapping]) -> None:
        """Publish ports; all or none (Conflict if a host port is already taken)."""

    async def remove_ports(self, ports: Iterable[PortMapping]) -> None: ...

    async def cleanup(self) -> None:
        """Delete shoal's tables (`shoald --cleanup`); the state becomes empty."""

    async def drift(self) -> list[str]:
        """How the kernel's tables differ from the tracked state (changed from outside)."""

    async def rebuild(self) -> None:
        """Write the tracked state again as one full batch (after drift, or a failed batch)."""


class TrackedFirewall:
    """The verbs over a State; subclasses say how a transition reaches the kernel."""

    def __init__(self) -> None:
        self._state = State()
        self._lock = asyncio.Lock()
        # what the sets hold, kept in step with the state; `_changes` is the element diff
        # of the step being committed (backends send it instead of recomputing states)
        self._contents = Contents()
        self._changes: list[Change] = []

    @property
    def state(self) -> State:
        return self._state

    async def _commit(self, verb: str, old: State, new: State, *, full: bool) -> None:
        raise NotImplementedError

    async def _remove_all(self) -> None:
        raise NotImplementedError

    async def _move(self, verb: str, step: Callable[[State], State], *, full: bool = False,
                    plan: Callable[[State, Contents], Plan | None] | None = None) -> None:
        """`plan(old, contents)`: the exact change of a pure addition or removal, or None when
        the step replaces something; then the change costs its own elements, not the state's."""
        async with self._lock:
            new = step(self._state)
            planned = plan(self._state, self._contents) if plan else None
            if planned is None:
                contents = Contents.of(new)
                self._changes = diff(self._contents.values, contents.values)
            else:
                self._changes = planned.changes
            await self._commit(verb, self._state, new, full=full)
            if planned is None:
                self._contents = contents
            else:
                self._contents.apply(planned)
            self._state = new

    async def apply_state(self, state: State) -> None:
        await self._move("apply_state", lambda _: state, full=True)

    async def add_network(self, network: NetworkConfig) -> None:
        def plan(old: State, contents: Contents) -> Plan | None:
            return None if old.has_network(network.bridge) else contents.plan_add(network_elements(network))

        await self._move("add_network", lambda s: s.with_network(network), plan=plan)

    async def remove_network(self, bridge: str) -> None:
        def plan(old: State, contents: Contents) -> Plan:
            if not old.has_network(bridge):
                return contents.plan_remove(())
            net = old.network(bridge)
            items = [*network_elements(net)]
            items += [el for e in old.endpoints if e.bridge == bridge for el in endpoint_elements(e, net)]
            items += [el for p in old.ports if p.bridge == bridge for el in port_elements(p, net)]
            return contents.plan_remove(items)

        await self._move("remove_network", lambda s: s.without_network(bridge), plan=plan)

    async def add_endpoint(self, endpoint: EndpointConfig) -> None:
        def plan(old: State, contents: Contents) -> Plan | None:
            if any(e.port == endpoint.port for e in old.endpoints):
                return None
            return contents.plan_add(endpoint_elements(endpoint, old.network(endpoint.bridge)))

        await self._move("add_endpoint", lambda s: s.with_endpoint(endpoint), plan=plan)

    async def remove_endpoint(self, endpoint: EndpointConfig) -> None:
        def plan(old: State, contents: Contents) -> Plan:
            gone = [e for e in old.endpoints if e.port == endpoint.port]
            return contents.plan_remove([el for e in gone for el in endpoint_elements(e, old.network(e.bridge))])

        await self._move("remove_endpoint", lambda s: s.without_endpoint(endpoint.port), plan=plan)

    async def add_ports(self, ports: Iterable[PortMapping]) -> None:
        wanted = tuple(ports)

        def plan(old: State, contents: Contents) -> Plan:
            have = set(old.ports)
            new = [p for p in dict.fromkeys(wanted) if p not in have]
            return contents.plan_add([el for p in new for el in port_elements(p, old.network(p.bridge))])

        await self._move("add_ports", lambda s: s.with_ports(wanted), plan=plan)

    async def remove_ports(self, ports: Iterable[PortMapping]) -> None:
        gone = set(ports)

        def plan(old: State, contents: Contents) -> Plan:
            held = [p for p in old.ports if p in gone]
            return contents.plan_remove([el for p in held for el in port_elements(p, old.network(p.bridge))])

        await self._move("remove_ports", lambda s: s.without_ports(gone), plan=plan)

    async def cleanup(self) -> None:
        async with self._lock:
            await self._remove_all()
            self._state = State()
            self._contents = Contents()

    async def drift(self) -> list[str]:
        async with self._lock:
            return await self._drift()

    async def _drift(self) -> list[str]:
        """Backends that touch nothing cannot drift."""
        return []

    async def rebuild(self) -> None:
        await self._move("rebuild", lambda s: s, full=True)
