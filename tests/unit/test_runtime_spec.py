"""OCI config.json generation and conmon argv (no root, no runc)."""

from pathlib import Path

import pytest

from shoal.errors import InvalidParameter
from shoal.runtime.monitor import Launch, MonitorPaths, runtime_error
from shoal.runtime.runtime import signal_number
from shoal.runtime.spec import ContainerSpec, ExecSpec, exec_process, oci_config, spec_from_json, spec_to_json


def ns_types(config):
    return {ns["type"]: ns.get("path") for ns in config["linux"]["namespaces"]}


def test_config_with_a_netns_and_etc_files():
    spec = ContainerSpec(id="c1", args=("sh",), hostname="web", tty=True, netns="/run/netns/shrt-x",
                         hosts=Path("/d/hosts"), hostname_file=Path("/d/hostname"), resolv_conf=Path("/d/resolv.conf"))
    config = oci_config(spec, Path("/data/c1/merged"))
    assert config["root"] == {"path": "/data/c1/merged", "readonly": False}
    assert ns_types(config) == {"pid": None, "ipc": None, "uts": None, "mount": None, "network": "/run/netns/shrt-x"}
    assert config["hostname"] == "web"
    proc = config["process"]
    assert proc["terminal"] is True and proc["args"] == ["sh"] and proc["user"] == {"uid": 0, "gid": 0, "additionalGids": [0]}
    assert "TERM=xterm" in proc["env"]
    for cap in ("CAP_NET_RAW", "CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_KILL"):
        assert cap in proc["capabilities"]["bounding"] and cap in proc["capabilities"]["effective"]
    assert "CAP_SYS_ADMIN" not in proc["capabilities"]["bounding"]
    mounts = {m["destination"]: m for m in config["mounts"]}
    assert {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"} <= set(mounts)
    assert "ro" in mounts["/sys"]["options"]
    for dest, src in (("/etc/hosts", "/d/hosts"), ("/etc/hostname", "/d/hostname"), ("/etc/resolv.conf", "/d/resolv.conf")):
        assert mounts[dest]["type"] == "bind" and mounts[dest]["source"] == src and "ro" not in mounts[dest]["options"]


def test_host_networking_leaves_the_network_namespace_out():
    config = oci_config(ContainerSpec(id="c2", args=("true",)), Path("/m"))
    assert "network" not in ns_types(config)
    assert "hostname" not in config
    assert not any(m["destination"].startswith("/etc/") for m in config["mounts"])
    assert config["process"]["terminal"] is False and "TERM=xterm" not in config["process"]["env"]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"args": ()}, "No command specified"),
    ({"args": ("sh",), "cwd": "rel"}, "absolute path"),
    ({"args": ("sh",), "user": "nobody:"}, "invalid user format"),
    ({"args": ("sh",), "user": "4294967296"}, "range"),
])
def test_spec_validation(kwargs, match):
    with pytest.raises(InvalidParameter, match=match):
        ContainerSpec(id="c", **kwargs)


def test_spec_json_round_trip():
    spec = ContainerSpec(id="c", args=("a", "b"), env=("A=1",), user="1000:1000", netns="/run/netns/x",
                         hosts=Path("/h"), open_stdin=True, stdin_once=True, labels={"k": "v"})
    assert spec_from_json(spec_to_json(spec)) == spec


def test_exec_process_inherits_env_user_and_caps():
    config = oci_config(ContainerSpec(id="c", args=("sh",), env=("A=1",), user="5:6", cwd="/w"), Path("/m"))
    proc = exec_process(config, ExecSpec(args=("ls",), env=("B=2",), tty=True))
    assert proc["args"] == ["ls"] and proc["env"][:2] == ["A=1", "B=2"]
    assert proc["user"] == {"uid": 5, "gid": 6, "additionalGids": [6]} and proc["cwd"] == "/w" and proc["terminal"] is True
    assert proc["capabilities"] == config["process"]["capabilities"]
    assert exec_process(config, ExecSpec(args=("id",), user="0", cwd="/"))["user"] == {"uid": 0, "gid": 0,
                                                                                 "additionalGids": [0]}


