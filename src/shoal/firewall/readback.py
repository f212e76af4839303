"""What the kernel's shoal tables hold, read back and compared with what they should hold.

The firewall keeps its state in memory and sends only element changes, so a ruleset
flushed or edited from outside (`nft flush ruleset`, a firewalld reload) goes unseen
until a batch fails. Reading the tables back (`nft -j list table`) and comparing them
with the tracked contents turns that into a finding, and lets the daemon rebuild.

- canonical(ref, key, value): one element in a form both sides can be compared in.
- parse(family, listing): the sets, maps and per-chain rule counts of one table's JSON.
- differences(want, have): readable lines for every element or chain that differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from shoal.firewall.elements import SETS, Elements, SetRef
from shoal.firewall.ruleset import TABLES

Canon = dict[SetRef, dict[str, "str | None"]]


@dataclass
class TableView:
    """One family's table as read: None when the table does not exist."""

    elements: Canon = field(default_factory=dict)
    chains: dict[str, int] = field(default_factory=dict)  # name -> rule count


def _plain(key: str) -> str:
    return key.replace('"', "")


def canonical(want: Elements) -> Canon:
    """shoal's element text without nft quoting (the kernel hands back bare names)."""
    return {ref: {_plain(k): (_plain(v) if v is not None else None) for k, v in items.items()}
            for ref, items in want.items()}


def _atom(value: object) -> str:
    if isinstance(value, dict):
        if "prefix" in value:
            return f"{value['prefix']['addr']}/{value['prefix']['len']}"
        if "range" in value:
            lo, hi = value["range"]
            return f"{_atom(lo)}-{_atom(hi)}"
        if "concat" in value:
            return " . ".join(_atom(v) for v in value["concat"])
        if len(value) == 1:  # a verdict: {"accept": null}
            return next(iter(value))
    return str(value)


def parse(family: str, listing: str) -> TableView | None:
    """`listing` is `nft -j list table FAMILY shoal`; "" (no table) gives None."""
    if not listing.strip():
        return None
    view = TableView(elements={ref: {} for ref in SETS if ref[0] == family})
    for item in json.loads(listing).get("nftables", []):
        if "chain" in item:
            view.chains.setdefault(item["chain"]["name"], 0)
        elif "rule" in item:
            name = item["rule"]["chain"]
            view.chains[name] = view.chains.get(name, 0) + 1
        for kind in ("set", "map"):
            if kind not in item:
                continue
            ref = (family, item[kind]["name"])
            have = view.elements.setdefault(ref, {})
            for elem in item[kind].get("elem") or []:
                if kind == "map":
                    have[_atom(elem[0])] = _atom(elem[1])
                else:
                    have[_atom(elem["elem"]["val"] if isinstance(elem, dict) and "elem" in elem else elem)] = None
    return view


def differences(want: Elements, views: dict[str, TableView | None]) -> list[str]:
    """Every difference between the tracked contents and the tables, one line each."""
    out: list[str] = []
    expected = canonical(want)
    for family, chains in TABLES.items():
        view = views.get(family)
        if view is None:
            out.append(f"table {family} shoal is missing")
            continue
        for chain in chains:
            have = view.chains.get(chain.name)
            if have is None:
                out.append(f"chain {family} shoal {chain.name} is missing")
            elif have != len(chain.rules):
                out.append(f"chain {family} shoal {chain.name} has {have} rules, shoal wrote {len(chain.rules)}")
        for ref in (r for r in SETS if r[0] == family):
            if ref not in view.elements:
                out.append(f"set {family} shoal {ref[1]} is missing")
                continue
            out += _set_differences(ref, expected[ref], view.elements[ref])
    return out


def _set_differences(ref: SetRef, want: dict[str, str | None], have: dict[str, str | None]) -> list[str]:
    where = f"{ref[0]} shoal {ref[1]}"
    out = []
    for key in sorted(set(want) | set(have)):
        if key not in have:
            out.append(f"{where}: element {_show(key, want[key])} is missing")
        elif key not in want:
            out.append(f"{where}: element {_show(key, have[key])} is not shoal's state")
        elif want[key] != have[key]:
            out.append(f"{where}: element {key} maps to {have[key]}, not {want[key]}")
    return out


def _show(key: str, value: str | None) -> str:
    return key if value is None else f"{key} : {value}"
