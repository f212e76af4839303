"""What the kernel's sets hold, with how many state items produce each element.

Two mappings to one container port produce the same `published4` element, so removing
one of them must not delete it: each element carries a count of its producers. With the
counts, adding or removing an item costs its own elements, whatever the state's size.

- Contents: the element values and counts of a State (`of`), kept in step by the
  firewall; `plan_add`/`plan_remove` compute a Plan without changing anything (a
  Conflict leaves everything as it was); `apply` makes a Plan true once nft took it.
- Plan: the nft changes of one step and the count changes behind them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from shoal.firewall.config import State
from shoal.firewall.elements import (
    SETS, SETS_ORDER, Change, Element, Elements, all_elements, elements, natural_key, published_twice,
)

Key = tuple[tuple[str, str], str]


@dataclass
class Plan:
    """`changes` for nft; `counts` to add (or subtract) per element; `values` of new ones."""

    changes: list[Change]
    counts: Counter = field(default_factory=Counter)
    values: dict[Key, "str | None"] = field(default_factory=dict)
    sign: int = 1


def _ordered(changes: Iterable[Change]) -> list[Change]:
    return sorted(changes, key=lambda c: (SETS_ORDER[c.ref], natural_key(c.key)))


class Contents:
    """`values` equals `elements(state)` of the state it was kept for."""

    def __init__(self) -> None:
        self.values: Elements = {ref: {} for ref in SETS}
        self.counts: Counter = Counter()

    @classmethod
    def of(cls, state: State) -> Contents:
        """From scratch; Conflict if one host port would lead to two places."""
        out = cls()
        out.values = elements(state)
        out.counts = Counter((ref, key) for ref, key, _ in all_elements(state))
        return out

    def plan_add(self, items: Iterable[Element]) -> Plan:
        plan = Plan([])
        for ref, key, value in items:
            k = (ref, key)
            have = plan.values[k] if k in plan.values else self.values[ref].get(key, _MISSING)
            if have is _MISSING:
                plan.values[k] = value
                plan.changes.append(Change("add", ref, key, value))
            elif have != value:
                raise published_twice(key, have, value)
            plan.counts[k] += 1
        plan.changes = _ordered(plan.changes)
        return plan

    def plan_remove(self, items: Iterable[Element]) -> Plan:
        """`items` must be elements of things the state holds (what `without_*` drops)."""
        counts = Counter((ref, key) for ref, key, _ in items)
        gone = [Change("delete", ref, key, self.values[ref][key])
                for (ref, key), n in counts.items() if self.counts[(ref, key)] <= n]
        return Plan(_ordered(gone), counts, sign=-1)

    def apply(self, plan: Plan) -> None:
        for (ref, key), n in plan.counts.items():
            left = self.counts[(ref, key)] + plan.sign * n
            if left > 0:
                self.counts[(ref, key)] = left
                if (ref, key) in plan.values:
                    self.values[ref][key] = plan.values[(ref, key)]
            else:
                del self.counts[(ref, key)]
                self.values[ref].pop(key, None)


_MISSING = object()
