"""The registry client: endpoints, auth, manifests (distribution-spec; moby's pull_v2).

One `Registry` per daemon, over one httpx.AsyncClient. Blob download is in `blobs`, push in
`push`; both are mixins of `Registry` and use the request machinery here.
"""

from __future__ import annotations

import asyncio
import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import httpx

from shoal.errors import InvalidParameter, ShoalError, Unauthorized

from . import manifest as mf
from .auth import (
    Challenge,
    Credentials,
    TokenCache,
    TokenError,
    cache_key,
    fetch_token,
    parse_challenges,
    pull_scope,
)
from .blobs import BlobsMixin
from .errors import (
    RegistryUnreachable,
    go_op,
    parse_error,
    pull_error,
    retry_after,
    unreachable,
)
from .push import PushMixin
from .reference import DEFAULT_DOMAIN, Reference
from .transport import HostTransport, InsecureRule

HUB_ENDPOINT = "https://registry-1.docker.io"
HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/")
CONFIG_LIMIT = 8 << 20  # an image config bigger than this is not a config
MANIFEST_LIMIT = 4 << 20  # distribution's own limit for manifests


@dataclass
class Endpoint:
    """One base URL of a registry and what its /v2/ said about auth."""

    base: str
    challenge: Challenge | None
    mirror: bool = False

    @property
    def domain(self) -> str:
        return httpx.URL(self.base).netloc.decode()


class Resolved(NamedTuple):
    """A resolved reference: the platform manifest's bytes, type and digest, and the digest
    of the index it came from. `reported_digest` is what `docker pull` prints."""

    manifest: bytes
    media_type: str
    digest: str
    index_digest: str | None

    @property
    def reported_digest(self) -> str:
        return self.index_digest or self.digest


