"""Transport failures to etcd in words a user can act on (used by requests and watches).

The innermost cause says most: a refused connection, or a TLS failure, which is always a
configuration problem on one side (the CA, a certificate, https against plain http) and
so is named with what to check.
"""

from __future__ import annotations

import ssl

import httpx


def causes(e: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return chain


def refused(e: BaseException) -> bool:
    """httpx says "All connection attempts failed"; the OSError under it says refused."""
    return any(isinstance(c, ConnectionRefusedError) for c in causes(e))


def tls_error(e: BaseException) -> ssl.SSLError | None:
    return next((c for c in causes(e) if isinstance(c, ssl.SSLError)), None)


TLS_HINT = "check kv.cacertfile, kv.certfile and kv.keyfile against etcd's --cert-file and --trusted-ca-file"


def _tls_reason(err: ssl.SSLError) -> str:
    """What a TLS failure means for the user, with the library's words."""
    words = getattr(err, "verify_message", "") or err.reason or str(err)
    if isinstance(err, ssl.SSLCertVerificationError):
        return (f"TLS: etcd's certificate is not accepted ({words}): kv.cacertfile must be the CA that signed it, "
                "and it must name the address used")
    code = err.reason or ""
    if "ALERT" in code and ("CERTIFICATE" in code or "UNKNOWN_CA" in code):
        return f"TLS: etcd refused our client certificate ({words}): is kv.certfile signed by its --trusted-ca-file?"
    if code in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
        return f"TLS: the member does not speak TLS ({words}): is etcd serving https here (--cert-file)?"
    if code == "UNEXPECTED_EOF_WHILE_READING":  # what etcd's plain http server does with a ClientHello
        return (f"TLS: the member closed the connection in the handshake ({words}): is etcd serving https "
                "here (--cert-file)?")
    return f"TLS: {words}"


def reason(e: BaseException) -> str:
    """The most telling words for a transport failure (the innermost OS error if any)."""
    if refused(e):
        return "connection refused"
    if (tls := tls_error(e)) is not None:
        return _tls_reason(tls)
    if isinstance(e, httpx.TimeoutException):
        return f"no answer in time ({type(e).__name__})"
    return f"{type(e).__name__} {e}".strip()
