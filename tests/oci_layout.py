"""OCI image layouts built in pure Python for registry tests (image-spec layout.md, layer.md):
layers from entry lists (files with modes, owners and setuid bits, directories, symlinks,
hardlinks, device nodes, `.wh.` whiteouts and opaque markers), gzip / zstd / plain blobs,
a config with rootfs.diff_ids and a container config, manifests, and multi-arch indexes
with a BuildKit-style attestation entry. `seed` pushes a layout with skopeo.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TYPES = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
               "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
               "plain": "application/vnd.oci.image.layer.v1.tar"}
REF_NAME = "org.opencontainers.image.ref.name"
_KINDS = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
          "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One tar member. `target` is the link target for symlinks and hardlinks."""

    path: str
    kind: str = "file"
    data: bytes = b""
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    target: str = ""
    major: int = 0
    minor: int = 0
    mtime: int = 0
    xattrs: dict[str, str] = field(default_factory=dict)


def file(path: str, data: bytes | str = b"", mode: int = 0o644, uid: int = 0, gid: int = 0, **kw) -> Entry:
    return Entry(path, "file", data.encode() if isinstance(data, str) else data, mode, uid, gid, **kw)


def directory(path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(path, "dir", mode=mode, uid=uid, gid=gid)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, "symlink", mode=0o777, target=target)


def hardlink(path: str, target: str) -> Entry:
    return Entry(path, "hardlink", target=target)


def device(path: str, kind: str = "char", major: int = 1, minor: int = 3, mode: int = 0o666) -> Entry:
    return Entry(path, kind, mode=mode, major=major, minor=minor)


def whiteout(path: str) -> Entry:
    """Hides `path` of lower layers."""
    parent, _, name = path.rstrip("/").rpartition("/")
    return file(f"{parent}/.wh.{name}" if parent else f".wh.{name}")


def opaque(directory_path: str) -> Entry:
    """Hides everything lower layers have in the directory."""
    return file(f"{directory_path.rstrip('/')}/.wh..wh..opq")


