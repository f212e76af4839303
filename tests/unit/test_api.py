import asyncio
import json

import pytest

from .conftest import World


def api(coro_fn):
    async def go():
        w = await World().start()
        return await coro_fn(w)
    return asyncio.run(go())


def test_ping_version_headers():
    async def go(w):
        resp = await w.app(__import__("shoal.api.http", fromlist=["Request"]).Request("HEAD", "/_ping", {}, {}))
        assert resp.status == 200 and resp.body == b"OK"
        assert ("Swarm", "inactive") in resp.headers
        assert dict(w.app.response_headers())["Api-Version"] == "1.52"
        status, body = await w.call("GET", "/v1.10/version")
        assert status == 400 and "too old" in body["message"]
        status, body = await w.call("GET", "/v9.99/version")
        assert status == 400 and "too new" in body["message"]
        status, body = await w.call("GET", "/v1.45/version")
        assert status == 200 and body["ApiVersion"] == "1.52"
        status, body = await w.call("GET", "/nope")
        assert (status, body) == (404, {"message": "page not found"})
    api(go)


def test_create_inspect_list_remove():
    async def go(w):
        # names that are not hex: "a" could also be the prefix of some random network id
        status, body = await w.call("POST", "/v1.45/networks/create", {"Name": "net-a", "Labels": {"k": "v"}})
        assert status == 201 and len(body["Id"]) == 64 and body["Warning"] == ""
        status, net = await w.call("GET", f"/v1.52/networks/{body['Id']}")
        assert net["Name"] == "net-a" and net["IPAM"]["Config"] == [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]
        assert net["IPAM"]["Options"] is None and net["EnableIPv4"] is True
        assert net["Status"]["IPAM"]["Subnets"]["172.18.0.0/16"] == {"IPsInUse": 3, "DynamicIPsAvailable": 65533}
        status, old = await w.call("GET", "/v1.41/networks/net-a")
        assert "EnableIPv4" not in old and "Status" not in old
        status, nets = await w.call("GET", "/networks")
        assert [n["Name"] for n in nets] == ["bridge", "host", "net-a", "none"]
        status, _ = await w.call("DELETE", "/networks/net-a")
        assert status == 204
        status, body = await w.call("DELETE", "/networks/net-a")
        assert status == 404 and body["message"] == "network net-a not found"
    api(go)


@pytest.mark.parametrize(
    "body,status,needle",
    [
        ({"Name": "bridge"}, 403, "predefined"),
        ({"Name": "x", "Labels": {"a": 1}}, 400, "cannot unmarshal number"),
        ({"Name": "x", "Options": ["a"]}, 400, "cannot unmarshal array"),
        ({"Name": "x", "Internal": "yes"}, 400, "cannot unmarshal string"),
        ({"Name": "x", "IPAM": {"Config": [{"Subnet": "10.0.0.1/24"}]}}, 400, "it should be 10.0.0.0/24"),
        ({"Name": "x", "IPAM": {"Config": [{"Subnet": "nonsense"}]}}, 400, "invalid CIDR"),
        ({"Name": "x", "IPAM": {"Config": [{"Subnet": "10.0.0.0/24", "IPRange": "10.0.1.0/25"}]}}, 400,
         "within subnet"),
        ({"Name": "x", "IPAM": {"Config": [{"Subnet": "10.0.0.0/24", "AuxiliaryAddresses": {"r": "10.9.0.1"}}]}},
         400, "auxiliary address"),
        ({"Name": "x", "IPAM": {"Config": [{"Subnet": "172.17.5.0/24"}]}}, 403, "overlaps"),
        ({"Name": "x", "Driver": "weird"}, 404, 'plugin "weird" not found'),
        ({"Name": "  "}, 400, "invalid name"),
        ({"Name": ""}, 400, "name is required"),
        ({"Name": "x", "Options": {"com.docker.network.bridge.name": "0123456789abcdef"}}, 400, "too long"),
    ],
)
def test_bad_create_requests(body, status, needle):
    async def go(w):
        before = dict(w.store.data)
        got, resp = await w.call("POST", "/networks/create", body)
        assert got == status and needle in resp["message"]
        assert w.store.data == before
    api(go)


