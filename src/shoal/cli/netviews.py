"""Go-typed views of network objects, so templates print what docker prints.

docker executes `network inspect --format` against its `network.Inspect` struct first (so
`{{.IPAM}}` prints `{default map[] [...]}` and `{{.Created}}` prints Go's time format), and
`network ls --format` against a row context whose fields are methods (`.ID`, `.Labels`, ...).
The schema below follows the docker 28 API types that the docker 28.2 CLI decodes into.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from shoal.cli.govalues import NO_VALUE, GoMap, GoSlice, GoStruct, GoTime, GoValue, encode_json

# A field: (Go name, JSON key, type spec, omitempty). Type specs: "string", "bool", "int",
# "time", a _Struct, ("map", spec) or ("slice", spec).


@dataclass(frozen=True)
class _Struct:
    go_type: str
    fields: tuple[tuple[str, str, Any, bool], ...]


_S = "string"
_IPAM_CONFIG = _Struct("network.IPAMConfig", (
    ("Subnet", "Subnet", _S, True),
    ("IPRange", "IPRange", _S, True),
    ("Gateway", "Gateway", _S, True),
    ("AuxAddress", "AuxiliaryAddresses", ("map", _S), True),
))
_IPAM = _Struct("network.IPAM", (
    ("Driver", "Driver", _S, False),
    ("Options", "Options", ("map", _S), False),
    ("Config", "Config", ("slice", _IPAM_CONFIG), False),
))
_ENDPOINT = _Struct("network.EndpointResource", tuple(
    (name, name, _S, False) for name in ("Name", "EndpointID", "MacAddress", "IPv4Address", "IPv6Address")
))
_PEER = _Struct("network.PeerInfo", (("Name", "Name", _S, False), ("IP", "IP", _S, False)))
_TASK = _Struct("network.Task", (
    ("Name", "Name", _S, False),
    ("EndpointID", "EndpointID", _S, False),
    ("EndpointIP", "EndpointIP", _S, False),
    ("Info", "Info", ("map", _S), False),
))
_SERVICE = _Struct("network.ServiceInfo", (
    ("VIP", "VIP", _S, False),
    ("Ports", "Ports", ("slice", _S), False),
    ("LocalLBIndex", "LocalLBIndex", "int", False),
    ("Tasks", "Tasks", ("slice", _TASK), False),
))
_INSPECT = _Struct("network.Inspect", (
    ("Name", "Name", _S, False),
    ("ID", "Id", _S, False),
    ("Created", "Created", "time", False),
    ("Scope", "Scope", _S, False),
    ("Driver", "Driver", _S, False),
    ("EnableIPv4", "EnableIPv4", "bool", False),
    ("EnableIPv6", "EnableIPv6", "bool", False),
    ("IPAM", "IPAM", _IPAM, False),
    ("Internal", "Internal", "bool", False),
    ("Attachable", "Attachable", "bool", False),
    ("Ingress", "Ingress", "bool", False),
    ("ConfigFrom", "ConfigFrom", _Struct("network.ConfigReference", (("Network", "Network", _S, False),)), False),
    ("ConfigOnly", "ConfigOnly", "bool", False),
    ("Containers", "Containers", ("map", _ENDPOINT), False),
    ("Options", "Options", ("map", _S), False),
    ("Labels", "Labels", ("map", _S), False),
    ("Peers", "Peers", ("slice", _PEER), True),
    ("Services", "Services", ("map", _SERVICE), True),
))

_SCALARS: dict[str, tuple[type, Any]] = {"string": (str, ""), "bool": (bool, False), "int": (int, 0)}


def _type_label(spec: Any) -> str:
    if isinstance(spec, _Struct):
        return spec.go_type
    if isinstance(spec, tuple):
        return ("map[string]" if spec[0] == "map" else "[]") + _type_label(spec[1])
    return {"time": "time.Time"}.get(spec, spec)


def build(spec: Any, value: Any) -> Any:
    """Decode JSON into the typed view like json.Unmarshal would; TypeError on a mismatch."""
    if isinstance(spec, _Struct):
        return _build_struct(spec, value)
    if isinstance(spec, tuple):
        kind, elem = spec
        if kind == "map":
            if value is not None and not isinstance(value, dict):
                raise TypeError(f"expected object for {_type_label(spec)}")
            items = None if value is None else {k: build(elem, v) for k, v in value.items()}
            return GoMap(_type_label(elem), items, zero=build(elem, None))
        if value is not None and not isinstance(value, list):
            raise TypeError(f"expected array for {_type_label(spec)}")
        return GoSlice(_type_label(elem), None if value is None else [build(elem, v) for v in value])
    if spec == "time":
        if value is not None and not isinstance(value, str):
            raise TypeError("expected string for time.Time")
        return GoTime(value or "")
    pytype, zero = _SCALARS[spec]
    if value is None:
        return zero
    if spec == "int" and isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)  # JsonNumber
    if not isinstance(value, pytype) or (spec == "int" and isinstance(value, bool)):
        raise TypeError(f"expected {spec}")
    return value


def _build_struct(spec: _Struct, value: Any) -> GoStruct:
    if value is not None and not isinstance(value, dict):
        raise TypeError(f"expected object for {spec.go_type}")
    data = value or {}
    folded = {k.lower(): v for k, v in data.items()}  # encoding/json matches keys case-insensitively
    fields = []
    for go_name, key, sub, omitempty in spec.fields:
        raw = data[key] if key in data else folded.get(key.lower())
        fields.append((go_name, key, build(sub, raw), omitempty))
    return GoStruct(spec.go_type, fields)


def inspect_view(data: Any) -> GoStruct:
    """The `network.Inspect` view docker's templates see first."""
    return _build_struct(_INSPECT, data)