def layer_tar(entries: list[Entry]) -> bytes:
    """The uncompressed layer (its sha256 is the DiffID); PAX, so xattrs survive."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.path.lstrip("/"))
            info.type = _KINDS[e.kind]
            info.mode = e.mode if e.mode is not None else (0o755 if e.kind == "dir" else 0o644)
            info.uid, info.gid, info.mtime = e.uid, e.gid, e.mtime
            info.linkname = e.target.lstrip("/") if e.kind == "hardlink" else e.target
            info.devmajor, info.devminor = e.major, e.minor
            if e.xattrs:
                info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in e.xattrs.items()}
            if e.kind == "file":
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    if compression == "plain":
        return data
    raise ValueError(f"unknown compression {compression}")


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256(self.data)

    def descriptor(self, **extra) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data), **extra}


@dataclass(frozen=True)
class Image:
    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]
    diff_ids: tuple[str, ...]

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers, self.manifest)


def image_config(diff_ids: list[str], arch: str = "amd64", os: str = "linux", variant: str = "",
                 history: list[dict] | None = None, **config) -> dict:
    """An image config; `config` keys are the container config's (Env, Cmd, Entrypoint,
    WorkingDir, User, ExposedPorts, Labels, Healthcheck, Volumes, StopSignal)."""
    doc = {"architecture": arch, "os": os, "created": "2026-01-01T00:00:00Z",
           "config": config, "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
           "history": history or [{"created": "2026-01-01T00:00:00Z", "created_by": f"layer {i}"}
                                  for i in range(len(diff_ids))]}
    if variant:
        doc["variant"] = variant
    return doc


def build_image(layers: list[list[Entry]], compression: str | list[str] = "gzip", arch: str = "amd64",
                os: str = "linux", variant: str = "", **config) -> Image:
    kinds = [compression] * len(layers) if isinstance(compression, str) else list(compression)
    tars = [layer_tar(entries) for entries in layers]
    blobs = tuple(Blob(LAYER_TYPES[k], compress(t, k)) for t, k in zip(tars, kinds))
    diff_ids = tuple(sha256(t) for t in tars)
    cfg = Blob(OCI_CONFIG, json.dumps(image_config(list(diff_ids), arch, os, variant, **config)).encode())
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cfg.descriptor(),
                "layers": [b.descriptor() for b in blobs]}
    return Image(Blob(OCI_MANIFEST, json.dumps(manifest).encode()), cfg, blobs, diff_ids)


def attestation_for(image: Image) -> Image:
    """A BuildKit-style attestation manifest (in-toto layer, unknown/unknown in the index)."""
    statement = Blob("application/vnd.in-toto+json", json.dumps({"_type": "https://in-toto.io/Statement/v0.1"}).encode())
    cfg = Blob(OCI_CONFIG, json.dumps({"architecture": "unknown", "os": "unknown", "config": {},
                                       "rootfs": {"type": "layers", "diff_ids": [statement.digest]}}).encode())
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cfg.descriptor(),
                "layers": [statement.descriptor(annotations={"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"})]}
    return Image(Blob(OCI_MANIFEST, json.dumps(manifest).encode()), cfg, (statement,), (statement.digest,))


def build_index(images: list[Image], attestations: bool = True) -> tuple[Blob, list[Image]]:
    """A multi-arch index of `images` (platforms from their configs), each followed by its
    attestation entry when `attestations`; returns the index and every image it holds."""
    entries, held = [], []
    for img in images:
        cfg = json.loads(img.config.data)
        plat = {"architecture": cfg["architecture"], "os": cfg["os"]}
        if cfg.get("variant"):
            plat["variant"] = cfg["variant"]
        entries.append(img.manifest.descriptor(platform=plat))
        held.append(img)
        if attestations:
            att = attestation_for(img)
            entries.append(att.manifest.descriptor(
                platform={"architecture": "unknown", "os": "unknown"},
                annotations={"vnd.docker.reference.type": "attestation-manifest",
                             "vnd.docker.reference.digest": img.manifest.digest}))
            held.append(att)
    return Blob(OCI_INDEX, json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()), held


def write_layout(layout: Path, tag: str, top: Blob, images: list[Image]) -> Path:
    """Add `top` (a manifest or an index over `images`) to the layout at `layout` as `tag`."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    for blob in [b for img in images for b in img.blobs] + [top]:
        (blobs / blob.digest.removeprefix("sha256:")).write_bytes(blob.data)
    index_path = layout / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"schemaVersion": 2, "manifests": []}
    index["manifests"] = [m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) != tag]
    index["manifests"].append(top.descriptor(annotations={REF_NAME: tag}))
    index_path.write_text(json.dumps(index))
    return layout


def write_image(layout: Path, tag: str, image: Image) -> Path:
    return write_layout(layout, tag, image.manifest, [image])


def seed(registry_url: str, layout_dir: Path, repo: str, tag: str, fmt: str = "oci", all: bool = False,
         netns: str | None = None, creds: str | None = None) -> str:
    """Push layout tag `tag` to `registry_url` (http://HOST:PORT) as REPO:TAG with skopeo;
    returns the digest of the manifest (or index) as pushed. fmt "oci" keeps the bytes;
    "v2s2" converts to Docker schema2 (new manifest digest)."""
    host = registry_url.split("://", 1)[-1].rstrip("/")
    with tempfile.TemporaryDirectory(prefix="shr-skopeo-") as tmp:
        policy, digestfile = Path(tmp) / "policy.json", Path(tmp) / "digest"
        policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        argv = ["skopeo", "--policy", str(policy), "copy", "--dest-tls-verify=false", "--digestfile", str(digestfile)]
        argv += ["--all"] if all else []
        argv += ["--format", "v2s2"] if fmt == "v2s2" else ["--preserve-digests"]
        argv += ["--dest-creds", creds] if creds else []
        argv += [f"oci:{layout_dir}:{tag}", f"docker://{host}/{repo}:{tag}"]
        if netns:
            argv = ["nsenter", f"--net=/run/netns/{netns}", *argv]
        p = subprocess.run(argv, capture_output=True, text=True, check=False,
                           env={"HOME": tmp, "PATH": "/usr/bin:/bin"})
        if p.returncode != 0:
            raise RuntimeError(f"skopeo copy failed: {p.stderr.strip()}")
        return digestfile.read_text().strip()