def test_duplicate_is_409_and_predefined_delete_403():
    async def go(w):
        await w.call("POST", "/networks/create", {"Name": "d"})
        status, body = await w.call("POST", "/networks/create", {"Name": "d"})
        assert status == 409 and body["message"] == "network with name d already exists"
        for name in ("bridge", "host", "none"):
            status, body = await w.call("DELETE", f"/networks/{name}")
            assert status == 403 and body["message"] == f"{name} is a pre-defined network and cannot be removed"
    api(go)


def test_filters_both_encodings_and_keys():
    async def go(w):
        await w.call("POST", "/networks/create", {"Name": "web-a", "Labels": {"tier": "web"}})
        await w.call("POST", "/networks/create", {"Name": "db", "Labels": {"tier": "db"}})

        async def names(filters):
            status, nets = await w.call("GET", "/networks?filters=" + json.dumps(filters))
            assert status == 200, nets
            return sorted(n["Name"] for n in nets)

        assert await names({"name": {"web": True}}) == ["web-a"]
        assert await names({"name": ["web"]}) == ["web-a"]
        assert await names({"label": ["tier=db"]}) == ["db"]
        assert await names({"label": ["tier"]}) == ["db", "web-a"]
        assert await names({"driver": ["null"]}) == ["none"]
        assert await names({"type": ["builtin"]}) == ["bridge", "host", "none"]
        assert await names({"type": ["custom"]}) == ["db", "web-a"]
        assert await names({"dangling": ["true"]}) == ["db", "web-a"]
        assert await names({"scope": ["local"], "name": ["db"]}) == ["db"]
        status, nets = await w.call("GET", "/networks")
        db_id = next(n["Id"] for n in nets if n["Name"] == "db")
        assert await names({"id": [db_id[:10]]}) == ["db"]
        status, body = await w.call("GET", "/networks?filters=" + json.dumps({"bogus": ["x"]}))
        assert status == 400 and "invalid filter 'bogus'" in body["message"]
        status, body = await w.call("GET", "/networks?filters=" + json.dumps({"type": ["odd"]}))
        assert status == 400
    api(go)


def test_prune_with_label_filters_returns_names():
    async def go(w):
        await w.call("POST", "/networks/create", {"Name": "p1", "Labels": {"keep": "yes"}})
        await w.call("POST", "/networks/create", {"Name": "p2"})
        status, body = await w.call("POST", "/networks/prune?filters=" + json.dumps({"label!": ["keep"]}))
        assert status == 200 and body == {"NetworksDeleted": ["p2"]}
        status, body = await w.call("POST", "/networks/prune?filters=" + json.dumps({"until": ["1h"]}))
        assert body == {"NetworksDeleted": []}
        status, body = await w.call("POST", "/networks/prune")
        assert body == {"NetworksDeleted": ["p1"]}
    api(go)


def test_ipv6_default_ula_and_explicit():
    async def go(w):
        status, body = await w.call("POST", "/networks/create", {"Name": "v6", "EnableIPv6": True})
        status, net = await w.call("GET", "/networks/v6")
        subnets = [c["Subnet"] for c in net["IPAM"]["Config"]]
        assert subnets[0] == "172.18.0.0/16" and subnets[1].startswith("fd") and subnets[1].endswith("::/64")
        status, body = await w.call("POST", "/networks/create", {
            "Name": "v6b", "EnableIPv6": True,
            "IPAM": {"Config": [{"Subnet": "2001:db8:1::/64"}, {"Subnet": "10.3.0.0/24"}]}})
        status, net = await w.call("GET", "/networks/v6b")
        assert net["IPAM"]["Config"] == [
            {"Subnet": "10.3.0.0/24", "Gateway": "10.3.0.1"},
            {"Subnet": "2001:db8:1::/64", "Gateway": "2001:db8:1::1"},
        ]
        status, body = await w.call("POST", "/networks/create", {
            "Name": "v6off", "IPAM": {"Config": [{"Subnet": "2001:db8:2::/64"}]}})
        status, net = await w.call("GET", "/networks/v6off")
        assert [c["Subnet"] for c in net["IPAM"]["Config"]] == ["172.19.0.0/16"]
    api(go)


def test_ambiguous_prefix_is_400():
    async def go(w):
        for i in range(20):
            await w.call("POST", "/networks/create", {"Name": f"n{i}"})
        status, nets = await w.call("GET", "/networks")
        firsts = [n["Id"][0] for n in nets]
        dup = next(c for c in firsts if firsts.count(c) > 1)
        status, body = await w.call("GET", f"/networks/{dup}")
        assert status == 400 and "ambiguous" in body["message"]
    api(go)
