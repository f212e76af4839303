"""dockerd's JSON progress messages, as `docker pull`/`push`/`load` draw them.

The docker CLI keeps one row per `id` and redraws it only for lines that carry both `id` and
`progressDetail`; any other line resets its table of rows. So every per-layer status goes
out with `progressDetail` (at least `{}`), and lines without an id are the only ones that
may scroll. Updates of a moving transfer are thinned to one per 512 KiB or 1% of the total,
whichever is smaller, as moby's progress reader does: a 100 MB layer is a few hundred lines,
not one per network read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

Emit = Callable[[dict], None]
STEP = 512 * 1024


def message(status: str, ident: str = "", *, detail: dict | None = None) -> dict:
    out: dict = {"status": status}
    if ident:
        out["id"] = ident
        out["progressDetail"] = detail if detail is not None else {}
    return out


def error_message(text: str) -> dict:
    """After the first line is out the status code is sent: errors travel in the stream."""
    return {"errorDetail": {"message": text}, "error": text}


def encode(msg: dict) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode() + b"\r\n"


def _units(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.4g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n:.4g}GB"


def bar(current: int, total: int, width: int = 50) -> str:
    """The rendered `progress` string older clients print (podman-py, some CI logs)."""
    if total <= 0:
        return f"{_units(current)}"
    filled = min(width, width * current // total)
    arrow = "=" * max(0, filled - 1) + (">" if filled < width else "=") if filled else ""
    return f"[{arrow:<{width}}] {_units(current):>8}/{_units(total)}"


@dataclass
class Transfer:
    """One layer's moving counter: `advance` emits when the step is passed."""

    emit: Emit
    ident: str
    status: str
    total: int
    current: int = 0
    _last: int = field(default=-1, repr=False)

    def step(self) -> int:
        if self.total <= 0:
            return STEP
        return max(1, min(STEP, self.total // 100))

    def advance(self, n: int) -> None:
        self.set(self.current + n)

    def set(self, current: int) -> None:
        self.current = current
        if self._last >= 0 and current - self._last < self.step() and current != self.total:
            return
        self._last = current
        detail = {"current": current, "total": self.total} if self.total > 0 else {"current": current}
        msg = message(self.status, self.ident, detail=detail)
        msg["progress"] = bar(current, self.total)
        self.emit(msg)