class Registry(BlobsMixin, PushMixin):
    def __init__(self, insecure_registries: list[str] | tuple[str, ...] = (),
                 mirrors: list[str] | tuple[str, ...] = (), certs_dir: Path = Path("/etc/docker/certs.d"),
                 timeout: float = 30.0, connect_timeout: float = 15.0, attempts: int = 5,
                 retry_delay=lambda attempt: 5 * attempt, chunk_size: int = 64 << 20,
                 user_agent: str = "shoal") -> None:
        self.insecure = InsecureRule(insecure_registries)
        self.mirrors = [m.rstrip("/") for m in mirrors]
        self.transport = HostTransport(Path(certs_dir))
        self.client = httpx.AsyncClient(
            transport=self.transport, follow_redirects=True, max_redirects=10,
            timeout=httpx.Timeout(timeout, connect=connect_timeout), headers={"User-Agent": user_agent})
        self.tokens = TokenCache()
        self.attempts, self.retry_delay, self.chunk_size = attempts, retry_delay, chunk_size
        self._endpoints: dict[tuple[str, bool], Endpoint] = {}
        self._token_locks: dict[tuple, asyncio.Lock] = {}

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __aenter__(self) -> Registry:  # noqa: PYI034 - not meant for subclassing
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # endpoints -------------------------------------------------------------------------

    async def candidates(self, domain: str, *, mirrors: bool) -> list[tuple[str, bool]]:
        """(base URL, is mirror) to try in order: mirrors first for Docker Hub pulls; for an
        insecure registry https without verification, then plain http."""
        if domain == DEFAULT_DOMAIN:
            return [(m, True) for m in self.mirrors if mirrors] + [(HUB_ENDPOINT, False)]
        if await self.insecure.insecure(domain):
            self.transport.set_verify(domain, False)
            return [(f"https://{domain}", False), (f"http://{domain}", False)]
        self.transport.set_verify(domain, True)
        return [(f"https://{domain}", False)]

    async def ping(self, base: str, mirror: bool = False) -> Endpoint:
        url = f"{base}/v2/"
        try:
            resp = await self.client.get(url)
        except httpx.TransportError as exc:
            raise unreachable("GET", url, httpx.URL(base).netloc.decode(), exc) from None
        await resp.aclose()
        found = parse_challenges(resp.headers.get_list("www-authenticate")) if resp.status_code == 401 else []
        challenge = next((c for c in found if c.scheme == "bearer"), None) or next(
            (c for c in found if c.scheme == "basic"), None)
        ep = Endpoint(base, challenge, mirror)
        if challenge is not None and challenge.realm:
            realm = httpx.URL(challenge.realm)
            if realm.scheme == "https" and not self.transport.knows(realm.netloc.decode()):
                self.transport.set_verify(realm.netloc.decode(), self.transport.verifies(ep.domain))
        return ep

    async def endpoint(self, domain: str, *, mirrors: bool = False) -> Endpoint:
        """The first candidate that answers HTTP at all, remembered; a registry that is down
        raises RegistryUnreachable with the last attempt's error, as dockerd reports."""
        key = (domain, mirrors)
        if key in self._endpoints:
            return self._endpoints[key]
        last: RegistryUnreachable | None = None
        for base, mirror in await self.candidates(domain, mirrors=mirrors):
            try:
                ep = await self.ping(base, mirror)
            except RegistryUnreachable as exc:
                last = exc
                continue
            self._endpoints[key] = ep
            return ep
        assert last is not None
        raise last

    # requests with auth ----------------------------------------------------------------

    async def _authorization(self, ep: Endpoint, scopes: tuple[str, ...], creds: Credentials,
                             stale: str | None, method: str, url: str) -> dict[str, str]:
        """The Authorization header; `stale` is a header the registry just refused, so its
        token is replaced (once for all the requests that saw it refused together)."""
        ch = ep.challenge
        if ch is None:
            return {}
        if ch.scheme == "basic":
            if creds.username or creds.password:
                pair = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
                return {"Authorization": f"Basic {pair}"}
            return {}
        if creds.registrytoken:
            return {"Authorization": f"Bearer {creds.registrytoken}"}
        key = cache_key(ch, scopes, creds)
        async with self._token_locks.setdefault(key, asyncio.Lock()):  # parallel layers share one token
            return await self._bearer(ch, key, scopes, creds, stale, method, url)

    async def _bearer(self, ch: Challenge, key: tuple, scopes: tuple[str, ...], creds: Credentials,
                      stale: str | None, method: str, url: str) -> dict[str, str]:
        token = self.tokens.get(key)
        if token is None or f"Bearer {token}" == stale:
            try:
                token, expires_in = await fetch_token(self.client, ch, scopes, creds)
            except TokenError as exc:
                err = parse_error(exc.status, exc.body, [])
                raise Unauthorized(f'{go_op(method)} "{url}": {err}') if exc.status == 401 else \
                    ShoalError(f'{go_op(method)} "{url}": {err}') from None
            except httpx.TransportError as exc:
                raise unreachable("GET", ch.realm, httpx.URL(ch.realm).netloc.decode(), exc) from None
            self.tokens.put(key, token, expires_in)
        return {"Authorization": f"Bearer {token}"}

    async def send(self, ep: Endpoint, method: str, url: str, scopes: tuple[str, ...], creds: Credentials, *,
                   headers: dict[str, str] | None = None, body=None, stream: bool = False,
                   params: dict[str, str] | None = None) -> httpx.Response:
        """One request with auth; a 401 gets one fresh token (tokens expire mid-pull), then the
        401 stands. `url` is a path under the endpoint or an absolute Location; `body` is bytes
        or a callable giving a fresh async iterator (so the retry can send it again)."""
        full = url if url.startswith(("http://", "https://")) else ep.base + url
        # credentials only for the registry itself: a Location may name an upload host of its
        # storage (S3 and the like), which must never see the user's password or token
        target, base = httpx.URL(full), httpx.URL(ep.base)
        ours = (target.scheme, target.netloc) == (base.scheme, base.netloc)
        stale = None
        for attempt in (0, 1):
            auth = await self._authorization(ep, scopes, creds, stale, method, full) if ours else {}
            content = body() if callable(body) else body
            req = self.client.build_request(method, full, headers={**(headers or {}), **auth},
                                            content=content, params=params)
            try:
                resp = await self.client.send(req, stream=stream)
            except httpx.TransportError as exc:
                raise unreachable(method, full, httpx.URL(full).netloc.decode(), exc) from None
            retry = (ours and resp.status_code == 401 and attempt == 0 and ep.challenge is not None
                     and ep.challenge.scheme == "bearer" and not creds.registrytoken)
            if not retry:
                return resp
            scopes, stale = _merge_scopes(scopes, resp), auth.get("Authorization")
            await resp.aclose()
        raise AssertionError("unreachable")

    async def error_of(self, resp: httpx.Response) -> tuple:
        body = await resp.aread()
        await resp.aclose()
        return parse_error(resp.status_code, body, resp.headers.get_list("www-authenticate")), retry_after(resp)

    # login -----------------------------------------------------------------------------

    async def login(self, serveraddress: str, creds: Credentials) -> str:
        """dockerd's /auth: GET /v2/ with the credentials (through the token server when the
        registry asks for Bearer); "Login Succeeded" or Unauthorized in dockerd's words."""
        domain = _login_domain(serveraddress)
        ep = await self.endpoint(domain, mirrors=False)
        url = f"{ep.base}/v2/"
        resp = await self.send(ep, "GET", url, (), creds)
        await resp.aclose()
        if resp.status_code == 200:
            return "Login Succeeded"
        text = f"login attempt to {url} failed with status: {resp.status_code} {resp.reason_phrase}"
        raise Unauthorized(text) if resp.status_code == 401 else ShoalError(text)

    # pull ------------------------------------------------------------------------------

    async def pull_endpoint(self, ref: Reference) -> Endpoint:
        return await self.endpoint(ref.domain, mirrors=True)

    async def resolve(self, ref: Reference, creds: Credentials, platform: mf.Platform | None = None) -> Resolved:
        """The manifest to pull: HEAD for the digest, GET by that digest (or the ref's), every
        digest checked; an index is followed to this platform's manifest (nested ones too).
        A mirror that fails hands over to the next candidate, as moby's endpoint loop does."""
        if ref.domain == DEFAULT_DOMAIN and self.mirrors:
            return await self._resolve_with_mirrors(ref, creds, platform)
        ep = await self.pull_endpoint(ref)
        return await self._resolve_at(ep, ref, creds, platform)

    async def _resolve_with_mirrors(self, ref: Reference, creds: Credentials, platform) -> Resolved:
        error: ShoalError | None = None
        for base, mirror in await self.candidates(ref.domain, mirrors=True):
            try:
                ep = await self.ping(base, mirror)
                resolved = await self._resolve_at(ep, ref, creds, platform)  # moby sends them to mirrors too
            except ShoalError as exc:
                error = exc
                if mirror:
                    continue
                raise
            self._endpoints[(ref.domain, True)] = ep
            return resolved
        assert error is not None
        raise error

    async def _resolve_at(self, ep: Endpoint, ref: Reference, creds: Credentials, platform) -> Resolved:
        body, mtype, digest = await self.get_manifest(ep, ref, ref.reference, creds)
        index_digest = None
        for _ in range(4):  # nested indexes, bounded
            if mtype not in mf.INDEX_TYPES:
                mf.parse(body, mtype)  # refuses plugins, models and malformed manifests before any download
                return Resolved(body, mtype, digest, index_digest)
            index_digest = index_digest or digest
            chosen = mf.select_platform(mf.parse(body, mtype), platform)
            body, mtype, digest = await self.get_manifest(ep, ref, chosen.digest, creds)
            if chosen.media_type and chosen.media_type != mtype:
                raise InvalidParameter(f"manifest {chosen.digest}: index says {chosen.media_type}, registry sent {mtype}")
        raise InvalidParameter("manifest lists nested too deep")

    async def get_manifest(self, ep: Endpoint, ref: Reference, tag_or_digest: str, creds: Credentials
                           ) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of one manifest, verified against the digest asked for
        or, by tag, the one the registry states (HEAD first: Docker Hub does not count it)."""
        path = f"/v2/{ref.remote}/manifests/{tag_or_digest}"
        scopes = (pull_scope(ref.remote),)
        headers = {"Accept": mf.ACCEPT}
        expected = tag_or_digest if tag_or_digest.startswith("sha256:") else None
        if expected is None:
            head = await self.send(ep, "HEAD", path, scopes, creds, headers=headers)
            await head.aclose()
            stated = head.headers.get("docker-content-digest", "")
            if head.status_code in (401, 403, 429):  # a GET would only spend another token on it
                err, after = await self.error_of(head)
                raise pull_error(err, ref.familiar_name, ref.familiar, after)
            if head.status_code == 200 and stated.startswith("sha256:"):
                expected = stated
                path = f"/v2/{ref.remote}/manifests/{stated}"
        resp = await self.send(ep, "GET", path, scopes, creds, headers=headers, stream=True)
        if resp.status_code != 200:
            err, after = await self.error_of(resp)
            raise pull_error(err, ref.familiar_name, ref.familiar, after)
        body = await _read_limited(resp, MANIFEST_LIMIT, "manifest")
        digest = mf.sha256(body)
        stated = resp.headers.get("docker-content-digest", "")
        if (expected and digest != expected) or (stated.startswith("sha256:") and stated != digest):
            raise InvalidParameter(f"manifest verification failed for digest {expected or stated}")
        return body, mf.detect_media_type(resp.headers.get("content-type"), body, ref.familiar), digest

    async def fetch_config(self, ref: Reference, creds: Credentials, digest: str) -> bytes:
        """The image config blob, verified: the image ID is its digest."""
        ep = await self.pull_endpoint(ref)
        resp = await self.send(ep, "GET", f"/v2/{ref.remote}/blobs/{digest}", (pull_scope(ref.remote),), creds,
                               headers={"Accept-Encoding": "identity"}, stream=True)
        if resp.status_code != 200:
            err, after = await self.error_of(resp)
            raise pull_error(err, ref.familiar_name, ref.familiar, after)
        body = await _read_limited(resp, CONFIG_LIMIT, "image config")
        if mf.sha256(body) != digest:
            raise InvalidParameter(f"image config verification failed for digest {digest}")
        return body


async def _read_limited(resp: httpx.Response, limit: int, what: str) -> bytes:
    chunks, total = [], 0
    try:
        async for chunk in resp.aiter_raw():
            total += len(chunk)
            if total > limit:
                raise InvalidParameter(f"{what} too large: more than {limit} bytes")
            chunks.append(chunk)
    except httpx.TransportError as exc:
        raise unreachable("GET", str(resp.request.url), resp.request.url.netloc.decode(), exc) from None
    finally:
        await resp.aclose()
    return b"".join(chunks)


def _merge_scopes(scopes: tuple[str, ...], resp: httpx.Response) -> tuple[str, ...]:
    """A 401 may name the scope it wants (insufficient_scope); ask for it with ours."""
    extra = [s for ch in parse_challenges(resp.headers.get_list("www-authenticate")) if ch.scheme == "bearer"
             for s in ch.scopes if s not in scopes]
    return scopes + tuple(extra)


def _login_domain(serveraddress: str) -> str:
    """The registry a login is for: Docker Hub for empty or any of its legacy names."""
    address = serveraddress.strip()
    if not address or address in HUB_NAMES or address.rstrip("/") in ("https://index.docker.io/v1",
                                                                          "https://index.docker.io"):
        return DEFAULT_DOMAIN
    address = address.removeprefix("https://").removeprefix("http://")
    domain = address.split("/", 1)[0]
    if not _DOMAIN.match(domain):
        raise InvalidParameter(f"invalid registry address {serveraddress!r}: expected HOST[:PORT]")
    return domain


_DOMAIN = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
