"""The Engine API under fuzzing: schemathesis generates requests from shoal's own OpenAPI
document (src/shoal/api/openapi.json), valid and invalid, against a real shoald.

What must hold for every request: no 5xx (the swarm routes' documented 501/503 aside:
those are dockerd's constant answers; and a registry that cannot be reached, a 500 in
dockerd too: shoald's namespace has only loopback, so pulls, pushes and logins the fuzzer
makes up never leave it); every 4xx/5xx body is a JSON object with a string
"message"; a rejected request (4xx) leaves the networks, containers and images as they
were, and so does every GET; the daemon answers /_ping at the end and logged no traceback.  Path parameters are random, or as often
the name or id of an object that exists (a network, a container, the busybox image), and
create/connect bodies name busybox or that container, so the handlers behind the 404s are
reached too.

SHOAL_FUZZ_EXAMPLES=N sets the examples per operation and mode (default 8: about 500
requests, well under a minute); e.g. SHOAL_FUZZ_EXAMPLES=100 for a long run. The examples
are the same on every run (so CI is repeatable) unless SHOAL_FUZZ_RANDOM=1 asks for new ones.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, defaultdict

import pytest

schemathesis = pytest.importorskip("schemathesis")

from importlib import resources

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

EXAMPLES = int(os.environ.get("SHOAL_FUZZ_EXAMPLES") or 8)
BASE = "http+docker://shoal/v1.41"
# a hijack, a stream until exit and a follow: on an object that exists these wait for it,
# which is right, so they get random references only (a 404)
NO_REAL_REFS = {"/containers/{id}/attach", "/containers/{id}/wait", "/containers/{id}/logs", "/exec/{id}/start",
                "/containers/{id}/stats"}  # stats streams once a second until the client goes
# a long-running container that a stop ends at once (a bare PID 1 ignores SIGTERM)
STOPS_ON_TERM = ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]
DELIBERATE_5XX = {501, 503}  # swarm: dockerd's answers on a node in no swarm
# pulls, pushes and logins name registries: the daemon's host namespace here has nothing but
# loopback, so no packet leaves it, and dockerd's answer to a registry it cannot reach is a 500
REGISTRY_OPS = {("POST", "/images/create"), ("POST", "/images/{name}/push"), ("POST", "/auth")}
UNREACHABLE = ("dial tcp", "no such host", "connect: ", "network is unreachable")
# dockerd 20.10's own 500s for a well-formed request (measured): unpausing a running container
DOCKERD_500 = {("POST", "/containers/{id}/unpause"): "is not paused",
               ("GET", "/containers/{id}/top"): "ps: "}  # ps refused the client's ps_args (dockerd: "ps: STDERR")


def load_schema():
    doc = json.loads(resources.files("shoal.api").joinpath("openapi.json").read_text())
    for ops in doc["paths"].values():  # tar bodies (load, archive PUT): schemathesis sends bytes as octet-stream
        for op in ops.values():
            content = (op.get("requestBody") or {}).get("content", {}) if isinstance(op, dict) else {}
            if "application/x-tar" in content:
                content["application/octet-stream"] = content.pop("application/x-tar")
    return schemathesis.openapi.from_dict(doc)


def session_for(sock: str):
    import requests
    from docker.transport import UnixHTTPAdapter

    s = requests.Session()
    s.mount("http+docker://", UnixHTTPAdapter(f"http+unix://{sock}", timeout=20))
    return s


class Fuzz:
    """Sends cases, checks each answer, keeps the state snapshot a rejection must not move."""

    def __init__(self, d) -> None:
        self.d = d
        self.session = session_for(d.sock)
        self.counts: Counter[int] = Counter()
        self.per_op: defaultdict[str, Counter[int]] = defaultdict(Counter)
        self.snapshot = self.state()

    def state(self) -> tuple:
        def get(path: str) -> list:
            r = self.session.get(f"{BASE}{path}", timeout=20)
            assert r.status_code == 200, (path, r.status_code, r.text)
            # a container's Status reads "Exited (0) 2 seconds ago": time moves it, not requests
            return sorted(({k: v for k, v in o.items() if k != "Status"} for o in r.json()), key=lambda o: o["Id"])
        return get("/networks"), get("/containers/json?all=1"), get("/images/json")

    def send(self, case) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://shoal/v1.41")
        kwargs["url"] = kwargs["url"].replace("http://shoal", "http+docker://shoal", 1)
        try:
            response = self.session.request(**kwargs, timeout=20)
        except Exception as exc:
            raise AssertionError(f"{case.method} {case.formatted_path} {case.query!r}: no answer: {exc}") from exc
        status = response.status_code
        self.counts[status] += 1
        self.per_op[f"{case.method} {case.path}"][status] += 1
        what = f"{case.method} {case.formatted_path} {case.query!r} body={case.body!r:.300} -> {status}"
        documented = status in {int(c) for c in case.operation.definition.raw["responses"] if c.isdigit()}
        unreachable = (status == 500 and (case.method, case.path) in REGISTRY_OPS
                       and any(w in response.text.lower() for w in UNREACHABLE)) or (
            status == 500 and DOCKERD_500.get((case.method, case.path), "\0") in response.text)
        assert status < 500 or unreachable or (status in DELIBERATE_5XX and documented), \
            f"{what}: {response.text[:500]}"
        if status >= 400 and case.method != "HEAD":  # a HEAD answer has its headers only
            assert response.headers.get("Content-Type", "").startswith("application/json"), what
            body = response.json()
            assert isinstance(body, dict) and isinstance(body.get("message"), str), f"{what}: {body!r}"
            if os.environ.get("SHF_DEBUG"):
                print("   ", what[:200], body["message"][:200])
        if 400 <= status < 500 or case.method in ("GET", "HEAD"):
            now = self.state()
            assert only_exits(self.snapshot, now), f"{what}: a rejected request or a read changed the state"
            self.snapshot = now
        elif status < 400:
            self.snapshot = self.settled()

    def settled(self) -> tuple:
        """After an accepted request: a killed container exits a moment after the 204."""
        last, same = self.state(), 0
        for _ in range(100):
            time.sleep(0.03)
            now = self.state()
            same = same + 1 if now == last else 0
            if same == 2:
                break
            last = now
        return last


def only_exits(before: tuple, after: tuple) -> bool:
    """Equal, but for containers that exited meanwhile: a process ending by itself (a kill
    that lands a moment after its 204, on a loaded machine) is no request's doing."""
    if before == after:
        return True
    (nets, ctrs, imgs), (nets2, ctrs2, imgs2) = before, after
    if nets != nets2 or imgs != imgs2 or [c["Id"] for c in ctrs] != [c["Id"] for c in ctrs2]:
        return False
    for old, new in zip(ctrs, ctrs2):
        exited = old["State"] == "running" and new["State"] == "exited"
        if old != new and not (exited and strip_run(old) == strip_run(new)):
            return False
    return True


