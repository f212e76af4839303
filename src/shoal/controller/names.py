"""Docker-style default container names: `adjective_surname`, unique per daemon.

Our own short lists (adjectives, and surnames of people who shaped networking and
computing); what matters to users is the shape, not Docker's exact vocabulary.
"""

from __future__ import annotations

import random
from collections.abc import Callable

ADJECTIVES = (
    "agile", "amber", "ardent", "bold", "brave", "bright", "calm", "candid", "clever", "cosmic",
    "curious", "daring", "eager", "elegant", "epic", "fervent", "fluent", "gallant", "gentle", "glad",
    "happy", "hardy", "humble", "jolly", "keen", "kind", "lucid", "lucky", "merry", "mellow",
    "nimble", "noble", "patient", "plucky", "proud", "quick", "quiet", "rapid", "serene", "sharp",
    "shy", "silent", "sleek", "smart", "snappy", "steady", "stoic", "sunny", "swift", "tender",
    "tidy", "upbeat", "vivid", "warm", "wise", "witty", "zealous", "zen",
)

SURNAMES = (
    "baran", "berners", "bosack", "cerf", "clark", "davies", "diffie", "dijkstra", "engelbart",
    "estrin", "floyd", "hamming", "hellman", "hopper", "jacobson", "kahn", "karels", "kleinrock",
    "lamport", "lerner", "liskov", "lovelace", "merkle", "metcalfe", "mills", "mockapetris",
    "nagle", "needham", "perlman", "postel", "pouzin", "reed", "ritchie", "rivest", "saltzer",
    "shamir", "shannon", "stallings", "tanenbaum", "thompson", "tomlinson", "turing", "vixie",
    "wirth", "zhang",
)


def generate_name(taken: Callable[[str], bool], rng: random.Random | None = None) -> str:
    rng = rng or random.Random()
    for attempt in range(1000):
        name = f"{rng.choice(ADJECTIVES)}_{rng.choice(SURNAMES)}"
        if attempt >= 10:
            name += str(rng.randrange(10))
        if not taken(name):
            return name
    raise RuntimeError("could not find a free container name")
