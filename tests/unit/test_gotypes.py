"""api.gotypes: Go's encoding/json rules and messages, checked on values, not via HTTP."""

import pytest

from shoal.api.gotypes import BOOL, INT, STRING, Map, Slice, StrSlice, Struct, Where, signed, unsigned
from shoal.api.schemas import CONTAINER_CREATE, NETWORK_CONNECT
from shoal.errors import InvalidParameter


def message(schema, value):
    with pytest.raises(InvalidParameter) as exc:
        schema.check(value)
    return exc.value.message


def test_messages_are_gos():
    body = {"HostConfig": {"PortBindings": "80"}}
    assert message(CONTAINER_CREATE, body) == (
        "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.PortBindings of type nat.PortMap")
    assert message(NETWORK_CONNECT, {"EndpointConfig": "x"}) == (
        "json: cannot unmarshal string into Go struct field NetworkConnect.EndpointConfig"
        " of type network.EndpointSettings")
    assert message(NETWORK_CONNECT, {"EndpointConfig": {"IPAMConfig": 5}}) == (
        "json: cannot unmarshal number into Go struct field EndpointSettings.EndpointConfig.IPAMConfig"
        " of type network.EndpointIPAMConfig")
    assert message(CONTAINER_CREATE, []) == (
        "json: cannot unmarshal array into Go value of type runconfig.ContainerConfigWrapper")


def test_embedded_config_fields_belong_to_the_wrapper():
    """Go promotes container.Config's fields: the error names the outer struct."""
    assert message(CONTAINER_CREATE, {"WorkingDir": 5}) == (
        "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.WorkingDir of type string")


def test_map_keys_and_indexes_stay_out_of_the_path():
    body = {"NetworkingConfig": {"EndpointsConfig": {"net1": {"Aliases": ["a", 5]}}}}
    assert message(CONTAINER_CREATE, body) == (
        "json: cannot unmarshal number into Go struct field"
        " EndpointSettings.NetworkingConfig.EndpointsConfig.Aliases of type string")
    assert "PortBinding.HostConfig.PortBindings.HostPort of type string" in message(
        CONTAINER_CREATE, {"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 8080}]}}})


@pytest.mark.parametrize("value", [None, {"Cmd": None}, {"HostConfig": None}, {"Labels": {"a": None}},
                                   {"Cmd": [None]}, {"unknown": object()}, {"HOSTCONFIG": {"Memory": 1}}])
def test_null_and_unknown_keys_are_fine(value):
    CONTAINER_CREATE.check(value)


def test_keys_match_case_insensitively_as_in_go():
    assert "HostConfig.HostConfig.Memory of type int64" in message(CONTAINER_CREATE, {"hostconfig": {"memory": "1"}})


@pytest.mark.parametrize(("gotype", "value", "kind"), [
    (INT, 1.5, "number 1.5"), (INT, 1.0, "number 1.0"), (INT, 1 << 63, f"number {1 << 63}"),
    (unsigned(16, "uint16"), 65536, "number 65536"), (unsigned(16, "uint16"), -1, "number -1"),
    (signed(32, "int32"), -(1 << 31) - 1, f"number {-(1 << 31) - 1}"), (INT, True, "bool"), (INT, "1", "string"),
])
def test_ints_refuse_fractions_and_overflow(gotype, value, kind):
    schema = Struct("x.T", {"F": gotype})
    assert message(schema, {"F": value}) == f"json: cannot unmarshal {kind} into Go struct field T.F of type {gotype.name}"


@pytest.mark.parametrize("value", [0, -(1 << 63), (1 << 63) - 1])
def test_ints_in_range_pass(value):
    INT.check(value)


def test_type_names_are_reflects():
    assert Slice(STRING).name == "[]string"
    assert Slice(unsigned(64, "uint"), length=2).name == "[2]uint"
    assert Map(Struct()).name == "map[string]struct {}"
    assert Map(Slice(Struct("nat.PortBinding"))).name == "map[string][]nat.PortBinding"
    assert StrSlice().name == "strslice.StrSlice"


def test_strslice_takes_a_string_or_strings():
    StrSlice().check("ls")
    StrSlice().check(["ls", "-l"])
    for bad in (5, True, {}, ["ls", 5], [["x"]]):
        with pytest.raises(InvalidParameter):
            StrSlice().check(bad, Where("T", ("Cmd",)))


def test_bool_is_not_a_number_and_back():
    with pytest.raises(InvalidParameter):
        BOOL.check(1)
    with pytest.raises(InvalidParameter):
        INT.check(False)
