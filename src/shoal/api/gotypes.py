"""Go's encoding/json, as a type check over an already-parsed JSON value.

dockerd decodes request bodies into Go structs, so a field of the wrong JSON kind is refused
before any handler runs, with a message naming the field. Handlers here read plain dicts;
checking them against a declared Go type first means no handler ever meets a string where it
expected an object (the "'str' object has no attribute 'get'" class of 500s).

Go's rules kept: `null` is fine anywhere (the zero value), unknown keys are ignored, struct
keys match exactly or else case-insensitively, an int field refuses a fraction or an
out-of-range number, and the message is Go's (1.20+): `json: cannot unmarshal <kind> into
Go struct field <Struct>.<path> of type <type>`, where <Struct> is the innermost struct being
decoded and <path> runs from the root, map keys and indexes left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from shoal.errors import InvalidParameter


@dataclass(frozen=True)
class Where:
    """The decoder's error context: innermost struct name and the field path from the root."""

    struct: str = ""
    path: tuple[str, ...] = ()

    def enter(self, struct: str, name: str) -> Where:
        return Where(struct, (*self.path, name))

    @property
    def field(self) -> str:
        """The path as clients and tests name a field: `HostConfig.PortBindings`."""
        return ".".join(self.path)


def json_kind(value: Any, literal: bool = False) -> str:
    """Go's word for a JSON value; `literal` adds a number's text, as Go does for ints."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return f"number {json.dumps(value)}" if literal else "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "value")


def mismatch(value: Any, gotype: str, where: Where, literal: bool = False) -> InvalidParameter:
    kind = json_kind(value, literal)
    if not where.path:
        return InvalidParameter(f"json: cannot unmarshal {kind} into Go value of type {gotype}")
    return InvalidParameter(
        f"json: cannot unmarshal {kind} into Go struct field {where.struct}.{where.field} of type {gotype}")


class GoType:
    """One Go type: `name` is reflect's spelling, used in messages."""

    name = ""

    def check(self, value: Any, where: Where = Where()) -> None:
        if value is not None:
            self._check(value, where)

    def _check(self, value: Any, where: Where) -> None:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of what this type accepts (null aside): the OpenAPI document's
        request bodies are these, so the document and the decoder cannot drift apart."""
        raise NotImplementedError


@dataclass(frozen=True)
class Str(GoType):
    name: str = "string"

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string"}

    def _check(self, value: Any, where: Where) -> None:
        if not isinstance(value, str):
            raise mismatch(value, self.name, where)


@dataclass(frozen=True)
class Bool(GoType):
    name: str = "bool"

    def json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}

    def _check(self, value: Any, where: Where) -> None:
        if not isinstance(value, bool):
            raise mismatch(value, self.name, where)


@dataclass(frozen=True)
class Int(GoType):
    """Go parses the number's text as an integer: `1.5`, `1e3` and overflow are refused."""

    name: str = "int"
    lo: int = -(1 << 63)
    hi: int = (1 << 63) - 1

    def json_schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.lo, "maximum": self.hi}

    def _check(self, value: Any, where: Where) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise mismatch(value, self.name, where)
        if isinstance(value, float) or not self.lo <= value <= self.hi:
            raise mismatch(value, self.name, where, literal=True)


def signed(bits: int, name: str) -> Int:
    return Int(name, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def unsigned(bits: int, name: str) -> Int:
    return Int(name, 0, (1 << bits) - 1)


@dataclass(frozen=True)
class Float(GoType):
    name: str = "float64"

    def json_schema(self) -> dict[str, Any]:
        return {"type": "number"}

    def _check(self, value: Any, where: Where) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise mismatch(value, self.name, where)


@dataclass(frozen=True)
class Slice(GoType):
    """`[]T`, or Go's fixed `[N]T` when `length` is given (extra elements are dropped)."""

    elem: GoType = Str()
    length: int | None = None
    alias: str = ""

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.alias or f"[{'' if self.length is None else self.length}]{self.elem.name}"

    def json_schema(self) -> dict[str, Any]:
        return {"type": "array", "items": self.elem.json_schema()}

    def _check(self, value: Any, where: Where) -> None:
        if not isinstance(value, list):
            raise mismatch(value, self.name, where)
        for item in value:
            self.elem.check(item, where)


@dataclass(frozen=True)
class StrSlice(GoType):
    """Docker's strslice.StrSlice (Cmd, Entrypoint, CapAdd...): a string or an array of them."""

    name: str = "strslice.StrSlice"

    def json_schema(self) -> dict[str, Any]:
        return {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}

    def _check(self, value: Any, where: Where) -> None:
        if isinstance(value, str):
            return
        if not isinstance(value, list) or not all(v is None or isinstance(v, str) for v in value):
            raise mismatch(value, self.name, where)


@dataclass(frozen=True)
class Map(GoType):
    """`map[string]T`; a named map type (nat.PortSet) gives `alias`."""

    elem: GoType = Str()
    alias: str = ""

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.alias or f"map[string]{self.elem.name}"

    def json_schema(self) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": self.elem.json_schema()}

    def _check(self, value: Any, where: Where) -> None:
        if not isinstance(value, dict):
            raise mismatch(value, self.name, where)
        for item in value.values():
            self.elem.check(item, where)


@dataclass(frozen=True)
class Struct(GoType):
    """A Go struct by its JSON keys; embedding is done by merging `fields` (Go promotes them)."""

    name: str = "struct {}"
    fields: dict[str, GoType] = field(default_factory=dict)

    @property
    def short(self) -> str:
        """reflect's Type.Name(): without the package, as Go's messages print the struct."""
        return self.name.rpartition(".")[2]

    def json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "object", "title": self.name}
        if self.fields:
            out["properties"] = {k: t.json_schema() for k, t in self.fields.items()}
        return out

    def lookup(self, key: str) -> tuple[str, GoType] | None:
        if key in self.fields:
            return key, self.fields[key]
        folded = key.casefold()
        return next(((k, t) for k, t in self.fields.items() if k.casefold() == folded), None)

    def _check(self, value: Any, where: Where) -> None:
        if not isinstance(value, dict):
            raise mismatch(value, self.name, where)
        for key, item in value.items():
            found = self.lookup(key)
            if found is not None:
                found[1].check(item, where.enter(self.short, found[0]))


EMPTY = Struct()
STRING = Str()
BOOL = Bool()
INT = Int()
INT64 = Int("int64")
STRINGS = Slice(STRING)
STRING_MAP = Map(STRING)
