"""Registry failures in dockerd 20.10's words (distribution/errors.go, registry/client/errors.go),
as classes of shoal's one error tree: the CLI prints these strings verbatim and users search
for them, so they are rebuilt here the way distribution's client renders them."""

from __future__ import annotations

import errno
import json
from dataclasses import dataclass
from http import HTTPStatus

import httpx

from shoal.errors import Forbidden, NotFound, ShoalError, Unauthorized

from .auth import parse_challenges

# errcode descriptors: code -> default message (distribution registry/api/{errcode,v2})
DEFAULT_MESSAGES = {
    "UNKNOWN": "unknown error",
    "UNSUPPORTED": "The operation is unsupported.",
    "UNAUTHORIZED": "authentication required",
    "DENIED": "requested access to the resource is denied",
    "UNAVAILABLE": "service unavailable",
    "TOOMANYREQUESTS": "too many requests",
    "MANIFEST_UNKNOWN": "manifest unknown",
    "NAME_UNKNOWN": "repository name not known to registry",
    "BLOB_UNKNOWN": "blob unknown to registry",
    "MANIFEST_BLOB_UNKNOWN": "blob unknown to registry",
    "BLOB_UPLOAD_UNKNOWN": "blob upload unknown to registry",
    "DIGEST_INVALID": "provided digest did not match uploaded content",
}


class RegistryUnreachable(ShoalError):
    """No HTTP answer at all (refused, no such host, TLS, timeout). dockerd answers 500 with
    Go's url.Error text, so this stays a 500 rather than a 503."""


class TooManyRequests(ShoalError):
    """429: dockerd passes it on as a 500 with the registry's text; `retry_after` is the
    registry's Retry-After in seconds, or None."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DigestMismatch(ShoalError):
    """Downloaded bytes that do not hash to their digest: a 500 mid-pull, as dockerd's."""


@dataclass(frozen=True)
class RegistryErrorBody:
    """The first error of a registry's answer: `code` as sent ("MANIFEST_UNKNOWN"), or ""
    when the body was not the registry's JSON."""

    code: str
    message: str

    def __str__(self) -> str:
        # errcode.Error: lowercased code with spaces, then the message
        return f"{self.code.lower().replace('_', ' ')}: {self.message}" if self.code else self.message


def parse_error(status: int, body: bytes, www_authenticate: list[str]) -> RegistryErrorBody:
    """HandleErrorResponse's order: an OAuth error in the challenge first, then `details`,
    then the `errors` list; a 401 with a body it cannot read is "authentication required"."""
    if 400 <= status < 500:
        for ch in parse_challenges(www_authenticate):
            code = {"invalid_token": "UNAUTHORIZED", "insufficient_scope": "DENIED"}.get(ch.params.get("error", ""))
            if ch.scheme == "bearer" and code:
                return RegistryErrorBody(code, ch.params.get("error_description") or DEFAULT_MESSAGES[code])
    else:
        return RegistryErrorBody("", f"received unexpected HTTP status: {status} {_reason(status)}")
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("details"), str) and data["details"]:
        code = {401: "UNAUTHORIZED", 429: "TOOMANYREQUESTS"}.get(status, "UNKNOWN")
        return RegistryErrorBody(code, data["details"])
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = str(errors[0].get("code") or "UNKNOWN").upper()
        message = errors[0].get("message")
        return RegistryErrorBody(code, str(message) if message else DEFAULT_MESSAGES.get(code, "unknown error"))
    if status == 401:
        return RegistryErrorBody("UNAUTHORIZED", DEFAULT_MESSAGES["UNAUTHORIZED"])
    return RegistryErrorBody("", f"error parsing HTTP {status} response body: no error details found in "
                                 f"HTTP response body: {body[:200].decode(errors='replace')!r}")


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def pull_error(err: RegistryErrorBody, familiar_name: str, familiar: str, retry_after: int | None = None
               ) -> ShoalError:
    """translatePullError + notFoundError: what `docker pull` shows."""
    if err.code == "DENIED":
        return NotFound(f"pull access denied for {familiar_name}, repository does not exist or may require "
                        f"'docker login': {err}")
    if err.code == "MANIFEST_UNKNOWN":
        return NotFound(f"manifest for {familiar} not found: {err}")
    if err.code == "NAME_UNKNOWN":
        return NotFound(f"repository {familiar_name} not found: {err}")
    return common_error(err, retry_after)


def push_error(err: RegistryErrorBody, retry_after: int | None = None) -> ShoalError:
    if err.code == "DENIED":
        return Forbidden(str(err))
    return common_error(err, retry_after)


def common_error(err: RegistryErrorBody, retry_after: int | None = None) -> ShoalError:
    if err.code == "UNAUTHORIZED":
        return Unauthorized(str(err))
    if err.code == "TOOMANYREQUESTS":
        return TooManyRequests(str(err), retry_after)
    return ShoalError(str(err))


def retry_after(resp: httpx.Response) -> int | None:
    value = resp.headers.get("retry-after", "")
    return int(value) if value.strip().isdigit() else None


def go_op(method: str) -> str:
    """Go's url.Error names the method "Get", "Head", "Put"."""
    return method[:1].upper() + method[1:].lower()


def transport_text(exc: BaseException, host: str) -> str:
    """A Go-like dial error for an httpx transport failure: the text dockerd would print."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno is not None:
            if cause.errno == errno.ECONNREFUSED:
                return f"dial tcp {host}: connect: connection refused"
            if cause.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
                return f"dial tcp {host}: connect: {'network' if cause.errno == errno.ENETUNREACH else 'host'} is unreachable"
        if type(cause).__name__ == "gaierror":
            return f"dial tcp: lookup {host.rsplit(':', 1)[0]}: no such host"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.TimeoutException):
        return f"dial tcp {host}: i/o timeout" if isinstance(exc, httpx.ConnectTimeout) else "net/http: timeout awaiting response headers"
    text = str(exc) or type(exc).__name__
    if "connection attempts failed" in text.lower() or "connection refused" in text.lower():
        return f"dial tcp {host}: connect: connection refused"
    return text


def unreachable(method: str, url: str, host: str, exc: BaseException) -> RegistryUnreachable:
    return RegistryUnreachable(f'{go_op(method)} "{url}": {transport_text(exc, host)}')
