"""BIRD's configuration (bgp.config): golden files, BIRD's own parser, the rules of the
mesh (passive toward higher addresses, route reflectors), and the supervisor (bgp.Bird)
against a real BIRD inside a throwaway namespace.

Regenerate the golden files with `SHOAL_UPDATE_GOLDEN=1 pytest tests/unit/test_bgp.py`.
"""

import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from shoal.bgp import BgpConfig, Bird, render
from shoal.errors import InvalidParameter

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "bird"

CONFIGS = {
    "mesh_three_hosts": BgpConfig(router_id="198.18.10.2", peers=("198.18.10.3", "198.18.10.1"),
                                  blocks=("10.64.3.0/26", "10.64.0.192/26"), pools=("10.64.0.0/16", "10.65.0.0/16")),
    "alone_no_blocks": BgpConfig(router_id="198.18.10.1", pools=("10.64.0.0/16",)),
    "no_pools": BgpConfig(router_id="198.18.10.1", peers=("198.18.10.2",)),
    "route_reflector": BgpConfig(router_id="198.18.10.1", peers=("198.18.10.2", "198.18.10.3", "198.18.10.4"),
                                 route_reflectors=("198.18.10.1", "198.18.10.2"), pools=("10.64.0.0/16",),
                                 blocks=("10.64.0.0/26",)),
    "rr_client": BgpConfig(router_id="198.18.10.3", peers=("198.18.10.1", "198.18.10.2", "198.18.10.4"),
                           route_reflectors=("198.18.10.1", "198.18.10.2"), pools=("10.64.0.0/16",),
                           local_as=65001, restart_time=300),
}


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.conf"
    if os.environ.get("SHOAL_UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; run with SHOAL_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from {path}; if intended, run with SHOAL_UPDATE_GOLDEN=1"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_rendered_config_golden(name):
    check_golden(name, render(CONFIGS[name]))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_bird_parses_the_rendered_config(name, tmp_path):
    if shutil.which("bird") is None:
        pytest.skip("bird2 is not installed")
    conf = tmp_path / "bird.conf"
    conf.write_text(render(CONFIGS[name]))
    p = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_the_higher_address_of_each_pair_listens():
    sessions = CONFIGS["mesh_three_hosts"].sessions()
    assert sessions == [("198.18.10.1", False, False), ("198.18.10.3", True, False)]


def test_route_reflectors_peer_with_everyone_clients_with_reflectors_only():
    rr = CONFIGS["route_reflector"].sessions()
    assert [p for p, _, _ in rr] == ["198.18.10.2", "198.18.10.3", "198.18.10.4"]
    assert [c for _, _, c in rr] == [False, True, True]  # the other reflector is no client
    assert [p for p, _, _ in CONFIGS["rr_client"].sessions()] == ["198.18.10.1", "198.18.10.2"]


def test_the_containers_32s_are_never_exported():
    text = render(CONFIGS["mesh_three_hosts"])
    export = text.split("filter shoal_export {")[1].split("}")[0]
    assert 'proto = "shoal_blocks"' in export and "reject" in export


@pytest.mark.parametrize("bad", [dict(router_id="fe80::1"), dict(router_id="x"), dict(peers=("1.2.3",)),
                                 dict(pools=("10.0.0.0/33",)), dict(local_as=0), dict(restart_time=0)])
def test_bad_input_is_refused(bad):
    with pytest.raises(InvalidParameter):
        BgpConfig(**{"router_id": "198.18.10.1", **bad})


# --- the supervisor, against a real BIRD ----------------------------------------------

@pytest.fixture
def netns():
    if os.geteuid() != 0 or shutil.which("bird") is None:
        pytest.skip("needs root and bird2")
    name = f"shq-bgp-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for argv in (["link", "set", "lo", "up"], ["link", "add", "d0", "type", "veth", "peer", "name", "d1"],
                     ["addr", "add", "198.18.99.1/24", "dev", "d0"], ["link", "set", "d0", "up"],
                     ["link", "set", "d1", "up"]):
            subprocess.run(["ip", "-n", name, *argv], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name])


def routes(ns):
    return subprocess.run(["ip", "-n", ns, "route", "show", "proto", "bird"], capture_output=True, text=True).stdout


async def until(pred, timeout=20.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_bird_is_started_reconfigured_restarted_and_stopped(netns):
    """In the namespace (this thread enters it; BIRD inherits it): the blocks appear as
    blackholes, a new block after `birdc configure`, a killed BIRD comes back, a graceful
    stop leaves the routes, a plain stop takes them."""
    from shoal.kernel.sandbox import entered

    run_dir = Path(tempfile.mkdtemp(prefix="shq-bird-"))

    async def go():
        bird = Bird(run_dir, backoff=(0.1, 0.5))
        cfg = BgpConfig(router_id="198.18.99.1", peers=("198.18.99.2",), pools=("10.64.0.0/16",),
                        blocks=("10.64.1.0/26",), recovery_wait=1)  # the peer never answers
        with entered(f"/run/netns/{netns}"):
            await bird.apply(cfg)
        await until(lambda: "blackhole 10.64.1.0/26" in routes(netns))
        first = bird.pid
        with entered(f"/run/netns/{netns}"):
            await bird.apply(BgpConfig(**{**cfg.__dict__, "blocks": ("10.64.1.0/26", "10.64.2.0/26")}))
        await until(lambda: "blackhole 10.64.2.0/26" in routes(netns))
        assert bird.pid == first and bird.starts == 1  # reconfigured, not restarted
        os.kill(first, 9)
        with entered(f"/run/netns/{netns}"):  # the restart happens from the watcher task
            await until(lambda: bird.starts == 2 and bird.running)
            assert "bgp1" not in await bird.birdc_command("show", "protocols")
            await bird.stop(graceful=True)
        assert not bird.running and "blackhole 10.64.2.0/26" in routes(netns)  # kept for the next BIRD
        with entered(f"/run/netns/{netns}"):
            await bird.apply(cfg)
            await until(lambda: "10.64.2.0/26" not in routes(netns))  # the next BIRD prunes what it does not hold
            await bird.stop(graceful=False)
        assert routes(netns).strip() == ""

    try:
        asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
