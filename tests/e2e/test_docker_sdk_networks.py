"""The Python docker SDK against shoald (high-level and low-level APIs)."""

import pytest

docker = pytest.importorskip("docker")


def test_sdk_networks_roundtrip(shoald):
    client = docker.DockerClient(base_url=shoald.host, version="auto")
    assert client.ping() is True
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(
        subnet="10.77.0.0/24", iprange="10.77.0.128/25", gateway="10.77.0.1", aux_addresses={"r": "10.77.0.5"})])
    net = client.networks.create("sdk1", driver="bridge", labels={"a": "b"}, ipam=ipam,
                                 options={"com.docker.network.driver.mtu": "1450"})
    assert net.attrs["IPAM"] == {"Driver": "default", "Options": None, "Config": [
        {"Subnet": "10.77.0.0/24", "IPRange": "10.77.0.128/25", "Gateway": "10.77.0.1",
         "AuxiliaryAddresses": {"r": "10.77.0.5"}}]}
    assert client.networks.get("sdk1").id == net.id
    assert client.networks.get(net.id[:10]).name == "sdk1"
    assert sorted(n.name for n in client.networks.list()) == ["bridge", "host", "none", "sdk1"]
    assert [n.name for n in client.networks.list(filters={"label": "a=b"})] == ["sdk1"]
    assert [n.name for n in client.networks.list(names=["sdk1"])] == ["sdk1"]
    net.reload()
    assert net.attrs["Options"] == {"com.docker.network.driver.mtu": "1450"}
    assert shoald.link(f"br-{net.id[:12]}")["mtu"] == 1450
    with pytest.raises(docker.errors.APIError) as err:
        client.networks.create("sdk1")
    assert err.value.status_code == 409
    with pytest.raises(docker.errors.NotFound):
        client.networks.get("missing")
    net.remove()
    client.networks.create("sdk2")
    assert client.networks.prune() == {"NetworksDeleted": ["sdk2"]}
    with pytest.raises(docker.errors.APIError) as err:
        client.networks.create("sdk3", driver="host")
    assert err.value.status_code == 403


def test_low_level_api_client(shoald):
    api = docker.APIClient(base_url=shoald.host, version="1.45")
    created = api.create_network("low", driver="bridge", check_duplicate=True, internal=True,
                                 enable_ipv6=True, attachable=True, labels={"x": "1"})
    net = api.inspect_network(created["Id"])
    assert net["Internal"] and net["Attachable"] and net["EnableIPv6"]
    assert "EnableIPv4" not in net  # introduced in API 1.48
    assert [n["Name"] for n in api.networks(names=["low"])] == ["low"]
    assert [n["Name"] for n in api.networks(ids=[created["Id"]])] == ["low"]
    api.remove_network("low")
    assert api.networks(names=["low"]) == []
    status, body = shoald.api("GET", "/v1.12/networks")
    assert status == 400 and "too old" in body["message"]
