"""Parsing Docker's string options into typed values, with messages that name the option."""

from __future__ import annotations

import ipaddress

from shoal.errors import InvalidParameter

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def _bad(raw: str, key: str, want: str) -> InvalidParameter:
    return InvalidParameter(f'invalid value "{raw}" for option {key}: expected {want}')


def parse_bool(options: dict[str, str], key: str, default: bool) -> bool:
    """Go's strconv.ParseBool spellings, as Docker accepts them."""
    raw = options.get(key)
    if raw is None or raw == "":
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise _bad(raw, key, "true or false")


def parse_int(options: dict[str, str], key: str, default: int, lo: int, hi: int) -> int:
    raw = options.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise _bad(raw, key, "an integer") from None
    if not lo <= value <= hi:
        raise _bad(raw, key, f"an integer from {lo} to {hi}")
    return value


def parse_ipv4(options: dict[str, str], key: str, default: str) -> str:
    raw = options.get(key)
    if raw is None or raw == "":
        return default
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise _bad(raw, key, "an IP address") from None


