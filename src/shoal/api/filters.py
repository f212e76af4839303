"""The `filters` query parameter: both encodings, validated keys, Docker's matching rules."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import datetime

from shoal.errors import InvalidParameter

Filters = dict[str, list[str]]


def parse_filters(raw: str, allowed: set[str]) -> Filters:
    """Accept the Go CLI's `{"k":{"v":true}}` and docker-py's `{"k":["v"]}`."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidParameter(f"invalid filter: {raw}") from None
    if not isinstance(data, dict):
        raise InvalidParameter(f"invalid filter: {raw}")
    out: Filters = {}
    for key, value in data.items():
        if key not in allowed:
            raise InvalidParameter(f"invalid filter '{key}'")
        if isinstance(value, dict):
            out[key] = [k for k, v in value.items() if v]
        elif isinstance(value, list):
            out[key] = [str(v) for v in value]
        elif isinstance(value, str):
            out[key] = [value]
        else:
            raise InvalidParameter(f"invalid filter '{key}'")
    return out


def match_text(patterns: list[str], value: str) -> bool:
    """Docker matches name/id filters as regular expressions (so substrings match)."""
    for pattern in patterns:
        try:
            if re.search(pattern, value):
                return True
        except re.error:
            if pattern in value:
                return True
    return False


def match_labels(patterns: list[str], labels: dict[str, str]) -> bool:
    """Every `k` or `k=v` must hold (Docker ANDs label filters)."""
    for pattern in patterns:
        key, sep, value = pattern.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def parse_until(value: str, now: float | None = None) -> float:
    """A unix timestamp, an RFC 3339 date, or a Go duration like `24h` / `10m30s` ago."""
    now = time.time() if now is None else now
    try:
        return float(value)
    except ValueError:
        pass
    m = re.fullmatch(r"((?:\d+(?:\.\d+)?(?:h|m|s|ms))+)", value)
    if m:
        total = 0.0
        for num, unit in re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", value):
            total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
        return now - total
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidParameter(f"invalid filter 'until={value}': not a timestamp, date or duration") from None


def created_ts(created: str) -> float:
    try:
        return datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


PRUNE_FILTERS = {"until", "label", "label!"}


def prune_keeper(raw: str | None) -> Callable[[str, dict[str, str]], bool]:
    """Docker's prune filters (`until`, `label`, `label!`) as one test on an object's
    creation time and labels: True keeps the object. Parsed once, so a bad filter is a 400
    before anything is removed."""
    f = parse_filters(raw, PRUNE_FILTERS)
    until = min((parse_until(v) for v in f.get("until", [])), default=None)

    def keep(created: str, labels: dict[str, str]) -> bool:
        if until is not None and created_ts(created) >= until:
            return True
        if "label" in f and not match_labels(f["label"], labels):
            return True
        return "label!" in f and any(match_labels([p], labels) for p in f["label!"])

    return keep
