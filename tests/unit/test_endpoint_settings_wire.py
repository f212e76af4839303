"""Endpoint settings as dockerd 20.10 keeps and shows them (measured side by side,
2026-12-01): DriverOpts and IPAMConfig.LinkLocalIPs come back in inspect; the short id
joins the aliases only once the endpoint exists; GwPriority is not in API 1.41."""

from shoal.api.container_wire import endpoint_json, endpoint_request, networks_json
from shoal.model import Endpoint, Network
from shoal.model.container import Container

SETTINGS = {"IPAMConfig": {"IPv4Address": "10.88.0.9", "LinkLocalIPs": ["169.254.9.9"]}, "Aliases": ["al1"],
            "DriverOpts": {"k": "v"}, "MacAddress": "02:42:aa:bb:cc:dd"}


def made():
    req = endpoint_request("epn", SETTINGS)
    rec = Container(id="c" * 64, name="epc", created="", image="busybox", image_id="", args=("sleep",),
                    networks=(req,))
    return Container.from_dict(rec.to_dict()), Network(id="n" * 64, name="epn", created="")  # through the store


def test_settings_survive_the_store_and_show_in_inspect():
    rec, net = made()
    created = networks_json(rec, [], {net.id: net}, "1.41", running=False)["epn"]
    assert created["DriverOpts"] == {"k": "v"}
    assert created["IPAMConfig"] == {"IPv4Address": "10.88.0.9", "LinkLocalIPs": ["169.254.9.9"]}
    assert created["MacAddress"] == "02:42:aa:bb:cc:dd" and created["Aliases"] == ["al1"]
    assert "GwPriority" not in created
    ep = Endpoint(id="e" * 64, network_id=net.id, name="epc", ipv4="10.88.0.9/24", mac="02:42:aa:bb:cc:dd")
    running = endpoint_json(ep, net, rec.networks[0], rec, "1.41")
    assert running["Aliases"] == ["al1", "c" * 12] and running["DriverOpts"] == {"k": "v"}
    assert endpoint_json(ep, net, rec.networks[0], rec, "1.48")["GwPriority"] == 0


def test_records_from_before_keep_loading():
    rec, _ = made()
    data = rec.to_dict()
    for n in data["networks"]:
        n.pop("driver_opts")
        n.pop("link_local")
    old = Container.from_dict(data)
    assert old.networks[0].driver_opts == () and old.networks[0].aliases == ("al1",)
