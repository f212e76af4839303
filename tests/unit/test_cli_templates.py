"""The Go-template engine, Go value printing, tabwriter and JSON re-indent used by `--format`.

Expected strings were captured from the docker 28.2.2 CLI against the same data.
"""

from __future__ import annotations

import pytest

from shoal.cli.govalues import GoTime, decode_raw, encode_json, fmt_v, go_float, go_time_string
from shoal.cli.netviews import HeaderRow, NETWORK_HEADERS, NetworkRow, inspect_view
from shoal.cli.output import natural_sorted, reindent_json, render_list
from shoal.cli.tabwriter import tabwrite
from shoal.cli.templates import Template, TemplateExecError, TemplateParseError, render

BRIDGE = decode_raw(
    '{"Name":"bridge","Id":"7d86d31b1478e7cca9ebed7e73aa0fdeec46c5ca29497431d3007d2d9e15ed99",'
    '"Created":"2016-10-19T04:33:30.360899459Z","Scope":"local","Driver":"bridge","EnableIPv4":true,'
    '"EnableIPv6":false,"IPAM":{"Driver":"default","Options":null,"Config":[{"Subnet":"172.17.0.0/16",'
    '"Gateway":"172.17.0.1"}]},"Internal":false,"Attachable":false,"Ingress":false,'
    '"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{},'
    '"Options":{"com.docker.network.bridge.default_bridge":"true","a<b":"x&y"},"Labels":{},'
    '"Status":{"IPAM":{"Subnets":{}}}}'
)
NET10 = decode_raw(
    '{"Name":"net10","Id":"aa86d31b1478e7cca9ebed7e73aa0fdeec46c5ca29497431d3007d2d9e15ed00",'
    '"Created":"2024-01-02T03:04:05.1+02:00","Scope":"local","Driver":"bridge","EnableIPv4":true,'
    '"EnableIPv6":true,"IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.1.0.0/16",'
    '"Gateway":"10.1.0.1","IPRange":"10.1.2.0/24","AuxiliaryAddresses":{"h":"10.1.0.5"}}]},'
    '"Internal":true,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,'
    '"Containers":null,"Options":null,"Labels":{"z":"1","a":"2"}}'
)


def raw(tmpl: str, data: object = BRIDGE) -> str:
    return render(tmpl, data, raw=True)


def exec_error(tmpl: str, data: object = BRIDGE, is_raw: bool = True) -> str:
    with pytest.raises(TemplateExecError) as info:
        Template.parse(tmpl).execute(data, raw=is_raw)
    return str(info.value)


# --- raw JSON (docker's inspect fallback) -------------------------------------------------


@pytest.mark.parametrize(
    "tmpl, expected",
    [
        ("{{.Name}}", "bridge"),
        ("{{.Options}}", "map[a<b:x&y com.docker.network.bridge.default_bridge:true]"),
        ("{{json .Options}}", '{"a<b":"x&y","com.docker.network.bridge.default_bridge":"true"}'),
        ('{{index .Labels "zz"}}', "<no value>"),
        ("{{.IPAM.Config}}", "[map[Gateway:172.17.0.1 Subnet:172.17.0.0/16]]"),
        ("{{.IPAM}}", "map[Config:[map[Gateway:172.17.0.1 Subnet:172.17.0.0/16]] Driver:default Options:<nil>]"),
        ("{{.Created}}", "2016-10-19T04:33:30.360899459Z"),
        ("{{range $k, $v := .Options}}{{$k}}={{$v}};{{end}}", "a<b=x&y;com.docker.network.bridge.default_bridge=true;"),
        ("{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}", "172.17.0.0/16 172.17.0.1"),
        ("{{ range $i, $e := .IPAM.Config }}{{$i}}{{$e.Subnet}}{{end}}", "0172.17.0.0/16"),
        ("{{if .Internal}}yes{{else}}no{{end}}", "no"),
        ("{{if and .Name .Internal}}A{{else if .Name}}B{{end}}", "B"),
        ('{{or .Internal "dflt"}}', "dflt"),
        ("{{len .Options}}", "2"),
        ('{{printf "%s-%v" .Name .Internal}}', "bridge-false"),
        ('{{printf "%d" .EnableIPv6}}', "%!d(bool=false)"),
        ('{{printf "%5s|%-4d|%03d" .Name 7 5}}', "bridge|7   |005"),
        ("{{println .Name .Internal}}", "bridge false\n"),
        ('{{print .Name .Internal 1 2 "a"}}', "bridgefalse 1 2a"),
        ("{{.Name | upper}}", "BRIDGE"),
        ('{{.Name | upper | printf "%q"}}', '"BRIDGE"'),
        ("{{- .Name -}}  x", "bridgex"),
        ("{{/* comment */}}z", "z"),
        ("{{$x := .Name}}{{$x}}", "bridge"),
        ("{{with .Labels}}{{.a}}{{else}}none{{end}}", "none"),
        ("{{1.0}} {{1e6}} {{0x10}} {{-2}} {{'a'}} {{1.5}}", "1 1e+06 16 -2 97 1.5"),
        ("{{range .IPAM.Config}}{{if .Gateway}}{{break}}{{end}}x{{end}}ok", "ok"),
        ("{{range .Containers}}x{{else}}none{{end}}", "none"),
        ('{{eq .Name "bridge" "x"}} {{ne .Scope "local"}} {{lt "a" "b"}}', "true false true"),
        ("a\\tb\\nc", "a\\tb\\nc"),  # inspect does not expand \t and \n
    ],
)
def test_raw_mode_matches_docker(tmpl: str, expected: str) -> None:
    assert raw(tmpl) == expected


