"""Functions available inside `--format` templates: Go's builtins plus docker's extras.

Each function declares its Go parameter types so the executor can reject arguments the way
text/template does (`wrong type for value; expected string; got bool`). Table headers run with
HEADER_FUNCS, docker's variants that return the header text unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from shoal.cli.govalues import (
    NO_VALUE,
    GoSlice,
    GoValue,
    _list_index,
    encode_json,
    fmt_v,
    length,
    truthy,
    type_name,
)


class FuncError(Exception):
    """Raised by a template function; reported as `error calling NAME: message`."""


@dataclass(frozen=True)
class Func:
    fn: Callable[..., Any]
    params: tuple[str, ...] = ()  # Go types: "any", "string", "int", "[]string"
    variadic: str | None = None  # type of any further arguments
    lazy: bool = False  # `and`/`or`: arguments are evaluated one at a time


# ---------------------------------------------------------------------------------------------
# docker's functions (cli/templates/templates.go)


def _split(text: str, sep: str) -> GoSlice:
    parts = list(text) if sep == "" else text.split(sep)
    return GoSlice("string", parts)


def _title(text: str) -> str:
    """strings.Title: upper-case the first letter of each word."""
    out, prev_sep = [], True
    for ch in text:
        out.append(ch.upper() if prev_sep else ch)
        prev_sep = not (ch.isalnum() or ch == "_")
    return "".join(out)


def _pad(text: str, prefix: int, suffix: int) -> str:
    return text if text == "" else " " * prefix + text + " " * suffix


def _truncate(text: str, size: int) -> str:
    """Go slices bytes, not runes; a cut inside a rune becomes U+FFFD rather than invalid UTF-8."""
    data = text.encode()
    return text if len(data) < size else data[:size].decode(errors="replace")


DOCKER_FUNCS: dict[str, Func] = {
    "json": Func(encode_json, ("any",)),
    "split": Func(_split, ("string", "string")),
    "join": Func(lambda items, sep: sep.join(items.items or []), ("[]string", "string")),
    "title": Func(_title, ("string",)),
    "lower": Func(str.lower, ("string",)),
    "upper": Func(str.upper, ("string",)),
    "pad": Func(_pad, ("string", "int", "int")),
    "truncate": Func(_truncate, ("string", "int")),
}

HEADER_OVERRIDES: dict[str, Func] = {
    "json": Func(lambda v: v, ("string",)),
    "split": Func(lambda v, _sep: v, ("string", "string")),
    "join": Func(lambda v, _sep: v, ("string", "string")),
    "title": Func(lambda v: v, ("string",)),
    "lower": Func(lambda v: v, ("string",)),
    "upper": Func(lambda v: v, ("string",)),
    "truncate": Func(lambda v, _n: v, ("string", "int")),
}


# ---------------------------------------------------------------------------------------------
# Go builtins


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "other"


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise FuncError("missing argument for comparison")
    for other in others:
        k1, k2 = _kind(first), _kind(other)
        if k1 != k2:
            if first not in (None, NO_VALUE) and other not in (None, NO_VALUE):
                raise FuncError("incompatible types for comparison")
            continue
        if k1 == "other" and isinstance(first, (dict, list, GoValue)):
            raise FuncError(f"non-comparable type {fmt_v(first)}: {type_name(first)}")
        if (str(first) == str(other)) if k1 == "string" else (first == other):
            return True
    return False


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        k1, k2 = _kind(a), _kind(b)
        if k1 in ("bool", "other") or k2 in ("bool", "other"):
            raise FuncError("invalid type for comparison")
        if k1 != k2:
            raise FuncError("incompatible types for comparison")
        return op(str(a), str(b)) if k1 == "string" else op(a, b)

    return compare


def _len(value: Any) -> int:
    if value is None or value is NO_VALUE:
        raise FuncError("len of nil pointer")
    result = length(value)
    if result is None:
        raise FuncError(f"len of type {type_name(value)}")
    return result


def _index(item: Any, *keys: Any) -> Any:
    if item is None or item is NO_VALUE:
        raise FuncError("index of untyped nil")
    for key in keys:
        if item is None:
            raise FuncError("index of nil pointer")
        try:
            if isinstance(item, GoValue):
                item = item.index(key)
            elif isinstance(item, dict):
                if not isinstance(key, str):
                    raise FuncError(f"value has type {type_name(key)}; should be string")
                item = item.get(key)
            elif isinstance(item, (list, str)):
                seq = list(item.encode()) if isinstance(item, str) else item
                item = _list_index(seq, key)
            else:
                raise FuncError(f"can't index item of type {type_name(item)}")
        except (TypeError, IndexError) as exc:
            raise FuncError(str(exc)) from None
    return item


def _sprint(*args: Any) -> str:
    """fmt.Sprint: spaces between operands when neither is a string."""
    out = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(fmt_v(arg))
    return "".join(out)


BUILTIN_FUNCS: dict[str, Func] = {
    "and": Func(lambda *a: a, ("any",), "any", lazy=True),
    "or": Func(lambda *a: a, ("any",), "any", lazy=True),
    "not": Func(lambda v: not truthy(v), ("any",)),
    "len": Func(_len, ("any",)),
    "index": Func(_index, ("any",), "any"),
    "eq": Func(_eq, ("any",), "any"),
    "ne": Func(lambda a, b: not _eq(a, b), ("any", "any")),
    "lt": Func(_ordered(lambda a, b: a < b), ("any", "any")),
    "le": Func(_ordered(lambda a, b: a <= b), ("any", "any")),
    "gt": Func(_ordered(lambda a, b: a > b), ("any", "any")),
    "ge": Func(_ordered(lambda a, b: a >= b), ("any", "any")),
    "print": Func(_sprint, (), "any"),
    "println": Func(lambda *a: " ".join(fmt_v(x) for x in a) + "\n", (), "any"),
    "printf": Func(lambda f, *a: sprintf(f, a), ("string",), "any"),
}

BASIC_FUNCS = {**BUILTIN_FUNCS, **DOCKER_FUNCS}
HEADER_FUNCS = {**BASIC_FUNCS, **HEADER_OVERRIDES}


# ---------------------------------------------------------------------------------------------
# printf

_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d*|\*))?(.?)", re.S)


def _bad(verb: str, value: Any) -> str:
    if value is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(value)}={fmt_v(value)})"


def go_quote(text: str) -> str:
    """strconv.Quote: printable runes kept, others escaped."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
    return "".join(out) + '"'


