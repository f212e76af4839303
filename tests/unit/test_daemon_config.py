"""shoald's command line: Docker's --add-runtime / --default-runtime."""

import pytest

from shoal.daemon.config import RUNC_PATH, parse_args


def test_default_runtime_is_runc():
    cfg = parse_args([])
    assert cfg.default_runtime == "runc" and cfg.runtime_path == RUNC_PATH


def test_added_runtime_can_be_the_default():
    cfg = parse_args(["--add-runtime", "mine=/opt/bin/runc", "--default-runtime", "mine"])
    assert cfg.runtimes == {"runc": RUNC_PATH, "mine": "/opt/bin/runc"} and cfg.runtime_path == "/opt/bin/runc"


@pytest.mark.parametrize("argv", [["--default-runtime", "nope"], ["--add-runtime", "x"],
                                  ["--add-runtime", "x=relative/path"]])
def test_bad_runtime_flags_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    assert "runtime" in capsys.readouterr().err


@pytest.mark.parametrize("mode,initial,turned_off", [
    ("auto", False, True), ("auto", True, False), ("off", True, True), ("leave", False, False)])
def test_br_netfilter_switch(mode, initial, turned_off):
    """auto: off only in a namespace of shoald's own; the machine's is shared with Docker
    and kube-proxy, whose rules need bridged frames in the IP hooks."""
    import asyncio

    from shoal.daemon.main import switch_br_netfilter
    from shoal.kernel.fake import FakeKernel

    assert parse_args(["--br-netfilter", mode]).br_netfilter == mode
    kernel = FakeKernel()
    kernel.initial_netns = initial
    assert asyncio.run(switch_br_netfilter(kernel, mode)) is turned_off
    expected = {"net/bridge/bridge-nf-call-iptables": "0", "net/bridge/bridge-nf-call-ip6tables": "0"}
    assert kernel.sysctls == (expected if turned_off else {})
