"""Throwaway certificates for TLS to etcd, made with the `openssl` command line (argument
lists, into a directory the caller owns and removes): a CA, a server certificate whose
SANs are the members' IP addresses, and a client certificate. P-256 keys, valid two days.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def _openssl(*args: str) -> None:
    p = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {p.stderr.strip()}")


def _key_and_csr(key: Path, csr: Path, cn: str, *extensions: str) -> None:
    addext = [a for ext in extensions for a in ("-addext", ext)]
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={cn}", *addext)


@dataclass(frozen=True)
class Pki:
    """One CA and what it signed."""

    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def opts(self) -> dict[str, str]:
        """Docker's --cluster-store-opt names for a client of this CA."""
        return {"kv.cacertfile": str(self.ca), "kv.certfile": str(self.client_cert), "kv.keyfile": str(self.client_key)}


def make_pki(root: Path, name: str, ips: list[str]) -> Pki:
    """A CA `name` under root/name, a server certificate for `ips`, a client certificate."""
    d = root / name
    d.mkdir(parents=True)
    ca, ca_key = d / "ca.pem", d / "ca-key.pem"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj", f"/CN=sht {name} CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    out = {}
    # etcd's JSON gateway dials etcd's own gRPC port with the *server* certificate as its
    # client certificate: with --client-cert-auth that certificate needs clientAuth too, or
    # every gateway request answers 503 "connection closed"
    for role, usage, san in (("server", "serverAuth,clientAuth", ",".join(f"IP:{ip}" for ip in ips)),
                             ("client", "clientAuth", "")):
        key, csr, cert = d / f"{role}-key.pem", d / f"{role}.csr", d / f"{role}.pem"
        exts = ["keyUsage=critical,digitalSignature", f"extendedKeyUsage={usage}"]
        if san:
            exts.append(f"subjectAltName={san}")
        _key_and_csr(key, csr, f"sht {name} {role}", *exts)
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-set_serial",
                 str(len(out) + 2), "-days", "2", "-copy_extensions", "copyall", "-out", str(cert))
        out[role] = (cert, key)
    return Pki(ca, ca_key, out["server"][0], out["server"][1], out["client"][0], out["client"][1])
