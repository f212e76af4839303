"""`open_kv`: Docker's `--cluster-store` / `--cluster-store-opt` into a KV.

    --cluster-store etcd://h1:2379,h2:2379[/path]
    --cluster-store-opt kv.cacertfile=ca.pem --cluster-store-opt kv.certfile=c.pem
    --cluster-store-opt kv.keyfile=c-key.pem           (all three: https to etcd)

The URL's path becomes a key namespace (Docker puts it in front of its root chain):
`etcd://h/shoal` stores shoal's key "/network/x" as "/shoal/network/x", so callers use
the same keys (which start with "/") whatever the path. `memory://` gives a MemoryKV, for
single-process trials. Options outside `kv.` (e.g. `discovery.heartbeat`) belong to other
parts of the daemon and are ignored here; an unknown `kv.` option is refused, so a typo
never silently disables TLS.

TLS follows Docker's rule (libnetwork's OptionKVOpts, the kv discovery): it is on when all
three files are given, and the client then presents its certificate and trusts only that CA
(etcd's --client-cert-auth setup). Docker talks plain http when any of the three is missing,
so `kv.cacertfile` alone silently meant no TLS at all; shoal refuses a partial set at start
instead, saying what is missing. A file that cannot be read as what it should be (a CA, a
certificate, its key) is a start-up error naming the option.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from shoal.errors import InvalidParameter
from shoal.store.etcd import EtcdKV
from shoal.store.kv import KV
from shoal.store.memkv import MemoryKV

TLS_OPTS = ("kv.cacertfile", "kv.certfile", "kv.keyfile")
DEFAULT_PORT = 2379


def parse_store_opts(opts: Iterable[str]) -> dict[str, str]:
    """Repeated `--cluster-store-opt key=value` flags into a dict."""
    out = {}
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep or not key.strip():
            raise InvalidParameter(f"invalid cluster-store-opt {opt!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


def parse_endpoints(url: str) -> tuple[list[str], str]:
    """("host:port" list, key prefix) from etcd://h1:p1,h2:p2[/path]."""
    parts = urlsplit(url)
    if parts.scheme != "etcd":
        raise InvalidParameter(f"cluster store {url!r}: only etcd:// (and memory://) stores are supported")
    hosts = []
    for host in parts.netloc.split(","):
        host = host.strip()
        if not host:
            raise InvalidParameter(f"cluster store {url!r}: empty member address")
        name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if not name or not port:
            name, port = host, str(DEFAULT_PORT)
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidParameter(f"cluster store {url!r}: bad port in {host!r}")
        hosts.append(f"{name}:{port}")
    path = parts.path.strip("/")
    return hosts, f"/{path}" if path else ""


def tls_context(opts: Mapping[str, str], *, tls12: bool = False) -> ssl.SSLContext | None:
    """An SSL context from kv.cacertfile/certfile/keyfile (all three), or None (none given).

    `tls12` caps it at TLS 1.2, for EtcdKV's probe: a refused client certificate is then
    refused inside the handshake (TLS 1.3 reports it after the request has been sent)."""
    unknown = sorted(k for k in opts if k.startswith("kv.") and k not in TLS_OPTS)
    if unknown:
        raise InvalidParameter(f"unknown cluster-store-opt {', '.join(unknown)} (known: {', '.join(TLS_OPTS)})")
    given = {k: opts[k] for k in TLS_OPTS if opts.get(k)}
    if not given:
        return None
    missing = [k for k in TLS_OPTS if k not in given]
    if missing:
        raise InvalidParameter(
            f"cluster-store-opt {', '.join(given)} without {' and '.join(missing)}: TLS to the cluster store "
            f"needs all of {', '.join(TLS_OPTS)} (Docker talks plain http with fewer); give the missing ones, "
            "or none for plain http")
    for key, path in given.items():
        if not os.path.isfile(path):
            raise InvalidParameter(f"cluster-store-opt {key}={path}: no such file")
    try:
        context = ssl.create_default_context(cafile=given["kv.cacertfile"])
    except ssl.SSLError as e:
        raise InvalidParameter(f"cluster-store-opt kv.cacertfile={given['kv.cacertfile']}: not a PEM CA "
                               f"certificate ({e.reason or e})") from None
    try:
        context.load_cert_chain(given["kv.certfile"], given["kv.keyfile"])
    except ssl.SSLError as e:
        raise InvalidParameter(f"cluster-store-opt kv.certfile={given['kv.certfile']}, kv.keyfile={given['kv.keyfile']}: "
                               f"not a PEM certificate and its private key ({e.reason or e})") from None
    if tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


def open_kv(url: str, opts: Mapping[str, str] | None = None, **tuning: float) -> KV:
    """The KV for a `--cluster-store` URL; `tuning` passes EtcdKV's timeouts (tests)."""
    opts = dict(opts or {})
    if url.startswith("memory://"):
        return MemoryKV(url=url)
    hosts, prefix = parse_endpoints(url)
    context = tls_context(opts)
    probe = tls_context(opts, tls12=True) if context is not None else None
    scheme = "https" if context is not None else "http"
    return EtcdKV([f"{scheme}://{h}" for h in hosts], url=url, prefix=prefix, tls=context, tls_probe=probe,
                  **tuning)
