"""`EtcdKV`: the KV protocol over etcd v3's JSON gateway, with our own member failover.

Why our own client: it is asyncio-native, needs no grpc/protobuf wheels (httpx only), and
failover is ours. Docker's libkv client fails the first conditional write after its member
dies; here a request that cannot reach a member moves to the next one at once, so the
first operation after a member dies succeeds.

Retry rule (one place: `_call`):

* a request that never reached a member (connect refused or timed out) is retried on the
  next member, whatever it is;
* after an ambiguous failure (sent, but the connection broke, the try timed out, or the
  member answered 5xx) reads, lease calls, `put` and `delete` are retried too: applying
  them twice leaves the same state (a watcher may then see the put twice, and `delete`
  may answer False for a key the first try deleted);
* a `txn` is retried after an ambiguous failure only when it is *guarded* (kv.guarded):
  every key it writes is pinned by an "==" compare on version/mod/create, and its failure
  branch writes nothing. Such a txn cannot apply twice; the retry of one that did apply
  answers succeeded=False, and CAS callers re-read anyway (put an owner token in the value
  to recognise your own write). Any other txn raises StoreUnavailable saying the outcome
  is unknown.

Each try is short (2 s connect, 1 s answer) and a whole call is bounded (5 s); then
StoreUnavailable names the store and what to do. When every member refused the
connection, or the TLS handshake, twice in a row the call fails at once (all down, or
certificates that do not fit: fail fast, and the message says which). A TLS failure is
never ambiguous: a member that rejects the handshake (or our certificate, which TLS 1.3
reports at the first read) has not processed the request. Nothing is remembered about a
dead member but the rotation, so recovery needs no new client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from shoal.store.etcd_reasons import TLS_HINT, reason, refused, tls_error
from shoal.store.etcd_wire import Namespace, revision
from shoal.store.etcd_watch import WatchStream, watch_events
from shoal.store.kv import (
    Compacted,
    Compare,
    KeyValue,
    LeaseExpired,
    Op,
    StoreError,
    StoreUnavailable,
    TxnResult,
    WatchEvent,
    guarded,
)

CONNECT_TIMEOUT = 2.0
TRY_TIMEOUT = 1.0
CALL_TIMEOUT = 5.0


class _Ambiguous(Exception):
    """The request may have reached the member; reason in args[0]."""


class _Unreached(Exception):
    """The request did not reach the member (refused, or TLS failed: args[1] is True)."""


class EtcdKV:
    """One client for a whole etcd cluster (`endpoints` are "http[s]://host:port")."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        url: str | None = None,
        prefix: str = "",
        tls: ssl.SSLContext | None = None,
        tls_probe: ssl.SSLContext | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        try_timeout: float = TRY_TIMEOUT,
        call_timeout: float = CALL_TIMEOUT,
        watch_idle: float = 5.0,
    ):
        if not endpoints:
            raise ValueError("EtcdKV needs at least one endpoint")
        self.endpoints = list(endpoints)
        self.url = url or "etcd://" + ",".join(e.split("://", 1)[-1] for e in endpoints)
        self.ns = Namespace(prefix)
        self.connect_timeout, self.try_timeout, self.call_timeout = connect_timeout, try_timeout, call_timeout
        self.watch_idle = watch_idle
        self._current = 0
        self._client = httpx.AsyncClient(verify=tls if tls is not None else True, trust_env=False)
        self._tls_probe = tls_probe

    # -- transport -------------------------------------------------------------

    def _timeout(self, remaining: float) -> httpx.Timeout:
        per_try = max(0.05, min(self.try_timeout, remaining))
        return httpx.Timeout(per_try, connect=max(0.05, min(self.connect_timeout, remaining)))

    async def _post_once(self, member: str, path: str, body: dict[str, Any], remaining: float) -> dict[str, Any]:
        """One try on one member; raises _Unreached/_Ambiguous, or the mapped store error."""
        try:
            resp = await self._client.post(f"{member}/v3/{path}", json=body, timeout=self._timeout(remaining))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, ssl.SSLError) as e:
            # (a rejected client certificate comes as a bare SSLError at the first read)
            raise _Unreached(f"{member}: {reason(e)}", refused(e) or tls_error(e) is not None) from e
        except httpx.TransportError as e:
            if tls_error(e) is not None:
                raise _Unreached(f"{member}: {reason(e)}", True) from e
            if not isinstance(e, httpx.TimeoutException) and (why := await self._tls_refusal(member)):
                raise _Unreached(f"{member}: {why}", True) from e
            raise _Ambiguous(f"{member}: {reason(e)}{self._plain_hint(member, e)}") from e
        try:
            answer = resp.json() if resp.content else {}
        except json.JSONDecodeError as e:
            raise _Ambiguous(f"{member}: HTTP {resp.status_code}, not JSON") from e
        if resp.status_code >= 500 or answer.get("code") == 14:
            hint = ""
            if member.startswith("https:") and answer.get("message") == "connection closed":
                hint = (" (over TLS etcd also answers this when its own certificate lacks the clientAuth usage "
                        "that its gateway needs with --client-cert-auth)")
            raise _Ambiguous(f"{member}: HTTP {resp.status_code} {answer.get('message', '')}".strip() + hint)
        if resp.status_code != 200 or "error" in answer:
            raise self._refused(path, answer, resp.status_code)
        return answer

    async def _tls_refusal(self, member: str) -> str | None:
        """Why the member refuses our TLS, if it does; None when it does not (or no probe).

        Under TLS 1.3 a server checks the client's certificate after the client thinks the
        handshake is done, so a refused certificate mostly shows as a connection broken
        under our request, like a member dying with it. A TLS 1.2 handshake with the same
        files (`tls_probe`) gets the refusal inside the handshake: if the member refuses
        that, it refused our request unread, which is then no ambiguous failure.
        """
        if self._tls_probe is None or not member.startswith("https://"):
            return None
        host, _, port = member.removeprefix("https://").rpartition(":")
        host = host.strip("[]")
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, int(port), ssl=self._tls_probe, server_hostname=host),
                self.connect_timeout)
        except ssl.SSLError as e:
            return reason(e)
        except (OSError, TimeoutError, ValueError):
            return None
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
        return None

    @staticmethod
    def _plain_hint(member: str, e: BaseException) -> str:
        """A TLS member closes a plain http connection without a word: the client sees the
        close as a protocol error or, when the reset wins the race, as a read error."""
        if member.startswith("http:") and isinstance(e, (httpx.RemoteProtocolError, httpx.ReadError)):
            return (" (a member serving https closes plain http connections like this: then give "
                    "kv.cacertfile, kv.certfile and kv.keyfile)")
        return ""

    def _refused(self, path: str, answer: dict[str, Any], status: int) -> Exception:
        message = str(answer.get("message") or answer.get("error") or f"HTTP {status}")
        if answer.get("code") == 5 and "lease" in message:
            return LeaseExpired(f"cluster store {self.url}: {message}")
        if answer.get("code") == 11 and "compacted" in message:
            return Compacted(f"cluster store {self.url}: {message}; re-list", 0)
        return StoreError(f"cluster store {self.url}: {path}: {message}")

    async def _call(self, path: str, body: dict[str, Any], *, retry_ambiguous: bool = True) -> dict[str, Any]:
        """POST to the current member, moving on to the next on failure (module docstring)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.call_timeout
        seen: list[str] = []
        refused_in_a_row = 0  # refused connections and TLS failures: nobody to wait for
        while True:
            member = self.endpoints[self._current]
            try:
                answer = await self._post_once(member, path, body, deadline - loop.time())
                return answer
            except _Unreached as e:
                seen.append(e.args[0])
                refused_in_a_row = refused_in_a_row + 1 if e.args[1] else 0
            except _Ambiguous as e:
                seen.append(e.args[0])
                refused_in_a_row = 0
                if not retry_ambiguous:
                    raise StoreUnavailable(
                        f"cluster store {self.url}: {e.args[0]}: the outcome of this transaction is unknown; "
                        "re-read the keys it writes"
                    ) from None
            self._current = (self._current + 1) % len(self.endpoints)
            if refused_in_a_row >= 2 * len(self.endpoints) or loop.time() >= deadline:
                raise self._unavailable(seen)
            if self._current == 0 or len(self.endpoints) == 1:
                await asyncio.sleep(min(0.2, max(0.0, deadline - loop.time())))

    def _unavailable(self, seen: list[str]) -> StoreUnavailable:
        recent = seen[-2 * len(self.endpoints):]
        reasons = "; ".join(dict.fromkeys(recent))
        if recent and all(": TLS: " in r for r in recent):
            return StoreUnavailable(f"cluster store {self.url}: no member accepted TLS ({reasons}): {TLS_HINT}")
        return StoreUnavailable(
            f"cluster store {self.url}: no member answered ({reasons}): check that etcd is running "
            "and reachable at these addresses"
        )

    # -- KV protocol -------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        answer = await self._call("kv/range", {"key": self.ns.key(key)})
        kvs = answer.get("kvs", ())
        return self.ns.kv(kvs[0]) if kvs else None

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under prefix, sorted by key (etcd's default order), and the revision."""
        answer = await self._call("kv/range", self.ns.range(prefix))
        return [self.ns.kv(item) for item in answer.get("kvs", ())], revision(answer)

    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        body = self.ns.op(Op.put(key, value, lease))["request_put"]
        return revision(await self._call("kv/put", body))

    async def delete(self, key: str) -> bool:
        answer = await self._call("kv/deleterange", {"key": self.ns.key(key)})
        return int(answer.get("deleted", 0)) > 0

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()) -> TxnResult:
        """Atomic compare-and-swap; retried after an ambiguous failure only when guarded."""
        safe = guarded(compares, success) and not any(op.writes for op in failure)
        safe = safe or not any(op.writes for op in (*success, *failure))
        answer = await self._call("kv/txn", self.ns.txn(compares, success, failure), retry_ambiguous=safe)
        return TxnResult(bool(answer.get("succeeded", False)), revision(answer), self.ns.txn_gets(answer))

    async def compact(self, revision_: int) -> None:
        """Drop history before the revision (watches from older revisions raise Compacted)."""
        await self._call("kv/compaction", {"revision": str(revision_), "physical": True})

    async def grant(self, ttl: int) -> int:
        return int((await self._call("lease/grant", {"TTL": str(ttl)}))["ID"])

    async def keepalive(self, lease: int) -> int:
        """Refresh the lease; its TTL again. A lease that is gone answers without a TTL."""
        answer = await self._call("lease/keepalive", {"ID": str(lease)})
        ttl = int(answer.get("result", answer).get("TTL", 0))
        if ttl <= 0:
            raise LeaseExpired(f"cluster store {self.url}: lease {lease:x} has expired or was revoked")
        return ttl

    async def revoke(self, lease: int) -> None:
        """Delete the lease and its keys; a lease already gone is fine."""
        try:
            await self._call("lease/revoke", {"ID": str(lease)})
        except LeaseExpired:
            pass

    async def current_revision(self) -> int:
        return revision(await self._call("kv/range", {"key": self.ns.key(""), "limit": "1", "count_only": True}))

    def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[WatchEvent]]:
        """Batches under prefix from start_revision (0: from now), across member loss.

        See store.etcd_watch: reconnects from the last seen revision + 1, raises Compacted,
        and StoreUnavailable when no member takes the watch for a whole call timeout.
        """
        return watch_events(self, prefix, start_revision)

    def _watch_stream(self, member: str, prefix: str, start: int) -> WatchStream:
        body = {"create_request": {**self.ns.range(prefix), "start_revision": str(start)}}
        return WatchStream(self._client, member, body, self.connect_timeout)

    async def close(self) -> None:
        await self._client.aclose()
