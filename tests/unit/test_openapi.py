"""shoal's OpenAPI document (src/shoal/api/openapi.json) against what shoald really serves.

Every route of the daemon's table is documented and every documented operation is served,
and each JSON request body is exactly the Go type the handler checks it against, so the
document cannot drift from the code (the fuzzer in tests/e2e/test_api_fuzz.py reads it).
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import pytest

from shoal.api import schemas
from shoal.daemon.config import DaemonConfig
from shoal.daemon.main import api_routes

METHODS = {"get", "post", "put", "delete", "head", "patch"}


def load_doc() -> dict:
    return json.loads(resources.files("shoal.api").joinpath("openapi.json").read_text())


def shape(pattern: str) -> str:
    """`/images/{name:path}/json` and `/images/{name}/json` alike: the parameter names are ours."""
    return re.sub(r"\{[^}]+\}", "{}", pattern)


def served() -> set[tuple[str, str]]:
    cfg = DaemonConfig(data_root=Path("/nonexistent"), exec_root=Path("/nonexistent"), hosts=[])
    routes = api_routes(cfg, None, SimpleNamespace(counts=None, publisher=None), None, [])  # type: ignore[arg-type]
    out = {(r.method, shape(r.pattern)) for r in routes}
    # App answers HEAD on every GET route; only /_ping and the archive's stat document it, as
    # dockerd's swagger does
    return out | {("HEAD", "/_ping"), ("HEAD", "/containers/{}/archive")}


def documented() -> set[tuple[str, str]]:
    return {(m.upper(), shape(p)) for p, ops in load_doc()["paths"].items() for m in ops if m in METHODS}


def test_every_served_route_is_documented():
    assert sorted(served() - documented()) == []


def test_every_documented_operation_is_served():
    assert sorted(documented() - served()) == []


BODIES = {
    "AuthConfig": schemas.AUTH_CONFIG,
    "ContainerCreateRequest": schemas.CONTAINER_CREATE,
    "ContainerUpdateRequest": schemas.UPDATE_CONFIG,
    "ExecConfig": schemas.EXEC_CONFIG,
    "ExecStartConfig": schemas.EXEC_START,
    "NetworkCreateRequest": schemas.NETWORK_CREATE,
    "NetworkConnectRequest": schemas.NETWORK_CONNECT,
    "NetworkDisconnectRequest": schemas.NETWORK_DISCONNECT,
    "VolumeCreateRequest": schemas.VOLUME_CREATE,
}


# what dockerd refuses the request without, beyond the Go types (which have no required keys)
REQUIRED = {"ContainerCreateRequest": ["Image"], "ExecConfig": ["Cmd"], "NetworkCreateRequest": ["Name"],
            "NetworkConnectRequest": ["Container"], "NetworkDisconnectRequest": ["Container"]}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_request_bodies_are_the_go_types(name):
    """On a change to api/schemas.py, paste `schemas.X.json_schema()` into the document."""
    schema = load_doc()["components"]["schemas"][name]
    if name in REQUIRED:
        go, required = schema["allOf"]
        assert required == {"required": REQUIRED[name]}
    else:
        go = schema
    assert go == BODIES[name].json_schema()


def test_every_operation_documents_its_errors_as_json_messages():
    doc = load_doc()
    assert doc["components"]["schemas"]["ErrorResponse"]["required"] == ["message"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for param in op.get("parameters", []):
                if param["in"] == "path":
                    assert f"{{{param['name']}}}" in path, (method, path, param["name"])
            errors = {c: r for c, r in op["responses"].items() if c[0] in "45"}
            assert errors, (method, path)
            for code, resp in errors.items():
                ref = resp["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorResponse", (method, path, code)


def test_the_document_is_packaged():
    """It is read with importlib.resources, so a wheel must carry it (package data)."""
    doc = load_doc()
    assert doc["openapi"].startswith("3.") and doc["servers"] == [{"url": "/v1.41"}]
