"""`shoal ps`/`images` rendering and the list/lifecycle/image commands' requests and output."""

from __future__ import annotations

import json
import time

import pytest

from shoal.cli.listviews import ContainerRow, ImageRow, ellipsis, human_duration, human_size, image_rows
from shoal.cli.lifecycle import container_format, template_uses_size
from shoal.cli.netviews import HeaderRow
from shoal.cli.output import render_list
from shoal.cli.listviews import CONTAINER_HEADERS, IMAGE_HEADERS

from tests.unit.test_cli_containers import CID, IMAGE_ID, Reply, Stub, calls, stub  # noqa: F401 - fixture

NOW = 1_700_000_000


def summary(name: str, command: str, created: int, status: str, **extra) -> dict:
    base = {"Id": name * 8 + "0" * (64 - 8 * len(name)), "Names": [f"/{name}"], "Image": "busybox",
            "ImageID": IMAGE_ID, "Command": command, "Created": created, "Ports": [], "Labels": {},
            "State": "running" if status.startswith("Up") else "exited", "Status": status,
            "HostConfig": {"NetworkMode": "bridge"}, "NetworkSettings": {"Networks": {"bridge": {}}}, "Mounts": []}
    base.update(extra)
    return base


CONTAINERS = [
    summary("web", "sleep 600", NOW - 4, "Up 3 seconds", Labels={"b": "2", "a": "1"}),
    summary("job", "sh -c echo out; echo err >&2; exit 7", NOW - 7200, "Exited (7) 2 hours ago",
            NetworkSettings={"Networks": {"n2": {}, "n1": {}}}),
]


