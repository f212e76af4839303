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
from shoal.firewall.elements import (
    additions, endpoint_elements, elements, network_elements, port_elements, with_added,
)


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


class TrackedFirewall:
    """The verbs over a State; subclasses say how a transition reaches the kernel."""

    def __init__(self) -> None:
        self._state = State()
        self._lock = asyncio.Lock()
        # the element contents of the current and the proposed state, computed once per
        # change (backends diff these instead of recomputing both from the states)
        self._elements = elements(self._state)
        self._next_elements = self._elements
        self._next_changes: list | None = None  # known exactly for pure additions

    @property
    def state(self) -> State:
        return self._state

    async def _commit(self, verb: str, old: State, new: State, *, full: bool) -> None:
        raise NotImplementedError

    async def _remove_all(self) -> None:
        raise NotImplementedError

    async def _move(self, verb: str, step: Callable[[State], State], *, full: bool = False,
                    added: Callable[[State, State], Iterable | None] | None = None) -> None:
        """`added(old, new)`: the elements a pure addition brings, or None when it is not one
        (it replaces something); then the change costs what it adds, not the state's size."""
        async with self._lock:
            new = step(self._state)
            self._next_changes = None
            items = added(self._state, new) if added else None
            if items is not None:
                items = list(items)
                self._next_elements = with_added(self._elements, items)
                self._next_changes = additions(self._elements, items)
            else:
                self._next_elements = elements(new)
            await self._commit(verb, self._state, new, full=full)
            self._state, self._elements = new, self._next_elements

    async def apply_state(self, state: State) -> None:
        await self._move("apply_state", lambda _: state, full=True)

    async def add_network(self, network: NetworkConfig) -> None:
        def added(old: State, new: State) -> Iterable | None:
            return None if old.has_network(network.bridge) else network_elements(network)

        await self._move("add_network", lambda s: s.with_network(network), added=added)

    async def remove_network(self, bridge: str) -> None:
        await self._move("remove_network", lambda s: s.without_network(bridge))

    async def add_endpoint(self, endpoint: EndpointConfig) -> None:
        def added(old: State, new: State) -> Iterable | None:
            if any(e.port == endpoint.port for e in old.endpoints):
                return None
            return endpoint_elements(endpoint, new.network(endpoint.bridge))

        await self._move("add_endpoint", lambda s: s.with_endpoint(endpoint), added=added)

    async def remove_endpoint(self, endpoint: EndpointConfig) -> None:
        await self._move("remove_endpoint", lambda s: s.without_endpoint(endpoint.port))

    async def add_ports(self, ports: Iterable[PortMapping]) -> None:
        wanted = tuple(ports)

        def added(old: State, new: State) -> Iterable:
            return [el for p in wanted for el in port_elements(p, new.network(p.bridge))]

        await self._move("add_ports", lambda s: s.with_ports(wanted), added=added)

    async def remove_ports(self, ports: Iterable[PortMapping]) -> None:
        gone = tuple(ports)
        await self._move("remove_ports", lambda s: s.without_ports(gone))

    async def cleanup(self) -> None:
        async with self._lock:
            await self._remove_all()
            self._state = State()
            self._elements = self._next_elements = elements(self._state)
