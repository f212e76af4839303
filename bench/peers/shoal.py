"""shoald from this checkout, in its own throwaway host namespace and data root."""

from __future__ import annotations

import subprocess

from common import BIN, Netns, in_ns, rss_kib
from peers.engine import EnginePeer


class ShoalPeer(EnginePeer):
    name = "shoal"
    extra: tuple[str, ...] = ()  # more shoald flags (bench/plugins_ab.py: its plugin directory)

    def start(self, image_tar: str) -> None:
        self.ns = Netns("shoal")
        self.host_ns = self.ns.path
        cmd = in_ns(self.ns.path, [str(BIN / "shoald"), "--data-root", str(self.root / "d"),
                                   "-H", f"unix://{self.root / 's.sock'}", "--log-level", "warning",
                                   # no periodic repair pass mid-sample: the breakdown's deltas are the operation's
                                   "--self-heal-interval", "0", *self.extra])
        self._launch(cmd, "s.sock", 30)
        self.import_image(image_tar)

    def describe(self) -> str:
        v = self._version()
        return f"shoald {v.get('Version', '?')} (API {v.get('ApiVersion', '?')})"

    def timings(self) -> dict | None:
        r = self.client.get("/shoal/timings")
        return r.json() if r.status_code == 200 else None

    def daemon_rss_kib(self) -> int:
        return rss_kib(self.proc.pid)

    def _remove_leftovers(self) -> None:
        """Containers a failed shoald left running: runc's and crun's state live under our data
        root only (runtime/runc, runtime/runtimes/crun)."""
        base = self.root / "d" / "runtime"
        for binary, state in (("runc", base / "runc"), ("crun", base / "runtimes" / "crun")):
            if not state.is_dir():
                continue
            r = subprocess.run([binary, "--root", str(state), "list", "-q"], capture_output=True, text=True)
            for cid in r.stdout.split():
                subprocess.run([binary, "--root", str(state), "delete", "-f", cid], capture_output=True)
