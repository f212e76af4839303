"""Peers without a daemon (netavark, CNI, the raw kernel floor): a namespace, an endpoint, runc.

What their "container" is: `ip netns add`, the peer's endpoint setup in that namespace,
then `runc run -d` of busybox joined to it, on one shared read-only rootfs. So their
container rows are network setup plus runc, with no image layer, no store and no monitor
process (podman would add a conmon and an overlay mount): a lower bound for a runtime
built on that network backend.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import Netns, need
from peers import Ctr, Peer, Unsupported

CMD = ["sleep", "1000000"]


class RuncBox:
    """Plain runc on one shared read-only rootfs; one tiny bundle (config.json) per container."""

    def __init__(self, root: Path, image_tar: str) -> None:
        self.runc = need("runc", "runc")
        self.dir = root / "runc"
        self.rootfs = self.dir / "rootfs"
        self.rootfs.mkdir(parents=True)
        subprocess.run(["tar", "-xf", image_tar, "-C", str(self.rootfs)], check=True)
        subprocess.run([self.runc, "spec"], cwd=self.dir, check=True)
        spec = json.loads((self.dir / "config.json").read_text())
        spec["process"]["terminal"] = False
        spec["process"]["args"] = CMD
        spec["root"] = {"path": str(self.rootfs), "readonly": True}
        self.spec = spec
        self.state = self.dir / "state"
        self.live: set[str] = set()

    def run(self, cid: str, netns_path: str) -> None:
        bundle = self.dir / "b" / cid
        bundle.mkdir(parents=True)
        spec = json.loads(json.dumps(self.spec))
        spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "network"]
        spec["linux"]["namespaces"].append({"type": "network", "path": netns_path})
        (bundle / "config.json").write_text(json.dumps(spec))
        self.live.add(cid)  # before run: a half-started container is deleted too
        # The detached container inherits runc's stdio: a pipe would never see EOF, so a file.
        with open(bundle / "runc.err", "wb") as err:
            r = subprocess.run([self.runc, "--root", str(self.state), "run", "-d", "--bundle", str(bundle), cid],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        if r.returncode != 0:
            raise RuntimeError(f"runc run {cid}: {(bundle / 'runc.err').read_text(errors='replace')[-300:]}")

    def delete(self, cid: str) -> None:
        if cid in self.live:
            r = subprocess.run([self.runc, "--root", str(self.state), "delete", "-f", cid],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True)
            if r.returncode != 0 and "does not exist" not in r.stderr:
                raise RuntimeError(f"runc delete {cid}: {r.stderr.strip()[-300:]}")
            self.live.discard(cid)
        shutil.rmtree(self.dir / "b" / cid, ignore_errors=True)

    def close(self) -> None:
        for cid in list(self.live):
            try:
                self.delete(cid)
            except RuntimeError as e:
                print(f"  {e}", file=sys.stderr)


class ToolPeer(Peer):
    """Container verbs over `attach`/`detach` of one endpoint, which each tool implements."""

    no_daemon = "no daemon"
    no_monitor_fmt = "{}: no per-container process (runc run -d directly; podman would add a conmon)"
    no_monitor = ""

    def __init__(self, workdir: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"shb-{self.name}-", dir=workdir))
        self.ns: Netns | None = None
        self.box: RuncBox | None = None
        self.ctrs: dict[str, Ctr] = {}

    def start(self, image_tar: str) -> None:
        self.ns = Netns(self.name)
        self.host_ns = self.ns.path
        self.box = RuncBox(self.root, image_tar)

    # -- what each tool provides
    def attach(self, ctr: Ctr, net: str, ifname: str) -> str:
        raise NotImplementedError

    def detach(self, ctr: Ctr, ifname: str) -> None:
        raise NotImplementedError

    def close_networks(self) -> None:
        pass

    # -- the verbs the cases time
    def run(self, net: str, publish: dict[int, int] | None = None, runtime: str = "") -> Ctr:
        ns = Netns(f"{self.name[:3]}c", lo_up=False)
        cid = f"shb-{self.name}-{secrets.token_hex(6)}"
        ctr = Ctr(id=cid, net=net, netns=ns.path, publish=dict(publish or {}), extra={"ns": ns, "eps": {}})
        self.ctrs[cid] = ctr
        ctr.ip = self.attach(ctr, net, "eth0")
        self.box.run(cid, ns.path)
        return ctr

    def rm(self, ctr: Ctr) -> None:
        try:
            self.box.delete(ctr.id)
            for ifname in reversed(list(ctr.extra["eps"])):
                self.detach(ctr, ifname)
        finally:
            ctr.extra["ns"].close()
            self.ctrs.pop(ctr.id, None)

    def connect(self, ctr: Ctr, net: str) -> None:
        self.attach(ctr, net, "eth1")

    def disconnect(self, ctr: Ctr, net: str) -> None:
        self.detach(ctr, "eth1")

    def published(self, ctr: Ctr, container_port: int) -> tuple[str, int]:
        return "127.0.0.1", ctr.publish[container_port]

    def daemon_rss_kib(self) -> int:
        raise Unsupported(self.no_daemon)

    def monitor_pid(self, ctr: Ctr) -> int:
        raise Unsupported(self.no_monitor or self.no_monitor_fmt.format(self.name))

    def close(self) -> None:
        try:
            for ctr in list(self.ctrs.values()):
                try:
                    self.rm(ctr)
                except Exception:  # noqa: BLE001 - keep cleaning the rest
                    ctr.extra["ns"].close()
            if self.box is not None:
                self.box.close()
            self.close_networks()
        finally:
            if self.ns is not None:
                self.ns.close()
            shutil.rmtree(self.root, ignore_errors=True)
