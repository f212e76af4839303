"""The edge validators (model.validate): accept what dockerd accepts for ordinary use,
refuse what would reach the kernel, a file or nft badly. Messages dockerd has are dockerd's
(measured against dockerd 20.10)."""

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.errors import InvalidParameter
from shoal.model import validate

LABEL = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?", fullmatch=True)
DOMAIN = st.lists(LABEL, min_size=1, max_size=4).map(".".join)


def kernel_ifname_ok(name: str) -> bool:
    """The kernel's dev_valid_name."""
    return (0 < len(name.encode()) < 16 and name not in (".", "..")
            and not any(c == "/" or c == ":" or c.isspace() for c in name))


@given(st.text(max_size=20))
def test_an_accepted_ifname_is_one_the_kernel_and_nft_take(name):
    try:
        validate.ifname(name)
    except InvalidParameter:
        return
    assert kernel_ifname_ok(name)
    assert not set(name) & set('"\\*\'$ ')


@given(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,14}", fullmatch=True))
def test_ordinary_ifnames_pass(name):
    assert validate.ifname(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a b", "a:b", "br*", 'a"b', "0123456789abcdef", "-x", "é"])
def test_bad_ifnames(name):
    with pytest.raises(InvalidParameter):
        validate.ifname(name, "bridge name")


def test_ifname_room_for_a_number():
    validate.ifname("a" * 13, room=2)
    with pytest.raises(InvalidParameter, match="too long"):
        validate.ifname("a" * 14, room=2)


@given(DOMAIN.filter(lambda d: len(d) <= 64))
def test_rfc1123_hostnames_pass(name):
    assert validate.hostname(name) == name


@given(st.text(max_size=80))
def test_an_accepted_hostname_fits_the_kernel_and_one_line(name):
    try:
        validate.hostname(name)
    except InvalidParameter:
        return
    assert len(name.encode()) <= 64 and "\n" not in name and not any(c.isspace() for c in name)


@pytest.mark.parametrize("name", ["-bad", "a_b", "a..b", "A.b-c.", "a/b", "a" * 64])  # dockerd takes these
def test_hostnames_dockerd_takes(name):
    validate.hostname(name)


@given(DOMAIN, st.ip_addresses().map(str))
def test_extra_hosts(name, ip):
    assert validate.extra_host(f"{name}:{ip}") == (name, ip)


@pytest.mark.parametrize("item, message", [
    ("x:1.2.3.4:5", 'invalid IP address in add-host: "1.2.3.4:5"'), ("x", 'bad format for add-host: "x"'),
    (":1.2.3.4", 'bad format for add-host: ":1.2.3.4"'), ("x:nope", 'invalid IP address in add-host: "nope"'),
    ("x:[::1]", 'invalid IP address in add-host: "[::1]"'),
])
def test_extra_host_messages_are_dockerds(item, message):
    with pytest.raises(InvalidParameter) as err:
        validate.extra_host(item)
    assert err.value.message == message


def test_extra_host_cannot_add_a_line():
    assert validate.extra_host("x:::1") == ("x", "::1")
    assert validate.extra_host("host.docker.internal:host-gateway")[1] == "host-gateway"
    with pytest.raises(InvalidParameter):
        validate.extra_host("x\n9.9.9.9 evil:1.2.3.4")


@given(DOMAIN)
def test_search_domains(domain):
    assert validate.dns_search(domain) == domain


@given(st.text(min_size=1, max_size=40))
def test_an_accepted_search_domain_or_option_is_one_token(text):
    for check in (validate.dns_search, validate.dns_option):
        try:
            check(text)
        except InvalidParameter:
            continue
        assert len(text.split()) == 1 and text == text.strip() and text.isprintable()


def test_dns_words():
    validate.dns_search(".")
    validate.dns_option("ndots:2")
    with pytest.raises(InvalidParameter, match="^a b is not a valid domain$"):
        validate.dns_search("a b")
    with pytest.raises(InvalidParameter):
        validate.dns_option("ndots:1\nnameserver 9.9.9.9")


@given(st.binary(min_size=6, max_size=6).map(lambda b: bytes([b[0] & 0xFE]) + b[1:]))
def test_macs_in_gos_three_spellings(raw):
    colon = ":".join(f"{b:02x}" for b in raw)
    hexes = raw.hex()
    for spelling in (colon, colon.upper().replace(":", "-"), f"{hexes[:4]}.{hexes[4:8]}.{hexes[8:]}"):
        assert validate.mac(spelling) == colon


@pytest.mark.parametrize("text, message", [
    ("zz:zz", "address zz:zz: invalid MAC address"),
    ("02:42:ac:11:00:02:00", "address 02:42:ac:11:00:02:00: invalid MAC address"),
    ("02:42-ac:11:00:02", "address 02:42-ac:11:00:02: invalid MAC address"),
])
def test_mac_messages_are_dockerds(text, message):
    with pytest.raises(InvalidParameter) as err:
        validate.mac(text)
    assert err.value.message == message


def test_multicast_mac_refused():
    with pytest.raises(InvalidParameter, match="multicast"):
        validate.mac("01:00:5e:00:00:01")


@given(st.lists(st.text(string.ascii_lowercase + string.digits + "_", min_size=1, max_size=8), min_size=1, max_size=4))
def test_net_sysctls_need_their_own_netns(parts):
    key = "net." + ".".join(parts)
    validate.sysctl(key, "1")
    with pytest.raises(InvalidParameter, match=f'^sysctl "{key}" not allowed in host network namespace$'):
        validate.sysctl(key, "1", host_net=True)


@pytest.mark.parametrize("key, message", [  # runc's words, measured through dockerd 20.10
    ("kernel.foo", 'sysctl "kernel.foo" is not in a separate kernel namespace'),
    ("vm.swappiness", 'sysctl "vm.swappiness" is not in a separate kernel namespace'),
    ("net", 'sysctl "net" is not in a separate kernel namespace'),
])
def test_sysctls_outside_a_namespace(key, message):
    with pytest.raises(InvalidParameter) as err:
        validate.sysctl(key, "1")
    assert err.value.message == message


def test_sysctls_of_the_ipc_and_uts_namespaces():
    for key in ("kernel.shmmax", "kernel.msgmax", "fs.mqueue.msg_max", "kernel.domainname"):
        validate.sysctl(key, "1")
    with pytest.raises(InvalidParameter, match='^sysctl "kernel.shmmax" is not allowed in the hosts ipc namespace$'):
        validate.sysctl("kernel.shmmax", "1", host_ipc=True)
    with pytest.raises(InvalidParameter, match="conflicts with the OCI"):
        validate.sysctl("kernel.hostname", "x")


@given(st.text(max_size=30))
def test_an_accepted_sysctl_key_names_a_file_under_proc_sys(key):
    try:
        validate.sysctl(key, "1")
    except InvalidParameter:
        return
    assert "/" not in key and ".." not in key and not key.startswith(".") and key.isascii() and key.isprintable()
    assert not any(c.isspace() for c in key)
