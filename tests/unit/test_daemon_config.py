"""shoald's command line: Docker's --add-runtime / --default-runtime."""

import pytest

from shoal.daemon.config import RUNC_PATH, parse_args


def test_default_runtime_is_runc():
    cfg = parse_args([])
    assert cfg.default_runtime == "runc" and cfg.runtime_path == RUNC_PATH


def test_added_runtime_can_be_the_default():
    cfg = parse_args(["--add-runtime", "mine=/opt/bin/runc", "--default-runtime", "mine"])
    assert cfg.runtimes["mine"] == "/opt/bin/runc" and cfg.runtimes["runc"] == RUNC_PATH
    assert cfg.runtime_path == "/opt/bin/runc"


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


def test_crun_is_registered_once_installed(monkeypatch, tmp_path):
    """crun joins runc without flags when its binary is there; not otherwise."""
    from shoal.daemon import config

    fake = tmp_path / "crun"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setattr(config, "CRUN_PATH", str(fake))
    cfg = parse_args(["--default-runtime", "crun"])
    assert cfg.runtimes["crun"] == str(fake) and cfg.runtime_path == str(fake)
    assert parse_args(["--add-runtime", "crun=/opt/crun"]).runtimes["crun"] == "/opt/crun"
    monkeypatch.setattr(config, "CRUN_PATH", str(tmp_path / "absent"))
    assert parse_args([]).runtimes == {"runc": RUNC_PATH, "io.containerd.runc.v2": RUNC_PATH,
                                       "io.containerd.runtime.v1.linux": RUNC_PATH}  # as dockerd's /info


@pytest.mark.parametrize("argv,words", [
    (["--add-runtime", "runc=/opt/runc"], "runtime name 'runc' is reserved"),
    (["--add-runtime", "../x=/opt/runc"], "invalid runtime"),
    (["--default-runtime", "nope"], "specified default runtime 'nope' does not exist"),
])
def test_runtime_flags_in_dockerds_words(argv, words, capsys):
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert words in capsys.readouterr().err