def strip_run(summary: dict) -> dict:
    """What a container's exit changes in its summary: its state, addresses and ports."""
    return {k: v for k, v in summary.items() if k not in ("State", "NetworkSettings", "Ports")}


class Objects:
    """Objects that exist, re-made before each operation (prune and delete may take them),
    so that generated requests now and then name a real network, container or image."""

    def __init__(self, d, busybox_tar) -> None:
        self.d, self.tar = d, busybox_tar
        self.ids: dict[str, str] = {}

    def ensure(self) -> None:
        d = self.d
        if d.api("GET", "/images/busybox:latest/json")[0] == 404:
            d.docker("import", "--change", 'CMD ["sh"]', str(self.tar), "busybox:latest")
        status, net = d.api("GET", "/networks/shf-fuzz-net")
        if status == 404:
            status, net = d.api("POST", "/networks/create", {"Name": "shf-fuzz-net"})
            assert status == 201, net
        self.ids["networks"] = net["Id"]
        status, ctr = d.api("GET", "/containers/shf-fuzz-ctr/json")
        if status == 404:
            status, ctr = d.api("POST", "/containers/create?name=shf-fuzz-ctr", {"Image": "busybox", "Cmd": STOPS_ON_TERM})
            assert status == 201, ctr
        self.ids["containers"] = ctr["Id"]

    def ref(self, kind: str, which: str) -> str:
        names = {"networks": "shf-fuzz-net", "containers": "shf-fuzz-ctr", "images": "busybox:latest"}
        return self.ids.get(kind, names[kind]) if which == "id" else names[kind]