def _format_one(verb: str, flags: str, prec: int | None, value: Any) -> str | None:
    """Format one operand; None means the verb does not apply to the value's type."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if verb == "v":
        return fmt_v(value)
    if verb == "s":
        if isinstance(value, (bool, int, float)) or value is None:
            return None
        text = fmt_v(value)
        return text[:prec] if prec is not None else text
    if verb == "q":
        return go_quote(value) if isinstance(value, str) else (go_quote(chr(value))[1:-1].join("''") if is_int else None)
    if verb == "d":
        return str(value) if is_int else None
    if verb == "t":
        return ("true" if value else "false") if isinstance(value, bool) else None
    if verb in "xX":
        if is_int:
            text = format(value, "x")
        elif isinstance(value, str):
            text = value.encode().hex()
        else:
            return None
        return text.upper() if verb == "X" else text
    if verb in "feEgG":
        if not isinstance(value, float):
            return None
        return format(value, f".{6 if prec is None else prec}{verb}") if verb != "g" or prec is not None else fmt_v(value)
    if verb == "c":
        return chr(value) if is_int else None
    return None


def _pad_width(text: str, flags: str, width: int | None, numeric: bool) -> str:
    if width is None or len(text) >= width:
        return text
    if "-" in flags:
        return text + " " * (width - len(text))
    if "0" in flags and numeric:
        sign = text[0] if text[:1] in "+-" else ""
        return sign + "0" * (width - len(text)) + text[len(sign):]
    return " " * (width - len(text)) + text


def sprintf(fmt: str, args: tuple[Any, ...]) -> str:
    """fmt.Sprintf for the common verbs (v s q d t x X f e g c), with Go's %!verb(...) errors."""
    out, argi, pos = [], 0, 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, prec, verb = m.groups()
        if verb == "%":
            out.append("%")
            continue
        if not verb:
            out.append("%!(NOVERB)")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        value = args[argi]
        argi += 1
        text = _format_one(verb, flags, int(prec) if prec and prec != "*" else (0 if prec == "" else None), value)
        if text is None:
            out.append(_bad(verb, value))
            continue
        if "+" in flags and verb in "dfeg" and not text.startswith("-"):
            text = "+" + text
        numeric = verb in "dxXfeEgG"
        out.append(_pad_width(text, flags, int(width) if width and width != "*" else None, numeric))
    out.append(fmt[pos:])
    if argi < len(args):
        extra = ", ".join(f"{type_name(a)}={fmt_v(a)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)