def test_raw_mode_null_values() -> None:
    assert raw("{{.Options}}|{{json .Options}}|{{if .Options}}Y{{else}}N{{end}}", NET10) == "<no value>|null|N"
    assert raw("{{range .Containers}}x{{else}}none{{end}}", NET10) == "none"


@pytest.mark.parametrize(
    "tmpl, message",
    [
        ("{{.Foo}}", 'template: :1:2: executing "" at <.Foo>: map has no entry for key "Foo"'),
        ("{{.Id}}\n{{.Foo}}", 'template: :2:2: executing "" at <.Foo>: map has no entry for key "Foo"'),
        ("{{.IPAM.Config.Subnet}}",
         'template: :1:7: executing "" at <.IPAM.Config.Subnet>: can\'t evaluate field Subnet in type interface {}'),
        ('{{join .Labels ","}}',
         'template: :1:7: executing "" at <.Labels>: wrong type for value; expected []string; got map[string]interface {}'),
        ("{{upper .Internal}}",
         'template: :1:8: executing "" at <.Internal>: wrong type for value; expected string; got bool'),
        ("{{index .IPAM.Config 55555}}",
         'template: :1:2: executing "" at <index .IPAM.Config 55555>: error calling index: index out of range: 55555'),
        ("{{join}}", 'template: :1:2: executing "" at <join>: wrong number of args for join: want 2 got 0'),
        ("{{.Name 1}}", 'template: :1:2: executing "" at <.Name>: Name is not a method but has arguments'),
        ('{{"x" 1}}', 'template: :1:2: executing "" at <"x">: can\'t give argument to non-function "x"'),
        ("{{len 3}}", 'template: :1:2: executing "" at <len 3>: error calling len: len of type int'),
        ("{{lt .Name 3}}", 'template: :1:2: executing "" at <lt .Name 3>: error calling lt: incompatible types for comparison'),
        ("{{lt true false}}", 'template: :1:2: executing "" at <lt true false>: error calling lt: invalid type for comparison'),
        ("{{nil}}", 'template: :1:2: executing "" at <nil>: nil is not a command'),
        ("{{eq .Name}}", 'template: :1:2: executing "" at <eq .Name>: error calling eq: missing argument for comparison'),
        ("{{range .Name}}{{end}}", 'template: :1:8: executing "" at <.Name>: range can\'t iterate over bridge'),
        ('{{index . "Name" "x"}}',
         'template: :1:2: executing "" at <index . "Name" "x">: error calling index: cannot index slice/array with type string'),
    ],
)
def test_raw_mode_errors_match_docker(tmpl: str, message: str) -> None:
    assert exec_error(tmpl) == message


def test_nil_map_field_access_error() -> None:
    assert exec_error("{{.Options.x}}", NET10).endswith("nil pointer evaluating interface {}.x")