def unreal(params: dict | None, containers: list[dict]) -> dict | None:
    """A random reference must stay random: "0" is a unique prefix of a container's id one
    time in sixteen, and a wait on it would then wait, rightly, for that container's exit."""
    if not params:
        return params
    real = [c["Id"] for c in containers] + [n.lstrip("/") for c in containers for n in c.get("Names") or ()]
    return {k: f"z{v}" if isinstance(v, str) and any(r.startswith(v) for r in real) else v
            for k, v in params.items()}


def bounded_wait(query: dict) -> None:
    """stop/restart wait `t` seconds before SIGKILL (sleep as PID 1 ignores SIGTERM): right,
    but a fuzzer's t=10**9 would wait that long; keep any t that parses as a number short."""
    raw = query.get("t")
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        return
    if seconds > 1:
        query["t"] = 1


def fix_body(case, objects: Objects, which: str | None) -> None:
    """Point a generated body at real objects, so creation and connection get past the 404."""
    body = case.body
    if which is not None and isinstance(case.query, dict):
        bounded_wait(case.query)
    if which is None or not isinstance(body, dict):
        return
    if case.path == "/containers/create":
        body["Image"] = "busybox"
    elif case.path in ("/networks/{id}/connect", "/networks/{id}/disconnect"):
        body["Container"] = objects.ref("containers", which)


def fuzz_operation(fuzz: Fuzz, operation, objects: Objects) -> None:
    path = operation.path
    kind = path.split("/")[1]
    real = path not in NO_REAL_REFS and ("{" in path and kind in ("networks", "containers", "images")
                                         or path in ("/containers/create",))
    cases = st.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                      operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))

    codes = {c for c in operation.definition.raw["responses"] if c.isdigit()}
    constant = codes <= {str(c) for c in DELIBERATE_5XX}  # swarm: one answer, whatever is asked

    @settings(max_examples=2 if constant else EXAMPLES * 2, deadline=None, database=None, derandomize=not os.environ.get("SHOAL_FUZZ_RANDOM"),
              suppress_health_check=list(HealthCheck))
    @given(case=cases, which=st.sampled_from([None, "name", "id"]) if real else st.none())
    def run(case, which) -> None:
        if which is not None and "{" in path:
            name = next(iter(case.path_parameters or {"id": None}))
            case.path_parameters = {**(case.path_parameters or {}), name: objects.ref(kind, which)}
        elif path in NO_REAL_REFS and kind == "containers":
            case.path_parameters = unreal(case.path_parameters, fuzz.snapshot[1])
        fix_body(case, objects, which)
        fuzz.send(case)

    objects.ensure()
    fuzz.snapshot = fuzz.state()
    run()


def test_api_fuzz(box, busybox_tar):
    schema = load_schema()
    objects = Objects(box, busybox_tar)
    fuzz = Fuzz(box)
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) >= 60
    for operation in operations:
        fuzz_operation(fuzz, operation, objects)
    total = sum(fuzz.counts.values())
    for name, counts in sorted(fuzz.per_op.items()):
        print(f"  {name}: {dict(sorted(counts.items()))}")
    print(f"fuzz: {total} requests over {len(operations)} operations: {dict(sorted(fuzz.counts.items()))}")
    assert total >= len(operations) * 2
    assert box.api("GET", "/_ping") == (200, "OK")
    assert box.proc.poll() is None
    log = box.log.read_text()
    assert "Traceback" not in log, log[log.index("Traceback") - 2000:][:6000]
