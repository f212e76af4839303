"""Watches over the gateway's streaming `/v3/watch`, resumed across member loss.

The gateway answers a POST of one `create_request` with newline-delimited JSON for as
long as the connection lives: `created` first, then one line per batch of events (a
revision's events are never split), `canceled` + `compact_revision` when the start is
compacted. A member that dies closes the stream; one that hangs (stopped, cut off) is
found by probing it after `watch_idle` seconds without a line, and one that loses its
leader cancels the watch itself (we send `Grpc-Metadata-hasleader: true`, which the
gateway forwards as the gRPC metadata etcd's own client uses). In every case we reconnect
to the next member from the last seen revision + 1 and drop anything older, so no event is
lost and none is seen twice. Quiet lines (created, progress) never reach the caller.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any, Protocol

import httpx

from shoal.store.etcd_reasons import reason
from shoal.store.etcd_wire import Namespace
from shoal.store.kv import Compacted, StoreUnavailable, WatchEvent

_END = object()


class WatchClient(Protocol):
    """What a watch uses of its client (EtcdKV has it): the members and the rotation over
    them, the timeouts, the HTTP client and the key namespace. A protocol, so this module
    needs no import of store.etcd."""

    url: str
    ns: Namespace
    endpoints: list[str]
    connect_timeout: float
    try_timeout: float
    call_timeout: float
    watch_idle: float
    _current: int  # the member tried first; a watch moves it on as requests do
    _client: httpx.AsyncClient

    def _timeout(self, remaining: float) -> httpx.Timeout: ...
    def _unavailable(self, seen: list[str]) -> StoreUnavailable: ...
    def _watch_stream(self, member: str, prefix: str, start: int) -> WatchStream: ...
    async def _tls_refusal(self, member: str) -> str | None: ...
    async def current_revision(self) -> int: ...


class Lost(Exception):
    """The stream's member is gone or unhealthy: reconnect elsewhere."""


class WatchStream:
    """One streaming watch request to one member; lines are pumped into a queue."""

    def __init__(self, client: httpx.AsyncClient, member: str, body: dict[str, Any], connect_timeout: float):
        self.member = member
        self._client = client
        self._body = body
        self._connect_timeout = connect_timeout
        self._lines: asyncio.Queue[Any] = asyncio.Queue()
        self._resp: httpx.Response | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._pushback: dict[str, Any] | None = None

    async def open(self, first_line_timeout: float) -> None:
        """Send the create request and wait for `created` (raises Lost)."""
        request = self._client.build_request(
            "POST", f"{self.member}/v3/watch", json=self._body,
            headers={"Grpc-Metadata-hasleader": "true"},
            timeout=httpx.Timeout(None, connect=self._connect_timeout, write=self._connect_timeout),
        )
        try:
            self._resp = await asyncio.wait_for(self._client.send(request, stream=True), first_line_timeout)
        except (httpx.TransportError, ssl.SSLError, asyncio.TimeoutError) as e:
            raise Lost(f"{self.member}: {reason(e)}") from e
        if self._resp.status_code != 200:
            raise Lost(f"{self.member}: watch answered HTTP {self._resp.status_code}")
        self._pump_task = asyncio.create_task(self._pump())
        first = await self.next(first_line_timeout)
        if first is None:
            raise Lost(f"{self.member}: watch not created within {first_line_timeout:g} s")
        if not first.get("created"):
            self._pushback = first  # a cancel (compaction) is the caller's to handle

    async def _pump(self) -> None:
        assert self._resp is not None
        try:
            async for line in self._resp.aiter_lines():
                if line.strip():
                    self._lines.put_nowait(json.loads(line))
            self._lines.put_nowait(Lost(f"{self.member}: watch stream ended"))
        except (httpx.HTTPError, ssl.SSLError, json.JSONDecodeError) as e:
            self._lines.put_nowait(Lost(f"{self.member}: {reason(e)}"))

    async def next(self, idle: float) -> dict[str, Any] | None:
        """The next response (the `result` object); None after `idle` seconds of silence."""
        if self._pushback is not None:
            first, self._pushback = self._pushback, None
            return first
        try:
            item = await asyncio.wait_for(self._lines.get(), idle)
        except asyncio.TimeoutError:
            return None
        if isinstance(item, Exception):
            raise item
        if "error" in item:
            raise Lost(f"{self.member}: {item['error']}")
        return item.get("result", item)

    async def close(self) -> None:
        if self._pump_task is not None:
            self._pump_task.cancel()
            await asyncio.gather(self._pump_task, return_exceptions=True)
        if self._resp is not None:
            await self._resp.aclose()


async def _alive(kv: WatchClient, member: str) -> bool:
    """A quiet stream's member still answers and still has a leader."""
    try:
        resp = await kv._client.post(f"{member}/v3/maintenance/status", json={}, timeout=kv._timeout(kv.try_timeout))
        return resp.status_code == 200 and resp.json().get("leader", "0") != "0"
    except (httpx.HTTPError, ssl.SSLError, ValueError):
        return False


async def _connect(kv: WatchClient, prefix: str, start: int) -> WatchStream:
    """Open the watch on the current member, else the next ones, within call_timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + kv.call_timeout
    seen: list[str] = []
    while True:
        stream = kv._watch_stream(kv.endpoints[kv._current], prefix, start)
        try:
            await stream.open(kv.try_timeout + kv.connect_timeout)
            return stream
        except Lost as e:
            await stream.close()
            why = await kv._tls_refusal(stream.member)  # a refused certificate looks like a lost stream
            seen.append(f"{stream.member}: {why}" if why else str(e))
        kv._current = (kv._current + 1) % len(kv.endpoints)
        if loop.time() >= deadline:
            raise kv._unavailable(seen)
        if kv._current == 0 or len(kv.endpoints) == 1:
            await asyncio.sleep(0.2)


async def _next_result(kv: WatchClient, stream: WatchStream) -> dict[str, Any]:
    """The next non-silent response, probing the member whenever the stream goes quiet."""
    while True:
        result = await stream.next(kv.watch_idle)
        if result is not None:
            return result
        if not await _alive(kv, stream.member):
            raise Lost(f"{stream.member}: quiet and not answering")


async def watch_events(kv: WatchClient, prefix: str, start_revision: int) -> AsyncIterator[list[WatchEvent]]:
    """The body of EtcdKV.watch (module docstring)."""
    next_rev = start_revision if start_revision > 0 else await kv.current_revision() + 1
    stream: WatchStream | None = None
    try:
        while True:
            if stream is None:
                stream = await _connect(kv, prefix, next_rev)
            try:
                result = await _next_result(kv, stream)
                if result.get("canceled"):
                    compact = int(result.get("compact_revision", 0))
                    if compact:
                        raise Compacted(
                            f"cluster store {kv.url}: watch from revision {next_rev}: "
                            f"history before {compact} is compacted; re-list",
                            compact,
                        )
                    raise Lost(f"{stream.member}: watch canceled: {result.get('cancel_reason', '')}")
            except Lost:
                await stream.close()
                stream = None
                kv._current = (kv._current + 1) % len(kv.endpoints)
                continue
            events = [e for e in kv.ns.events(result) if e.kv.mod_revision >= next_rev]
            if events:
                next_rev = events[-1].kv.mod_revision + 1
                yield events
    finally:
        if stream is not None:
            await stream.close()