@pytest.mark.parametrize(
    "tmpl, message",
    [
        ("{{.Name", "template: :1: unclosed action"),
        ("{{foo .Name}}", 'template: :1: function "foo" not defined'),
        ("{{end}}", "template: :1: unexpected {{end}}"),
        ("{{if .X}}", "template: :1: unexpected EOF"),
        ("{{$y}}", 'template: :1: undefined variable "$y"'),
        ("{{break}}", "template: :1: {{break}} outside {{range}}"),
        ("x\n{{.A | }}", "template: :2: missing command"),
    ],
)
def test_parse_errors(tmpl: str, message: str) -> None:
    with pytest.raises(TemplateParseError) as info:
        Template.parse(tmpl)
    assert str(info.value) == message


def test_partial_output_is_kept_on_error() -> None:
    with pytest.raises(TemplateExecError) as info:
        Template.parse("abc {{.Name}} {{.Foo}}").execute(BRIDGE, raw=True)
    assert info.value.output == "abc bridge "


# --- typed views (docker's first attempt for inspect) ---------------------------------------


@pytest.mark.parametrize(
    "tmpl, bridge, net10",
    [
        ("{{.Created}}", "2016-10-19 04:33:30.360899459 +0000 UTC", "2024-01-02 03:04:05.1 +0200 +0200"),
        ("{{.IPAM}}", "{default map[] [{172.17.0.0/16  172.17.0.1 map[]}]}",
         "{default map[] [{10.1.0.0/16 10.1.2.0/24 10.1.0.1 map[h:10.1.0.5]}]}"),
        ("{{.IPAM.Options}}|{{.Containers}}|{{.ConfigFrom}}|{{.Peers}}", "map[]|map[]|{}|[]", "map[]|map[]|{}|[]"),
        ("{{json .Peers}}", "null", "null"),
        ("{{.Labels}}", "map[]", "map[a:2 z:1]"),
        ("{{.Options.x}}", "<no value>", "<no value>"),
        ('{{index .Options "a<b"}}', "x&y", ""),
        ("{{.Created.Year}}", "2016", "2024"),
        ("{{json .IPAM}}",
         '{"Driver":"default","Options":null,"Config":[{"Subnet":"172.17.0.0/16","Gateway":"172.17.0.1"}]}',
         '{"Driver":"default","Options":{},"Config":[{"Subnet":"10.1.0.0/16","IPRange":"10.1.2.0/24",'
         '"Gateway":"10.1.0.1","AuxiliaryAddresses":{"h":"10.1.0.5"}}]}'),
    ],
)
def test_typed_inspect_view(tmpl: str, bridge: str, net10: str) -> None:
    t = Template.parse(tmpl)
    assert t.execute(inspect_view(BRIDGE)) == bridge
    assert t.execute(inspect_view(NET10)) == net10


def test_typed_view_json_and_struct_print() -> None:
    view = inspect_view(NET10)
    assert render("{{json .}}", view) == (
        '{"Name":"net10","Id":"aa86d31b1478e7cca9ebed7e73aa0fdeec46c5ca29497431d3007d2d9e15ed00",'
        '"Created":"2024-01-02T03:04:05.1+02:00","Scope":"local","Driver":"bridge","EnableIPv4":true,'
        '"EnableIPv6":true,"IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.1.0.0/16",'
        '"IPRange":"10.1.2.0/24","Gateway":"10.1.0.1","AuxiliaryAddresses":{"h":"10.1.0.5"}}]},'
        '"Internal":true,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,'
        '"Containers":null,"Options":null,"Labels":{"a":"2","z":"1"}}'
    )
    assert render("{{.}}", view).startswith("{net10 aa86d31b1478")
    assert render("{{.}}", view).endswith("map[] map[] map[a:2 z:1] [] map[]}")


def test_typed_view_rejects_unknown_fields_so_docker_falls_back() -> None:
    with pytest.raises(TemplateExecError):
        Template.parse("{{.Id}}").execute(inspect_view(BRIDGE))
    assert render("{{.ID}}", inspect_view(BRIDGE)).startswith("7d86d31b")


# --- ls rows and headers ---------------------------------------------------------------------