# ---------------------------------------------------------------------------------------------
# `network ls` rows and header

NETWORK_TABLE_FORMAT = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
NETWORK_RAW_FORMAT = "network_id: {{.ID}}\\nname: {{.Name}}\\ndriver: {{.Driver}}\\nscope: {{.Scope}}\\n"
NETWORK_QUIET_RAW_FORMAT = "network_id: {{.ID}}"
NETWORK_HEADERS = {
    "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv4": "IPV4",
    "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT",
}


def truncate_id(value: str) -> str:
    """stringid.TruncateID: drop an `algo:` prefix, keep 12 characters."""
    return value.split(":", 1)[-1][:12]


class NetworkRow(GoValue):
    """docker's `*network.networkContext`: every column is a method."""

    go_type = "*network.networkContext"

    def __init__(self, summary: dict[str, Any], trunc: bool) -> None:
        self.n = summary
        self.trunc = trunc

    def _str(self, key: str) -> str:
        value = self.n.get(key)
        return value if isinstance(value, str) else ""

    def _bool(self, key: str) -> str:
        return "true" if self.n.get(key) is True else "false"

    def ID(self) -> str:  # noqa: N802 - Go method names are the template field names
        return truncate_id(self._str("Id")) if self.trunc else self._str("Id")

    def Name(self) -> str:  # noqa: N802
        return self._str("Name")

    def Driver(self) -> str:  # noqa: N802
        return self._str("Driver")

    def Scope(self) -> str:  # noqa: N802
        return self._str("Scope")

    def IPv4(self) -> str:  # noqa: N802
        return self._bool("EnableIPv4")

    def IPv6(self) -> str:  # noqa: N802
        return self._bool("EnableIPv6")

    def Internal(self) -> str:  # noqa: N802
        return self._bool("Internal")

    def Labels(self) -> str:  # noqa: N802
        """Comma-joined k=v; sorted here (Go's map order is random, so docker's is unstable)."""
        labels = self.n.get("Labels") or {}
        return ",".join(f"{k}={labels[k]}" for k in sorted(labels))

    def Label(self, name: str) -> str:  # noqa: N802
        return (self.n.get("Labels") or {}).get(name, "")

    def CreatedAt(self) -> str:  # noqa: N802
        return GoTime(self._str("Created")).go_str()

    def method(self, name: str) -> Callable[..., Any] | None:
        if name in NETWORK_HEADERS or name == "Label":
            return getattr(self, name)
        return None

    def go_json(self) -> str:
        return encode_json({name: getattr(self, name)() for name in NETWORK_HEADERS})

    def go_str(self) -> str:
        return "&{" + " ".join(getattr(self, name)() for name in NETWORK_HEADERS) + "}"


class HeaderRow(GoValue):
    """docker's SubHeaderContext: a map of column titles with a `Label` method."""

    go_type = "formatter.SubHeaderContext"

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def field(self, name: str) -> Any:
        return self.headers.get(name, NO_VALUE)

    def method(self, name: str) -> Callable[..., Any] | None:
        if name == "Label":
            return lambda label: label.split(".")[-1].replace("-", " ").replace("_", " ")
        return None

    def go_str(self) -> str:
        return GoMap("string", self.headers).go_str()

    def go_json(self) -> str:
        return encode_json(self.headers)
