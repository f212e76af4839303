"""Registry credentials and the Bearer token dance (distribution's docs/spec/auth/token.md).

Tokens are cached per (realm, service, scopes) and honour `expires_in`: a long pull must
not reuse a token past its life, and a 401 half-way gets one fresh token, then gives up.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass, field

import httpx

from shoal.errors import InvalidParameter

MIN_TOKEN_LIFETIME = 60  # seconds: the spec's default when expires_in is absent


@dataclass(frozen=True)
class Credentials:
    """What `X-Registry-Auth` or a login body carries; all empty means anonymous."""

    username: str = ""
    password: str = ""
    serveraddress: str = ""
    identitytoken: str = ""
    registrytoken: str = ""

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.password or self.identitytoken or self.registrytoken)

    @classmethod
    def from_json(cls, data: object) -> Credentials:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise InvalidParameter("invalid X-Registry-Auth header: not a JSON object")
        username, password = _str(data, "username"), _str(data, "password")
        if not (username or password) and (auth := _str(data, "auth")):
            username, password = _basic_pair(auth)
        return cls(username, password, _str(data, "serveraddress"), _str(data, "identitytoken"),
                   _str(data, "registrytoken"))


def _str(data: dict, key: str) -> str:
    value = next((v for k, v in data.items() if k.lower() == key), "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidParameter(f"invalid X-Registry-Auth header: {key} must be a string")
    return value


def _basic_pair(auth: str) -> tuple[str, str]:
    try:
        user, sep, password = base64.b64decode(auth + "=" * (-len(auth) % 4)).decode().partition(":")
    except (ValueError, UnicodeDecodeError) as exc:  # binascii.Error is one; non-ASCII input another
        raise InvalidParameter(f"invalid X-Registry-Auth header: auth: {exc}") from None
    if not sep:
        raise InvalidParameter("invalid X-Registry-Auth header: auth is not user:password")
    return user, password


def decode_registry_auth(header: str | None) -> Credentials:
    """`X-Registry-Auth`: base64url JSON, padding optional; missing or empty is anonymous
    (docker-py sends `e30=`, "{}", for no credentials)."""
    if not header or not header.strip():
        return Credentials()
    text = header.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidParameter(f"invalid X-Registry-Auth header: {exc}") from None
    return Credentials.from_json(data)


@dataclass(frozen=True)
class Challenge:
    """One `WWW-Authenticate` challenge; `scheme` is lowercased ("bearer", "basic")."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.params.get("scope", "").split())


_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenges(headers: list[str]) -> list[Challenge]:
    """RFC 7235 challenges; several may share one header, parameters may be quoted."""
    out = []
    for header in headers:
        pos = 0
        while pos < len(header):
            m = re.compile(r"\s*,?\s*([A-Za-z][A-Za-z0-9_-]*)\s*").match(header, pos)
            if not m or m.end() == pos:
                break
            scheme, pos, params = m.group(1).lower(), m.end(), {}
            while (p := _PARAM.match(header, pos)) and p.end() > pos:
                value = p.group(2) if p.group(2) is not None else p.group(3)
                params[p.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
                pos = p.end()
            out.append(Challenge(scheme, params))
    return out


def pull_scope(repo: str) -> str:
    return f"repository:{repo}:pull"


def push_scope(repo: str) -> str:
    return f"repository:{repo}:pull,push"


@dataclass
class _Token:
    value: str
    expires: float


class TokenCache:
    """Tokens per (realm, service, scopes, who): a token asked with one user's password must
    not answer for another's request."""

    def __init__(self, clock=time.monotonic) -> None:
        self._tokens: dict[tuple, _Token] = {}
        self._clock = clock

    def get(self, key: tuple) -> str | None:
        tok = self._tokens.get(key)
        if tok is None or tok.expires <= self._clock():
            self._tokens.pop(key, None)
            return None
        return tok.value

    def put(self, key: tuple, value: str, expires_in: float) -> None:
        # a little early, so a token does not run out between the check and the request
        self._tokens[key] = _Token(value, self._clock() + max(expires_in, 1) * 0.9)

    def drop(self, key: tuple) -> None:
        self._tokens.pop(key, None)


class TokenError(Exception):
    """The token server refused: status, its error body (already read) and its URL."""

    def __init__(self, status: int, body: bytes, url: str, challenges: list[Challenge]) -> None:
        super().__init__(f"token server answered {status}")
        self.status, self.body, self.url, self.challenges = status, body, url, challenges


def cache_key(challenge: Challenge, scopes: tuple[str, ...], creds: Credentials) -> tuple:
    return (challenge.realm, challenge.service, tuple(sorted(scopes)), creds.username, creds.identitytoken)


async def fetch_token(client: httpx.AsyncClient, challenge: Challenge, scopes: tuple[str, ...],
                      creds: Credentials) -> tuple[str, float]:
    """(token, expires_in) from the realm: an identity token goes as a refresh_token by
    POST (OAuth2); otherwise GET with Basic credentials when there are any."""
    if not challenge.realm:
        raise InvalidParameter("no realm specified for token auth challenge")
    params: list[tuple[str, str]] = [("service", challenge.service)] if challenge.service else []
    if creds.identitytoken:
        form = {"grant_type": "refresh_token", "refresh_token": creds.identitytoken,
                "service": challenge.service, "client_id": "shoal", "scope": " ".join(scopes)}
        resp = await client.post(challenge.realm, data=form)
    else:
        params += [("scope", s) for s in scopes]
        auth = (creds.username, creds.password) if creds.username or creds.password else None
        resp = await client.get(challenge.realm, params=params, auth=auth)
    body = await resp.aread()
    if not 200 <= resp.status_code < 300:
        raise TokenError(resp.status_code, body, str(resp.request.url),
                         parse_challenges(resp.headers.get_list("www-authenticate")))
    try:
        data = json.loads(body)
        token = data.get("token") or data.get("access_token")
    except (ValueError, AttributeError):
        raise InvalidParameter(f"unable to decode token response: {body[:200]!r}") from None
    if not token:
        raise InvalidParameter("authorization server did not include a token in the response")
    expires_in = data.get("expires_in")
    numeric = isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and expires_in > 0
    lifetime = expires_in if numeric else MIN_TOKEN_LIFETIME
    return token, float(lifetime)
