"""Passing a shoal bridge's traffic through dockerd's iptables rules (its DOCKER-USER chain).

A dockerd in the same network namespace sets the filter FORWARD policy to DROP and
accepts only its own bridges' traffic there; with br_netfilter on (dockerd turns
`bridge-nf-call-iptables` on whenever it makes a bridge) even frames *bridged* between two
containers of one shoal network go through that chain, and routed traffic always does.
An accept in shoal's own nftables table does not override a drop in another table's base
chain: each base chain on a hook must accept the packet. So for each bridge of a network
served to dockerd, shoal inserts two rules at the head of DOCKER-USER, the chain dockerd
creates for its users, jumps to first from FORWARD and never flushes:

    -i BRIDGE -j ACCEPT      -o BRIDGE -j ACCEPT     (comment shoal:<mark>)

and leaves the policy itself (isolation between networks, ICC, --internal, published
ports only inbound) to shoal's own tables, which see the same packets. The rules are
found again by their comment, so adding is idempotent and removing takes exactly ours.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess

from shoal.errors import ShoalError

log = logging.getLogger("shoal.firewall.dockeruser")
CHAIN = "DOCKER-USER"
TOOLS = ("iptables", "ip6tables")


class DockerUserError(ShoalError):
    pass


class DockerUser:
    """The rules for one bridge; a family whose tool or chain is missing (dockerd with
    --iptables=false, or without --ip6tables) is skipped: nothing of dockerd drops there."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout

    async def allow(self, bridge: str, mark: str) -> list[str]:
        """-> the families (tools) given the rules; idempotent."""
        done = []
        for tool in TOOLS:
            if not await self._has_chain(tool):
                continue
            for rule in _rules(bridge, mark):
                if await self._run(tool, "-C", CHAIN, *rule, check=False) != 0:
                    await self._run(tool, "-I", CHAIN, "1", *rule)
            done.append(tool)
        return done

    async def revoke(self, bridge: str, mark: str) -> None:
        """Idempotent: deletes each of our rules as long as it is there."""
        for tool in TOOLS:
            if not await self._has_chain(tool):
                continue
            for rule in _rules(bridge, mark):
                for _ in range(8):  # the same rule inserted twice by hand: all copies
                    if await self._run(tool, "-D", CHAIN, *rule, check=False) != 0:
                        break

    async def present(self, bridge: str, mark: str) -> bool | None:
        """True/False: our rules are (not) all there; None: no dockerd chain to need them."""
        seen = None
        for tool in TOOLS:
            if not await self._has_chain(tool):
                continue
            for rule in _rules(bridge, mark):
                if await self._run(tool, "-C", CHAIN, *rule, check=False) != 0:
                    return False
            seen = True
        return seen

    async def _has_chain(self, tool: str) -> bool:
        try:
            return await self._run(tool, "-S", CHAIN, check=False) == 0
        except DockerUserError:
            return False

    async def _run(self, tool: str, *args: str, check: bool = True) -> int:
        argv = [tool, "-w", "5", *args]
        try:
            proc = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=self.timeout)
        except FileNotFoundError:
            raise DockerUserError(f"{tool} is not installed") from None
        except subprocess.TimeoutExpired:
            raise DockerUserError(f"{' '.join(argv)} did not finish in {self.timeout:.0f} s") from None
        if check and proc.returncode != 0:
            raise DockerUserError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
        return proc.returncode


def _rules(bridge: str, mark: str) -> list[list[str]]:
    comment = ["-m", "comment", "--comment", f"shoal:{mark}"]
    return [["-i", bridge, *comment, "-j", "ACCEPT"], ["-o", bridge, *comment, "-j", "ACCEPT"]]
