"""Lower layers never import higher ones (docs/design.md, "Layers")."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "shoal"

# package -> shoal packages it may import
ALLOWED = {
    "model": {"errors"},  # validators raise the one error tree (model.validate)
    "errors": set(),
    "kernel": {"errors", "model"},
    "ipam": {"errors", "model"},
    "store": {"errors"},
    "bgp": {"errors", "model"},  # BIRD's configuration and process (controller.routing feeds it)
    "firewall": {"errors", "model", "kernel"},
    "drivers": {"errors", "model", "kernel", "ipam"},
    "dns": {"errors", "model", "kernel"},
    "runtime": {"errors", "model", "kernel", "registry"},
    "registry": {"errors"},  # the registry protocol client (issue 11); the image store pulls through it
    "plugins": {"errors", "model", "kernel", "ipam", "drivers"},
    "controller": {"errors", "model", "kernel", "ipam", "store", "firewall", "drivers", "dns", "runtime", "plugins",
                   "bgp"},
    "api": {"errors", "model", "controller", "runtime", "registry", "api", "humanize"},
    "daemon": None,  # composition root: anything
    "cli": {"cli", "humanize"},
    "cni": set(),  # the CNI plugin: standard library only, so it starts quickly
    "lab": {"errors"},
}


def shoal_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "shoal" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_layers():
    problems = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        pkg = rel.parts[0].removesuffix(".py")
        if pkg == "__init__" or ALLOWED.get(pkg, set()) is None:
            continue
        allowed = ALLOWED.get(pkg, set()) | {pkg, "__version__"}
        for imported in shoal_imports(path) - allowed:
            problems.append(f"{rel} imports shoal.{imported}")
    assert not problems, "\n".join(problems)


def test_files_stay_small():
    big = [f"{p.relative_to(SRC)}: {n}" for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 650]
    assert not big, big


def module_of(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_imports(path: Path, modules: set[str]) -> set[str]:
    """Every shoal module this file imports, those only for type checking included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m in modules}


def test_no_import_cycles():
    """No module imports itself back through others, not even for type checking (a
    package's __init__ re-exporting its own modules is not a cycle). A lower module that
    needs a higher one's object says what it needs as a Protocol (firewalling.Topology,
    cluster.Mirrored, etcd_watch.WatchClient) or, for a mixin, declares it."""
    paths = {module_of(p): p for p in SRC.rglob("*.py")}
    graph = {m: {d for d in module_imports(p, set(paths)) if d != m and not m.startswith(d + ".")}
             for m, p in paths.items()}
    cycles = set()

    def walk(node: str, stack: list[str]) -> None:
        for dep in graph[node]:
            if dep in stack:
                cycles.add(frozenset(stack[stack.index(dep):]))
            elif len(stack) < 12:
                walk(dep, [*stack, dep])

    for start in graph:
        walk(start, [start])
    assert not cycles, sorted(sorted(c) for c in cycles)