def test_conmon_argv():
    paths = MonitorPaths(Path("/r/containers/c1"))
    argv = Launch(cid="c1", uuid="c1", paths=paths, runc_root=Path("/r/runc"), tty=True, stdin=True).argv()
    assert argv[0] == "/usr/bin/conmon"
    assert ["--runtime-arg", "--root", "--runtime-arg", "/r/runc"] == argv[argv.index("--root") - 1 : argv.index("--root") + 3]
    assert "k8s-file:/r/containers/c1/ctr.log" in argv and "-t" in argv and "-i" in argv
    assert "--full-attach" in argv and "--leave-stdin-open" not in argv and "-e" not in argv
    ex = Launch(cid="c1", uuid="e1", paths=MonitorPaths(Path("/x")), runc_root=Path("/r"), tty=False, stdin=False,
                exec_process=Path("/x/process.json"), exec_attach=True).argv()
    assert "-e" in ex and "--exec-attach" in ex and "/x/process.json" in ex and "-t" not in ex


def test_runc_errors_become_docker_like():
    err = runtime_error('time="2024" level=error msg="runc create failed: exec: \\"nope\\": executable file not found in $PATH"\n')
    assert isinstance(err, InvalidParameter) and 'exec: "nope": executable file not found' in str(err)
    assert "OCI runtime error: boom" == str(runtime_error("boom"))


@pytest.mark.parametrize(("sig", "num"), [("TERM", 15), ("SIGKILL", 9), ("9", 9), (2, 2), ("hup", 1)])
def test_signal_names(sig, num):
    assert signal_number(sig) == num


def test_bad_signal():
    with pytest.raises(InvalidParameter, match="Invalid signal: SIGNOPE"):
        signal_number("SIGNOPE")


def test_cgroup_parent_goes_only_when_empty(tmp_path):
    from shoal.runtime.spec import remove_cgroup_parent

    for h in ("memory", "pids", "cpu"):
        (tmp_path / h / "shoal").mkdir(parents=True)
    (tmp_path / "pids" / "shoal" / "another-daemons-container").mkdir()
    (tmp_path / "cpu,cpuacct").symlink_to(tmp_path / "cpu")
    removed = remove_cgroup_parent(tmp_path)
    assert sorted(p.parent.name for p in removed) == ["cpu", "memory"]
    assert (tmp_path / "pids" / "shoal" / "another-daemons-container").is_dir()
    assert remove_cgroup_parent(tmp_path / "missing") == []


def test_runtime_name_is_kept_and_old_records_ran_runc():
    spec = ContainerSpec(id="c1", args=("sh",), runtime="crun")
    assert spec_from_json(spec_to_json(spec)).runtime == "crun"
    old = spec_to_json(spec)
    del old["runtime"]
    assert spec_from_json(old).runtime == "runc"


def test_audit_reads_every_runtimes_state_root(tmp_path):
    """A crun container's state is under crun's root: no 'runc has no state' for it, and a
    leftover under either root is named with its runtime."""
    from types import SimpleNamespace

    from shoal.runtime.audit import state_dirs

    roots = {"runc": tmp_path / "runc", "crun": tmp_path / "runtimes" / "crun"}
    (roots["crun"] / "c1").mkdir(parents=True)
    (roots["runc"] / "c2").mkdir(parents=True)
    rt = SimpleNamespace(state_roots=lambda: roots)
    assert state_dirs(rt) == {("crun", "c1"), ("runc", "c2")}


def test_crun_hybrid_refusal_names_the_fix():
    err = runtime_error("cgroups in hybrid mode not supported, drop all controllers from cgroupv2")
    assert "drop all controllers" in err.message and "v1 hierarchies" in err.message