@pytest.mark.parametrize("seconds, text", [
    (0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"), (119, "About a minute"),
    (3599, "59 minutes"), (3600, "About an hour"), (5399, "About an hour"), (5400, "2 hours"), (47 * 3600, "47 hours"),
    (48 * 3600, "2 days"), (14 * 86400, "2 weeks"), (60 * 86400, "2 months"), (730 * 86400, "2 years"),
    (-5, "Less than a second"),
])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


@pytest.mark.parametrize("size, precision, text", [
    (0, 3, "0B"), (999, 3, "999B"), (1000, 3, "1kB"), (1984000, 3, "1.98MB"), (1984000, 4, "1.984MB"),
    (999999, 3, "1e+03kB"), (5 * 10**9, 3, "5GB"), (123456789, 3, "123MB"),
])
def test_human_size(size, precision, text):
    assert human_size(size, precision) == text


def test_ellipsis_counts_display_cells():
    assert ellipsis("sleep 600", 20) == "sleep 600"
    assert ellipsis("sh -c echo out; echo err >&2; exit 7", 20) == "sh -c echo out; ech…"
    assert ellipsis("日本語のコマンドです", 7) == "日本語…"
    assert ellipsis("abc", 1) == "a" and ellipsis("abc", 0) == ""


def test_container_row_columns():
    row = ContainerRow(CONTAINERS[1], now=NOW)
    assert row.ID() == "jobjobjobjob" and row.Names() == "job" and row.Image() == "busybox"
    assert row.Command() == '"sh -c echo out; ech…"' and row.RunningFor() == "2 hours ago"
    assert row.Networks() == "n1,n2" and row.Size() == "0B" and row.Platform().go_str() == "<nil>"
    full = ContainerRow(CONTAINERS[1], trunc=False)
    assert full.Command() == '"sh -c echo out; echo err >&2; exit 7"' and len(full.ID()) == 64
    by_id = ContainerRow({**CONTAINERS[0], "Image": IMAGE_ID})
    assert by_id.Image() == "42bf3b5a41bf"
    named = ContainerRow({**CONTAINERS[0], "Image": "docker.io/library/busybox:1@sha256:" + "a" * 64})
    assert named.Image() == "busybox:1"
    quoted = ContainerRow({**CONTAINERS[0], "Command": 'echo "a\tb"'})
    assert quoted.Command() == '"echo \\"a\\tb\\""'


def test_ps_table_matches_docker_layout():
    rows = [ContainerRow(c, now=NOW) for c in CONTAINERS]
    out = render_list(container_format("", False, False), rows, HeaderRow(CONTAINER_HEADERS))
    assert out == (
        "CONTAINER ID   IMAGE     COMMAND                  CREATED         STATUS                   PORTS     NAMES\n"
        "webwebwebweb   busybox   \"sleep 600\"              4 seconds ago   Up 3 seconds                       web\n"
        "jobjobjobjob   busybox   \"sh -c echo out; ech…\"   2 hours ago     Exited (7) 2 hours ago             job\n"
    )


def test_ps_formats():
    rows = [ContainerRow(c, now=NOW) for c in CONTAINERS]
    assert container_format("{{.Names}}", True, False) == "{{.ID}}"
    assert container_format("", False, True).endswith("\t{{.Size}}")
    out = render_list("json", rows[:1], HeaderRow(CONTAINER_HEADERS))
    data = json.loads(out)
    assert list(data) == sorted(data) and data["Labels"] == "a=1,b=2" and data["Platform"] is None
    assert data["Command"] == '"sleep 600"' and data["RunningFor"] == "4 seconds ago"
    raw = render_list(container_format("raw", False, False), rows[:1], HeaderRow(CONTAINER_HEADERS))
    assert raw.startswith("container_id: webwebwebweb\nimage: busybox\ncommand: \"sleep 600\"\n")
    assert "state: running\nstatus: Up 3 seconds\nnames: web\nlabels: a=1,b=2\nports:\n\n" in raw  # pad skips empty values
    assert render_list('{{.Label "b"}} {{.State}}', rows[:1], None) == "2 running\n"


def test_size_column_is_requested_only_when_used():
    assert template_uses_size("table {{.ID}}\t{{.Size}}") and template_uses_size("{{json .}}")
    assert not template_uses_size("{{.Names}}") and not template_uses_size("json")


IMAGES = [
    {"Id": IMAGE_ID, "ParentId": "", "RepoTags": ["busybox:latest", "me/app:1"], "RepoDigests": [],
     "Created": NOW - 30 * 60, "Size": 1984000, "SharedSize": -1, "Labels": {}, "Containers": 2},
    {"Id": "sha256:" + "b" * 64, "RepoTags": [], "RepoDigests": [], "Created": NOW - 3 * 86400, "Size": 512,
     "SharedSize": -1, "Containers": -1},
]


def test_images_table_and_json():
    rows = image_rows(IMAGES, trunc=True, digests=False, now=NOW)
    assert [(r.Repository(), r.Tag(), r.Digest()) for r in rows] == [
        ("busybox", "latest", "<none>"), ("me/app", "1", "<none>"), ("<none>", "<none>", "<none>")]
    from shoal.cli.images import image_format

    out = render_list(image_format("", False, False), rows, HeaderRow(IMAGE_HEADERS))
    assert out == (
        "REPOSITORY   TAG       IMAGE ID       CREATED          SIZE\n"
        "busybox      latest    42bf3b5a41bf   30 minutes ago   1.98MB\n"
        "me/app       1         42bf3b5a41bf   30 minutes ago   1.98MB\n"
        "<none>       <none>    bbbbbbbbbbbb   3 days ago       512B\n"
    )
    line = render_list("json", rows[:1], None).strip()
    assert '"Digest":"\\u003cnone\\u003e"' in line  # docker's MarshalJSON escapes HTML
    data = json.loads(line)
    assert (data["Containers"], data["VirtualSize"], data["SharedSize"], data["UniqueSize"]) == ("2", "1.984MB", "N/A", "N/A")
    assert ImageRow(IMAGES[1], "<none>", "<none>", "<none>").Containers() == "N/A"
    assert image_format("{{.ID}}", True, False) == "{{.ID}}" and image_format("table {{.ID}}", False, True).endswith("\t{{.Digest}}")
    assert image_format("", True, True) == "{{.ID}}"


# ---------------------------------------------------------------------------------------------
# commands against the stub


def test_ps_request_and_warning(stub):
    stub.route("GET", "/containers/json", lambda s: [{**c, "Created": int(time.time()) - 7200} for c in CONTAINERS])
    result = stub.shoal("ps", "-a", "-q", "--format", "{{.Names}}", "-f", "status=exited", "-n", "3")
    assert result.stdout == "webwebwebweb\njobjobjobjob\n"
    assert result.stderr == "WARNING: Ignoring custom format, because both --format and --quiet are set.\n"
    seen = stub.take()[0]
    assert seen.q() == {"all": "1", "limit": "3", "filters": '{"status":{"exited":true}}'}
    stub.shoal("ps", "--format", "{{.Size}}")
    assert stub.take()[0].q() == {"size": "1"}
    bad = stub.shoal("ps", "--format", "{{.Names")
    assert bad.exit_code == 1 and bad.stderr.startswith("failed to parse template: template: :1:")


def test_logs_query_and_streams(stub):
    result = stub.shoal("logs", "-f", "-t", "--tail", "5", "web")
    assert (result.stdout, result.stderr) == ("log-out\n", "log-err\n")
    seen = stub.take()
    assert calls(seen) == ["GET /containers/web/json", f"GET /containers/{CID}/logs"]
    assert seen[1].q() == {"stdout": "1", "stderr": "1", "tail": "5", "follow": "1", "timestamps": "1"}


def test_stop_kill_restart_rm_wait_outputs(stub):
    missing = Reply(404, {"message": "No such container: nope"})
    stub.route("POST", r"/containers/nope/\w+", lambda s: missing)
    stub.route("DELETE", r"/containers/nope", lambda s: missing)
    stub.wait_status = 137
    for args, out in ((["stop", "-t", "1", "a1", "nope", "a2"], "a1\na2\n"), (["kill", "-s", "TERM", "a1", "nope"], "a1\n"),
                      (["restart", "a1", "nope"], "a1\n"), (["rm", "a1", "nope"], "a1\n"), (["wait", "a1", "nope"], "137\n")):
        result = stub.shoal(*args)
        assert (result.exit_code, result.stdout, result.stderr) == (1, out, "Error response from daemon: No such container: nope\n"), args
    forced = stub.shoal("rm", "-f", "a1", "nope")
    assert (forced.exit_code, forced.stdout, forced.stderr) == (0, "a1\n", "Error response from daemon: No such container: nope\n")
    seen = stub.take()
    assert ("POST", "/containers/a1/stop", {"t": "1"}) in [(s.method, s.path, s.q()) for s in seen]
    assert ("POST", "/containers/a1/kill", {"signal": "TERM"}) in [(s.method, s.path, s.q()) for s in seen]
    assert ("DELETE", "/containers/a1", {"force": "1"}) in [(s.method, s.path, s.q()) for s in seen]


def test_inspect_looks_up_container_then_image_then_network(stub):
    stub.route("GET", r"/containers/(bb|br|nope)/json", lambda s: Reply(404, {"message": "No such container"}))
    stub.route("GET", r"/images/bb/json", lambda s: {"Id": IMAGE_ID})
    stub.route("GET", r"/images/(br|nope)/json", lambda s: Reply(404, {"message": "No such image"}))
    stub.route("GET", r"/networks/br", lambda s: {"Name": "br", "Id": "n" * 64, "IPAM": {"Config": []}})
    stub.route("GET", r"/networks/nope", lambda s: Reply(404, {"message": "network nope not found"}))
    result = stub.shoal("inspect", "-f", "{{.Id}}", "web", "bb", "br", "nope")
    assert result.stdout == f"{CID}\n{IMAGE_ID}\n{'n' * 64}\n"
    assert (result.exit_code, result.stderr) == (1, "Error: No such object: nope\n")
    only = stub.shoal("inspect", "nope")
    assert (only.stdout, only.stderr) == ("[]\n", "Error: No such object: nope\n")


def test_images_rmi_tag_import(stub, tmp_path):
    stub.route("GET", "/images/json", lambda s: IMAGES[:1])
    listing = stub.shoal("images", "-q", "busybox")
    assert listing.stdout == "42bf3b5a41bf\n42bf3b5a41bf\n"
    assert stub.take()[0].q() == {"filters": '{"reference":{"busybox":true}}'}
    stub.route("DELETE", r"/images/.*", lambda s: [{"Untagged": "me/app:1"}, {"Deleted": IMAGE_ID}])
    removed = stub.shoal("rmi", "-f", "me/app:1")
    assert removed.stdout == f"Untagged: me/app:1\nDeleted: {IMAGE_ID}\n"
    assert [(s.path, s.q()) for s in stub.take()] == [("/images/me/app:1", {"force": "1"})]
    stub.route("POST", r"/images/.*/tag", lambda s: Reply(201, None))
    assert stub.shoal("image", "tag", "busybox", "bb").exit_code == 0
    assert stub.take()[0].q() == {"repo": "docker.io/library/bb", "tag": "latest"}
    bad = stub.shoal("image", "tag", "busybox", "Bad")
    assert bad.stderr == ('Error parsing reference: "Bad" is not a valid repository/tag: invalid reference format: '
                          "repository name (library/Bad) must be lowercase\n")
    stub.route("POST", "/images/create", lambda s: ("lines", json.dumps({"status": IMAGE_ID}).encode() + b"\r\n"))
    tar = tmp_path / "rootfs.tar"
    tar.write_bytes(b"x" * 200000)
    imported = stub.shoal("image", "import", "-c", 'CMD ["sh"]', "-c", "ENV A=1", "-m", "hi", str(tar), "repo:tag")
    assert (imported.exit_code, imported.stdout) == (0, IMAGE_ID + "\n")
    create = stub.take()[0]
    assert create.query == [("changes", 'CMD ["sh"]'), ("changes", "ENV A=1"), ("fromSrc", "-"), ("message", "hi"),
                            ("repo", "repo:tag")]
    assert create.body == b"x" * 200000 and create.headers["transfer-encoding"] == "chunked"
    from_stdin = stub.shoal("image", "import", "-", input=b"tar-data")
    assert from_stdin.exit_code == 0 and stub.take()[0].body == b"tar-data"
    missing = stub.shoal("image", "import", str(tmp_path / "none.tar"))
    assert missing.stderr == f"open {tmp_path / 'none.tar'}: no such file or directory\n"
