"""JSON shapes of etcd 3.4's v3 gateway (grpc-gateway over rpc.proto), both ways. Pure.

Facts checked against etcd's api/etcdserverpb/rpc.proto and a running 3.4.23:

* field names are the proto names (`create_revision`, `range_end`, `request_put`, ...),
  except lease messages (`ID`, `TTL`) which are spelled so in the proto;
* bytes are base64, int64 are JSON strings ("7"); we send ints as strings too;
* default values are omitted: no "kvs" when nothing matched, no "succeeded" when false,
  no "type" on a PUT event (DELETE events say "DELETE"), no "TTL" in the keepalive answer
  of a lease that is gone, a delete event's kv has only key and mod_revision;
* unary errors are `{"error", "message", "code"}` (gRPC code) with an HTTP status
  (compacted 400/code 11, lease not found 404/code 5, duplicate key 400/code 3);
* streaming calls (watch, keepalive) answer newline-delimited `{"result": {...}}` lines;
  a watch first answers `created`; a start revision below the compaction answers
  `canceled` with `compact_revision`; a start revision equal to it is still served.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from shoal.store.kv import Compare, KeyValue, Op, WatchEvent, prefix_end

TARGET = {"version": ("VERSION", "version"), "mod": ("MOD", "mod_revision"),
          "create": ("CREATE", "create_revision"), "value": ("VALUE", "value")}
RESULT = {"==": "EQUAL", "!=": "NOT_EQUAL", "<": "LESS", ">": "GREATER"}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


class Namespace:
    """Maps our keys to wire keys under the cluster-store path (`etcd://h:p/shoal`)."""

    def __init__(self, prefix: str = ""):
        self.prefix = prefix.encode()

    def key(self, key: str) -> str:
        return b64(self.prefix + key.encode())

    def range(self, prefix: str) -> dict[str, str]:
        """{key, range_end} covering every key under `prefix`."""
        raw = self.prefix + prefix.encode()
        start = raw or b"\x00"
        return {"key": b64(start), "range_end": b64(prefix_end(raw))}

    def unkey(self, wire: str) -> str:
        return unb64(wire)[len(self.prefix):].decode()

    def kv(self, item: dict[str, Any]) -> KeyValue:
        return KeyValue(
            key=self.unkey(item["key"]),
            value=unb64(item.get("value")),
            mod_revision=int(item.get("mod_revision", 0)),
            create_revision=int(item.get("create_revision", 0)),
            version=int(item.get("version", 0)),
            lease=int(item.get("lease", 0)),
        )

    def compare(self, c: Compare) -> dict[str, Any]:
        target, field = TARGET[c.target]
        operand = b64(c.operand) if isinstance(c.operand, bytes) else str(c.operand)
        return {"key": self.key(c.key), "target": target, "result": RESULT[c.op], field: operand}

    def op(self, op: Op) -> dict[str, Any]:
        if op.kind == "put":
            body: dict[str, Any] = {"key": self.key(op.key), "value": b64(op.value)}
            if op.lease:
                body["lease"] = str(op.lease)
            return {"request_put": body}
        if op.kind == "get":
            return {"request_range": {"key": self.key(op.key)}}
        if op.kind == "delete":
            return {"request_delete_range": {"key": self.key(op.key)}}
        return {"request_delete_range": self.range(op.key)}

    def txn(self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]) -> dict[str, Any]:
        return {
            "compare": [self.compare(c) for c in compares],
            "success": [self.op(o) for o in success],
            "failure": [self.op(o) for o in failure],
        }

    def txn_gets(self, answer: dict[str, Any]) -> tuple[tuple[KeyValue, ...], ...]:
        """One tuple per range response of the branch taken (puts and deletes skipped)."""
        return tuple(
            tuple(self.kv(item) for item in r["response_range"].get("kvs", ()))
            for r in answer.get("responses", ())
            if "response_range" in r
        )

    def events(self, result: dict[str, Any]) -> list[WatchEvent]:
        out = []
        for e in result.get("events", ()):
            kind = "delete" if e.get("type") == "DELETE" else "put"
            out.append(WatchEvent(kind, self.kv(e["kv"])))
        return out


def revision(answer: dict[str, Any]) -> int:
    return int(answer.get("header", {}).get("revision", 0))
