"""`shoal system check [--repair]`: the daemon's invariant checker, for users.

Exit status 0 when nothing is wrong, 1 when something is (after `--repair`: when
something is left), so scripts and monitoring can call it as they call a health check.
"""

from __future__ import annotations

import json
from typing import Any

import click

from shoal.cli.cmdutil import AppContext, echo_raw, pass_app


def register(root: click.Group) -> None:
    @root.group("system", short_help="Check and repair shoald's state")
    def system() -> None:
        """Check that the kernel, firewall, ports, runtime and DNS match shoald's store."""

    system.add_command(check)


def _table(findings: list[dict[str, Any]]) -> str:
    rows = [("AREA", "SUBJECT", "PROBLEM", "REPAIR")]
    rows += [(f["Area"], f["Subject"], f["Problem"], "yes" if f["Repairable"] else "restart") for f in findings]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() + "\n"
                   for r in rows)


@click.command("check", short_help="Report every difference between shoald's store and the kernel")
@click.option("--repair", is_flag=True, help="Make the kernel, firewall, held ports and DNS match the store "
                                              "first, then report what is left")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Output format")
@pass_app
def check(app: AppContext, repair: bool, fmt: str) -> None:
    """Compare the store with the controller's live objects, the kernel (links, addresses,
    namespaces), nftables, held host ports, the runtime, IPAM and the embedded DNS.

    Findings marked "restart" are fixed by restarting shoald, which rebuilds its state
    from the store. Exit status 1 when anything is reported."""
    client = app.client()
    data = client.post_json("/shoal/check/repair") if repair else client.get_json("/shoal/check")
    findings = data.get("Findings") or []
    if fmt == "json":
        echo_raw(json.dumps(data, indent=2) + "\n")
    else:
        for line in data.get("Repaired") or []:
            echo_raw(f"repaired: {line}\n")
        echo_raw(_table(findings) if findings else "no problems found\n")
    if findings:
        raise SystemExit(1)
