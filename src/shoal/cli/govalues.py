"""Go value semantics for the template engine: printing, truthiness, type names, JSON.

Docker renders `--format` templates against Go values, so the same data prints differently
depending on its Go type: a typed nil map prints `map[]` and encodes as `null`, a struct prints
as `{a b c}`, a `time.Time` prints as `2016-10-19 04:33:30.36 +0000 UTC`. Plain Python values
model the untyped JSON docker decodes on its fallback path (`map[string]interface {}`,
`[]interface {}`, `json.Number`); the `Go*` classes carry the extra type information.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable


class _NoValue:
    """Go's invalid reflect.Value: what a missing map key evaluates to; prints `<no value>`.
    Use the NO_VALUE instance and compare with `is`."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()


class JsonNumber(str):
    """A JSON number kept as its source text, like Go's `json.Number` (docker decodes with UseNumber)."""


def decode_raw(text: str | bytes) -> Any:
    """Decode daemon JSON the way docker's inspect fallback does (numbers stay textual)."""
    return json.loads(text, parse_int=JsonNumber, parse_float=JsonNumber)


class GoValue:
    """Base for values that know their Go type. Subclasses override what differs."""

    go_type = "interface {}"

    def go_str(self) -> str:
        """fmt's %v rendering."""
        raise NotImplementedError

    def go_json(self) -> str:
        """encoding/json rendering (compact, no HTML escaping)."""
        raise NotImplementedError

    def truthy(self) -> bool:
        return True

    def length(self) -> int | None:
        """len() of the value, or None when Go's len would reject the type."""
        return None

    def field(self, name: str) -> Any:
        """Value of field/key `name`; raise KeyError when the type has no such field."""
        raise KeyError(name)

    def method(self, name: str) -> Callable[..., Any] | None:
        """A bound method callable from templates, or None."""
        return None

    def index(self, key: Any) -> Any:
        raise TypeError(f"can't index item of type {self.go_type}")

    def iterate(self) -> list[tuple[Any, Any]] | None:
        """(key, element) pairs for `range`, or None when the value cannot be ranged over."""
        return None


class GoStruct(GoValue):
    """A Go struct: prints `{v1 v2 ...}` in field order; JSON follows struct tags."""

    def __init__(self, go_type: str, fields: list[tuple[str, str, Any, bool]]) -> None:
        # Each field: (Go name, JSON key, value, omitempty).
        self.go_type = go_type
        self.fields = fields
        self._by_name = {name: value for name, _, value, _ in fields}

    def go_str(self) -> str:
        return "{" + " ".join(fmt_v(value) for _, _, value, _ in self.fields) + "}"

    def go_json(self) -> str:
        parts = []
        for _, key, value, omitempty in self.fields:
            if omitempty and _is_empty(value):
                continue
            parts.append(encode_json(key) + ":" + encode_json(value))
        return "{" + ",".join(parts) + "}"

    def field(self, name: str) -> Any:
        return self._by_name[name]


class GoMap(GoValue):
    """A typed Go map (`map[string]T`); `items is None` models a nil map."""

    def __init__(self, elem_type: str, items: dict[str, Any] | None, zero: Any = "") -> None:
        self.go_type = f"map[string]{elem_type}"
        self.items = items
        self.zero = zero

    def go_str(self) -> str:
        return fmt_v(self.items or {})

    def go_json(self) -> str:
        return "null" if self.items is None else encode_json(self.items)

    def truthy(self) -> bool:
        return bool(self.items)

    def length(self) -> int:
        return len(self.items or {})

    def field(self, name: str) -> Any:
        return (self.items or {}).get(name, NO_VALUE)

    def index(self, key: Any) -> Any:
        if not isinstance(key, str):
            raise TypeError(f"value has type {type_name(key)}; should be string")
        return (self.items or {}).get(key, self.zero)

    def iterate(self) -> list[tuple[Any, Any]]:
        items = self.items or {}
        return [(k, items[k]) for k in sorted(items)]


class GoSlice(GoValue):
    """A typed Go slice (`[]T`); `items is None` models a nil slice."""

    def __init__(self, elem_type: str, items: list[Any] | None) -> None:
        self.go_type = f"[]{elem_type}"
        self.elem_type = elem_type
        self.items = items

    def go_str(self) -> str:
        return fmt_v(self.items or [])

    def go_json(self) -> str:
        return "null" if self.items is None else encode_json(self.items)

    def truthy(self) -> bool:
        return bool(self.items)

    def length(self) -> int:
        return len(self.items or [])

    def index(self, key: Any) -> Any:
        return _list_index(self.items or [], key)

    def iterate(self) -> list[tuple[Any, Any]]:
        return list(enumerate(self.items or []))


class GoTime(GoValue):
    """A `time.Time` decoded from RFC 3339 text: %v is Go's Time.String(), JSON is the text."""

    go_type = "time.Time"

    def __init__(self, text: str) -> None:
        self.text = text

    def go_str(self) -> str:
        return go_time_string(self.text)

    def go_json(self) -> str:
        return encode_json(self.text or "0001-01-01T00:00:00Z")

    def method(self, name: str) -> Callable[..., Any] | None:
        """The simple accessors (`{{.Created.Year}}`, `.Unix`, ...) templates commonly use."""
        m = _RFC3339.match(self.text or "0001-01-01T00:00:00Z")
        if not m or name not in _TIME_PARTS:
            return None
        if name == "Unix":
            return lambda: _unix_seconds(m)
        return lambda: int(m.group(_TIME_PARTS[name]))


def _list_index(items: list[Any], key: Any) -> Any:
    if isinstance(key, bool) or not isinstance(key, int):
        raise TypeError(f"cannot index slice/array with type {type_name(key)}")
    if key < 0 or key >= len(items):
        raise IndexError(f"index out of range: {key}")
    return items[key]


