"""An endpoint's link (EndpointSettings.Links) on a user network, as dockerd 20.10 takes it
(measured 2026-12-01): to a container that exists, its alias resolves through the embedded
DNS for the linking container only; to one that does not, the container still starts."""

import httpx

from .conftest import needs_docker

pytestmark = needs_docker


def test_endpoint_links_resolve_and_a_missing_target_is_no_error(box):
    d = box
    d.docker("network", "create", "ln")
    d.docker("run", "-d", "--name", "tgt", "--network", "ln", "busybox", "sleep", "60")
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(d.sock)), base_url="http://shoal", timeout=30) as c:
        for name, links in (("l1", ["nosuch:gone"]), ("l2", ["tgt:al"])):
            body = {"Image": "busybox", "Cmd": ["sleep", "60"], "HostConfig": {"NetworkMode": "ln"},
                    "NetworkingConfig": {"EndpointsConfig": {"ln": {"Links": links}}}}
            assert c.post("/v1.41/containers/create", params={"name": name}, json=body).status_code == 201
            r = c.post(f"/v1.41/containers/{name}/start")
            assert r.status_code == 204, r.text
    assert d.docker("exec", "l2", "ping", "-c1", "-W2", "al").returncode == 0
    tgt_ip = d.docker("inspect", "-f", "{{(index .NetworkSettings.Networks \"ln\").IPAddress}}", "tgt").stdout.strip()
    out = d.docker("exec", "l2", "nslookup", "al", check=False)
    assert out.returncode == 0 and tgt_ip in out.stdout, out.stdout  # from the embedded DNS
    assert " al" not in d.docker("exec", "l2", "cat", "/etc/hosts").stdout.replace("\t", " ")
    assert tgt_ip not in d.docker("exec", "l1", "nslookup", "al", check=False).stdout  # l2's link only
    assert d.docker("exec", "l1", "ping", "-c1", "-W1", "gone", check=False).returncode != 0
