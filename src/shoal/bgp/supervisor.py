"""One BIRD per host, run and watched by shoald.

BIRD runs in shoald's network namespace as `bird -f -R -c CONF -s SOCK -P PIDFILE`, its
files in one run directory of shoald's. `-R` (graceful restart recovery) on every start:
a BIRD started after one that died or was stopped for a graceful restart finds that
one's routes in the kernel, and without `-R` its first kernel scan deletes them, so
the host loses its routes to the other hosts for the seconds its sessions take to come
back (measured: a ping across hosts failed while a killed BIRD was replaced); with it
they stay until the peers have sent theirs again (`graceful restart wait`). On a first
start there is nothing to keep and it costs nothing. `apply(cfg)` writes the configuration (only when
its text changed) and starts BIRD, or has the running one re-read it (`birdc configure`:
sessions that did not change stay up). A BIRD that dies is started again after a pause
that doubles from `backoff[0]` up to `backoff[1]` seconds (reset once it ran a minute),
and its peers keep its routes meanwhile (graceful restart).

At shutdown shoald asks BIRD for a graceful restart (`birdc graceful restart`: it exits,
the kernel keeps its routes, the peers keep ours), so a restarting shoald never takes
its containers off the network; the next start takes over. A BIRD left running by a
shoald that was killed is adopted (its pid file names a live `bird` reading our
configuration) and watched by polling. `stop(graceful=False)` shuts it down for good
(`shoald --cleanup`), and its routes leave the kernel with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from pathlib import Path

from shoal.bgp.config import BgpConfig, render
from shoal.errors import ShoalError, Unavailable

log = logging.getLogger("shoal.bgp")


class Bird:
    def __init__(self, run_dir: Path | str, *, bird: str = "", birdc: str = "",
                 backoff: tuple[float, float] = (0.5, 30.0)) -> None:
        self.dir = Path(run_dir)
        self.conf, self.sock = self.dir / "bird.conf", self.dir / "bird.ctl"
        self.pidfile, self.log = self.dir / "bird.pid", self.dir / "bird.log"
        self.bird = bird or shutil.which("bird") or "/usr/sbin/bird"
        self.birdc = birdc or shutil.which("birdc") or "/usr/sbin/birdc"
        self.backoff = backoff
        self.pid = 0
        self.starts = 0  # how many times BIRD was started (tests and `shoal system info`)
        self.text = ""  # the configuration BIRD was last given
        self._proc: asyncio.subprocess.Process | None = None
        self._watcher: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._stopping = False

    @property
    def running(self) -> bool:
        return bool(self.pid) and _alive(self.pid)

    async def apply(self, cfg: BgpConfig | None) -> None:
        """BIRD with `cfg`; None: no BIRD (graceful stop: see module doc)."""
        async with self._lock:
            if cfg is None:
                await self._stop(graceful=True)
                return
            text = render(cfg)
            changed = text != self.text
            if changed:
                self._write(text)
            self._stopping = False
            if not self.running:
                await self._start()
            elif changed:
                await self._configure()

    def _write(self, text: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.conf.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.conf)
        self.text = text

    async def _start(self) -> None:
        adopted = self._adoptable()
        if adopted:
            self.pid = adopted
            log.info("BIRD %d (left running) adopted", adopted)
            await self._configure()
        else:
            await self._start_child()
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    def _adoptable(self) -> int:
        """A live BIRD whose command line reads our configuration, from our pid file."""
        try:
            pid = int(self.pidfile.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return 0
        if cmdline and Path(cmdline[0].decode()).name == "bird" and str(self.conf).encode() in cmdline:
            return pid
        return 0

    async def _configure(self) -> None:
        out = await self.birdc_command("configure")
        if "Reconfigur" not in out:
            log.error("BIRD refused its new configuration %s: %s", self.conf, out.strip())

    async def birdc_command(self, *words: str) -> str:
        """One birdc command on our socket; its output (Unavailable when it cannot reach BIRD)."""
        proc = await asyncio.create_subprocess_exec(self.birdc, "-s", str(self.sock), *words,
                                                    stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise Unavailable(f"birdc {' '.join(words)}: no answer from BIRD on {self.sock}") from None
        text = out.decode(errors="replace")
        if proc.returncode != 0 or "Unable to connect" in text:
            raise Unavailable(f"birdc {' '.join(words)}: {text.strip() or proc.returncode}")
        return text

    async def _watch(self) -> None:
        """Start BIRD again whenever it dies, until stopped."""
        pause = self.backoff[0]
        while not self._stopping:
            began = time.monotonic()
            await self._wait_exit()
            if self._stopping:
                return
            log.warning("BIRD (pid %d) exited; starting it again in %.1f s", self.pid, pause)
            self.pid = 0
            await asyncio.sleep(pause)
            pause = self.backoff[0] if time.monotonic() - began > 60 else min(pause * 2, self.backoff[1])
            async with self._lock:
                if self._stopping:
                    return
                if self.running:  # `apply` started one meanwhile
                    continue
                try:
                    await self._start_child()
                except (OSError, ShoalError) as exc:
                    log.error("BIRD could not be started: %s", exc)

    async def _start_child(self) -> None:
        with open(self.log, "ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                self.bird, "-f", "-R", "-c", str(self.conf), "-s", str(self.sock), "-P", str(self.pidfile),
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        self.pid = self._proc.pid
        self.starts += 1
        log.info("BIRD started (pid %d, config %s)", self.pid, self.conf)

    async def _wait_exit(self) -> None:
        proc = self._proc
        if proc is not None and proc.pid == self.pid:
            await proc.wait()
            return
        while self.pid and _alive(self.pid):  # adopted: not our child
            await asyncio.sleep(1.0)

    async def stop(self, *, graceful: bool = True) -> None:
        async with self._lock:
            await self._stop(graceful=graceful)

    async def _stop(self, *, graceful: bool) -> None:
        self._stopping = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watcher
            self._watcher = None
        pid = self.pid or self._adoptable()
        if pid and _alive(pid):
            try:
                await self.birdc_command("graceful", "restart") if graceful else await self.birdc_command("down")
            except Unavailable as exc:
                log.warning("BIRD did not answer (%s); terminating pid %d", exc, pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            await self._reap(pid)
        self.pid, self.text, self._proc = 0, "", None

    async def _reap(self, pid: int) -> None:
        proc = self._proc
        for _ in range(100):
            if proc is not None and proc.pid == pid:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 0.1)
            if not _alive(pid):
                return
            await asyncio.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if proc is not None and proc.pid == pid:
            await proc.wait()


def _alive(pid: int) -> bool:
    """Running, not a zombie (a child that exited and was not reaped yet is not alive)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in ("Z", "X")