def _is_empty(value: Any) -> bool:
    """encoding/json's omitempty test."""
    if isinstance(value, (GoMap, GoSlice)):
        return not value.items
    if isinstance(value, (GoValue, JsonNumber)):
        return False
    if value is None:
        return True
    if isinstance(value, (bool, str, int, float, list, dict)):
        return not value
    return False


# ---------------------------------------------------------------------------------------------
# Printing (fmt %v) and template output


def fmt_v(value: Any) -> str:
    """Render like fmt.Sprint(value) would for the Go value this Python value models."""
    if value is None:
        return "<nil>"
    if value is NO_VALUE:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{fmt_v(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(fmt_v(v) for v in value) + "]"
    if isinstance(value, GoValue):
        return value.go_str()
    return str(value)


def print_value(value: Any) -> str:
    """What `{{X}}` prints: a nil interface (JSON null) prints `<no value>` like text/template."""
    if value is None or value is NO_VALUE:
        return "<no value>"
    return fmt_v(value)


def go_float(value: float, for_json: bool = False) -> str:
    """Shortest float text as Go prints it: fmt %v (exponent from 1e+06) or encoding/json."""
    if value != value or value in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(value)]
    if value == 0:
        return "0"
    sign, digits, exp = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + int(exp)  # position of the decimal point within `text`
    x = point - 1
    prefix = "-" if sign else ""
    use_exp = (abs(value) < 1e-6 or abs(value) >= 1e21) if for_json else (x < -4 or x >= 6)
    if use_exp:
        mant = text[0] + ("." + text[1:] if len(text) > 1 else "")
        width = 1 if for_json else 2
        return f"{prefix}{mant}e{'-' if x < 0 else '+'}{abs(x):0{width}d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


# ---------------------------------------------------------------------------------------------
# Types, truthiness


def type_name(value: Any) -> str:
    """The dynamic Go type name used in template error messages."""
    if isinstance(value, GoValue):
        return value.go_type
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, JsonNumber):
        return "json.Number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    return "<nil>"


def truthy(value: Any) -> bool:
    """text/template's isTrue: zero values and empty containers are false."""
    if value is None or value is NO_VALUE:
        return False
    if isinstance(value, GoValue):
        return value.truthy()
    if isinstance(value, (bool, int, float)):
        return bool(value)
    return len(value) > 0


def length(value: Any) -> int | None:
    """Go's len: bytes for strings, entries for containers, None for unsupported types."""
    if isinstance(value, GoValue):
        return value.length()
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, (dict, list)):
        return len(value)
    return None


# ---------------------------------------------------------------------------------------------
# JSON the way encoding/json writes it (docker's `json` function: no HTML escaping)


def encode_json(value: Any) -> str:
    """Compact JSON; plain dicts are Go maps (sorted keys), GoStruct keeps field order."""
    if value is None or value is NO_VALUE:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, JsonNumber):
        return str(value)
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_json_string(str(k))}:{encode_json(value[k])}" for k in sorted(value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(encode_json(v) for v in value) + "]"
    if isinstance(value, GoValue):
        return value.go_json()
    return _json_string(str(value))


def _json_string(text: str) -> str:
    out = json.dumps(text, ensure_ascii=False)
    return out.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _json_float(value: float) -> str:
    return go_float(value, for_json=True)


# ---------------------------------------------------------------------------------------------
# time.Time.String()

_TIME_PARTS = {"Year": 1, "Day": 3, "Hour": 4, "Minute": 5, "Second": 6, "Unix": 0}
_RFC3339 = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)$"
)


def go_time_string(text: str) -> str:
    """Format an RFC 3339 timestamp like Go's Time.String() after json.Unmarshal.

    `Z` becomes `+0000 UTC`; a numeric offset keeps the local zone's name when it matches the
    local offset at that instant, otherwise Go prints the offset twice (`+0200 +0200`).
    """
    if not text:
        return "0001-01-01 00:00:00 +0000 UTC"
    m = _RFC3339.match(text)
    if not m:
        return text
    year, mon, day, hh, mm, ss, frac, zone = m.groups()
    frac = (frac or "")[:10].rstrip("0")
    frac = "" if frac == "." else frac
    stamp = f"{year}-{mon}-{day} {hh}:{mm}:{ss}{frac}"
    if zone in ("Z", "z"):
        return f"{stamp} +0000 UTC"
    offset = zone.replace(":", "")
    return f"{stamp} {offset} {_zone_name(m, zone) or offset}"


def _zone_name(m: re.Match[str], zone: str) -> str | None:
    """The local zone's abbreviation when it uses `zone`'s offset at that instant (Go's rule)."""
    sign = -1 if zone[0] == "-" else 1
    offset = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    year, mon, day, hh, mm, ss = (int(g) for g in m.groups()[:6])
    try:
        utc = datetime(year, mon, day, hh, mm, ss, tzinfo=timezone.utc).timestamp() - offset
        local = datetime.fromtimestamp(utc).astimezone()
    except (ValueError, OverflowError, OSError):
        return None
    delta = local.utcoffset()
    if delta is not None and int(delta.total_seconds()) == offset:
        return local.tzname()
    return None


def _unix_seconds(m: re.Match[str]) -> int:
    year, mon, day, hh, mm, ss = (int(g) for g in m.groups()[:6])
    zone = m.group(8)
    offset = 0 if zone in ("Z", "z") else (-1 if zone[0] == "-" else 1) * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    base = datetime(year, mon, day, hh, mm, ss, tzinfo=timezone.utc)
    return int((base - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds()) - offset
