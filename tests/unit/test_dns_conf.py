"""resolv.conf and /etc/hosts the way Docker writes them."""

from shoal.dns import embedded_upstreams, parse_resolv_conf, render_hosts, render_resolv_conf

HOST = """\
# comment
domain ignored.example
nameserver 127.0.0.53
nameserver 192.0.2.10   # trailing comment
nameserver 2001:db8::53
nameserver fe80::1%eth0
nameserver not-an-ip
search corp.example lab.example
options ndots:2 timeout:1 edns0
"""


def body(text):
    return [l for l in text.splitlines() if l and not l.startswith("#")]


def test_parse():
    rc = parse_resolv_conf(HOST)
    assert rc.nameservers == ("127.0.0.53", "192.0.2.10", "2001:db8::53", "fe80::1%eth0")
    assert rc.search == ("corp.example", "lab.example")
    assert rc.options == ("ndots:2", "timeout:1", "edns0")


def test_user_network_points_at_the_embedded_server():
    text = render_resolv_conf(HOST, embedded=True)
    assert body(text) == [
        "nameserver 127.0.0.11",
        "search corp.example lab.example",
        "options timeout:1 edns0 ndots:0",
    ]
    assert "# ExtServers: [127.0.0.53 192.0.2.10 2001:db8::53]" in text


def test_user_network_keeps_a_user_ndots_and_overrides():
    text = render_resolv_conf(HOST, embedded=True, dns=["198.51.100.1"], dns_search=["x.example"],
                              dns_options=["ndots:3"])
    assert body(text) == ["nameserver 127.0.0.11", "search x.example", "options ndots:3"]
    assert "# ExtServers: [198.51.100.1]" in text


def test_search_dot_clears_the_search_list():
    assert body(render_resolv_conf(HOST, embedded=True, dns_search=["."]))[1] == "options timeout:1 edns0 ndots:0"


def test_default_bridge_gets_upstreams_without_loopback():
    assert body(render_resolv_conf(HOST, embedded=False)) == [
        "nameserver 192.0.2.10",
        "search corp.example lab.example",
        "options ndots:2 timeout:1 edns0",
    ]
    assert body(render_resolv_conf(HOST, embedded=False, ipv6=True))[:2] == [
        "nameserver 192.0.2.10", "nameserver 2001:db8::53",
    ]


def test_default_bridge_prefers_daemon_dns_and_falls_back_to_public_servers():
    assert body(render_resolv_conf(HOST, embedded=False, dns=["198.51.100.1"]))[0] == "nameserver 198.51.100.1"
    only_loopback = "nameserver 127.0.0.53\n"
    assert body(render_resolv_conf(only_loopback, embedded=False)) == ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]
    assert body(render_resolv_conf("", embedded=False, ipv6=True)) == [
        "nameserver 8.8.8.8", "nameserver 8.8.4.4",
        "nameserver 2001:4860:4860::8888", "nameserver 2001:4860:4860::8844",
    ]


def test_embedded_upstreams():
    assert embedded_upstreams(HOST) == ["127.0.0.53", "192.0.2.10", "2001:db8::53"]
    assert embedded_upstreams(HOST, ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"]) == ["1.1.1.1", "2.2.2.2", "3.3.3.3"]
    assert embedded_upstreams("") == []


def test_hosts():
    assert render_hosts("c8a1e2b3f4d5", ["172.18.0.2/16", "fd00::2/64"], [("db.local", "10.1.1.1")]) == (
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\n"
        "ff00::0\tip6-mcastprefix\n"
        "ff02::1\tip6-allnodes\n"
        "ff02::2\tip6-allrouters\n"
        "10.1.1.1\tdb.local\n"
        "172.18.0.2\tc8a1e2b3f4d5\n"
        "fd00::2\tc8a1e2b3f4d5\n"
    )


def test_hosts_without_ipv6_and_with_domain():
    assert render_hosts("web", ["10.0.0.2"], domainname="example.com", ipv6=False) == (
        "127.0.0.1\tlocalhost\n10.0.0.2\tweb.example.com web\n"
    )
