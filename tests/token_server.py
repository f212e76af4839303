"""A Bearer token server for registry 2.8's `auth.token` (distribution docs/spec/auth/token.md):
stdlib HTTP in a thread, ES256 JWTs carrying an x5c certificate the registry trusts.

It checks Basic credentials, grants anonymous users `pull` only, records every request, and
can make tokens that the registry stops accepting after `lifetime` seconds while the answer
still says `expires_in`, which is how a long pull meets a 401 half-way.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

REGISTRY_LEEWAY = 60  # registry 2.8 accepts a token this long past its exp


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signing_pair() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shoal test token signer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def parse_scope(scope: str) -> dict | None:
    """"repository:NAME:pull,push" (NAME may hold a colon: split at the first and last)."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name:
        return None
    return {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]}


@dataclass
class TokenServer:
    users: dict[str, str] = field(default_factory=dict)
    service: str = "shoal-test-registry"
    issuer: str = "shoal-test-issuer"
    lifetime: float = 300.0  # seconds the registry accepts the token (may be < 0: dead on arrival)
    expires_in: int = 300  # what the answer tells the client
    anonymous_actions: tuple[str, ...] = ("pull",)
    requests: list[dict] = field(default_factory=list)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # identity token -> user

    def __post_init__(self) -> None:
        self.key, self.cert = _signing_pair()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    def write_bundle(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    @property
    def realm(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/token"

    def token(self, sub: str, access: list[dict], lifetime: float | None = None) -> str:
        now = int(time.time())
        life = self.lifetime if lifetime is None else lifetime
        header = {"typ": "JWT", "alg": "ES256",
                  "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": self.issuer, "sub": sub, "aud": self.service, "exp": int(now + life - REGISTRY_LEEWAY),
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}".encode()
        r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return f"{signing_input.decode()}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def grant(self, user: str, scopes: list[str]) -> list[dict]:
        out = []
        for scope in scopes:
            for item in filter(None, (parse_scope(s) for s in scope.split())):
                if not user:
                    item["actions"] = [a for a in item["actions"] if a in self.anonymous_actions]
                out.append(item)
        return out

    def record(self, entry: dict) -> None:
        with self._lock:
            self.requests.append(entry)

    def start(self) -> TokenServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        threading.Thread(target=self._httpd.serve_forever, daemon=True, name="shr-token-server").start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


def _handler(server: TokenServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _basic_user(self) -> str | None:
            """"" for anonymous, the user when the password is right, None when wrong."""
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return ""
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return user if server.users.get(user) == password and user else None

        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            user = self._basic_user()
            server.record({"method": "GET", "path": self.path, "user": user, "scope": query.get("scope", []),
                           "service": query.get("service", [""])[0],
                           "authorization": self.headers.get("Authorization")})
            if user is None:
                return self._reply(401, {"details": "incorrect username or password"})
            self._issue(user, query.get("scope", []))

        def do_POST(self) -> None:
            form = urllib.parse.parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
            refresh = form.get("refresh_token", [""])[0]
            user = server.refresh_tokens.get(refresh)
            server.record({"method": "POST", "path": self.path, "user": user, "form": form})
            if form.get("grant_type") != ["refresh_token"] or user is None:
                return self._reply(401, {"details": "invalid refresh token"})
            self._issue(user, form.get("scope", [""])[0].split())

        def _issue(self, user: str, scopes: list[str]) -> None:
            token = server.token(user, server.grant(user, scopes))
            self._reply(200, {"token": token, "access_token": token, "expires_in": server.expires_in,
                              "issued_at": datetime.datetime.now(datetime.UTC).isoformat()})

    return Handler