def test_network_row_fields_and_json() -> None:
    row = NetworkRow(NET10, trunc=True)
    out = render('{{.ID}} {{.IPv4}} {{.IPv6}} {{.Internal}} {{.Labels}} {{.Label "z"}} {{.CreatedAt}}', row)
    assert out == "aa86d31b1478 true true true a=2,z=1 1 2024-01-02 03:04:05.1 +0200 +0200"
    assert render("{{json .}}", NetworkRow(BRIDGE, trunc=True)) == (
        '{"CreatedAt":"2016-10-19 04:33:30.360899459 +0000 UTC","Driver":"bridge","ID":"7d86d31b1478",'
        '"IPv4":"true","IPv6":"false","Internal":"false","Labels":"","Name":"bridge","Scope":"local"}'
    )


@pytest.mark.parametrize(
    "tmpl, message",
    [
        ("{{.Foo}}", "can't evaluate field Foo in type *network.networkContext"),
        ("{{.ID.Foo}}", "can't evaluate field Foo in type string"),
        ("{{.Label}}", "wrong number of args for Label: want 1 got 0"),
    ],
)
def test_network_row_errors(tmpl: str, message: str) -> None:
    assert exec_error(tmpl, NetworkRow(BRIDGE, True), is_raw=False).endswith(message)


def test_render_list_table_header_and_alignment() -> None:
    rows = [NetworkRow(BRIDGE, True), NetworkRow(NET10, True)]
    out = render_list("table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}", rows, HeaderRow(NETWORK_HEADERS))
    assert out == (
        "NETWORK ID     NAME      DRIVER    SCOPE\n"
        "7d86d31b1478   bridge    bridge    local\n"
        "aa86d31b1478   net10     bridge    local\n"
    )
    out = render_list('table {{.Name}}\\t{{.Label "z"}}\\t{{upper .Driver}}', rows, HeaderRow(NETWORK_HEADERS))
    assert out.splitlines()[0] == "NAME      z         DRIVER"
    assert render_list("table", [], HeaderRow(NETWORK_HEADERS)) == "\n"


# --- Go values, tabwriter, JSON ----------------------------------------------------------------


def test_go_value_printing() -> None:
    assert fmt_v({"b": [1, None, True], "a": {}}) == "map[a:map[] b:[1 <nil> true]]"
    assert encode_json({"b": "<&>\u2028", "a": [decode_raw("1.50"), None]}) == '{"a":[1.50,null],"b":"<&>\\u2028"}'
    assert [go_float(f) for f in (1.0, 1e6, 123456.0, 0.0001, 1e-5)] == ["1", "1e+06", "123456", "0.0001", "1e-05"]


def test_go_time_string() -> None:
    assert go_time_string("0001-01-01T00:00:00Z") == "0001-01-01 00:00:00 +0000 UTC"
    assert go_time_string("2024-01-02T03:04:05.120000+05:30").startswith("2024-01-02 03:04:05.12 +0530")
    assert GoTime("").go_json() == '"0001-01-01T00:00:00Z"'


def test_tabwriter_matches_go() -> None:
    text = "NAME\tSCOPE\t\nbridge\tlocal\t\n"
    assert tabwrite(text) == "NAME      SCOPE     \nbridge    local     \n"
    # a line without tabs flushes: columns before and after it are sized independently
    text = "a\tb\nno-tabs-here\nlonger-cell\tc\n"
    assert tabwrite(text) == "a         b\nno-tabs-here\nlonger-cell   c\n"
    assert tabwrite("aaaaaaaaaaaaaa\tb\nx\ty\tz\n") == "aaaaaaaaaaaaaa   b\nx                y         z\n"


def test_reindent_preserves_raw_text() -> None:
    raw_text = '{"a":{},"b":[],"c":"x\\u003cy","d":1.50,"e":[1,{"f":null}]}\n'
    assert reindent_json(raw_text) == (
        '{\n    "a": {},\n    "b": [],\n    "c": "x\\u003cy",\n    "d": 1.50,\n'
        '    "e": [\n        1,\n        {\n            "f": null\n        }\n    ]\n}'
    )
    assert reindent_json('{ "a" : [ 1 , 2 ] }', None) == '{"a":[1,2]}'


def test_natural_sort_like_docker() -> None:
    names = ["net10", "net9", "bridge", "a01", "a1", "A", "_x", "9"]
    assert natural_sorted(names, key=str) == ["9", "A", "_x", "a1", "a01", "bridge", "net9", "net10"]
