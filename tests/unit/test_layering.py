"""The layering contract: which of our modules may import which.

- `harness` imports `proxy`, never the reverse (the product does not import its test kit);
- the proxy's sans-I/O core imports no I/O library (network, event loops, processes) and
  no module of the network shell (`PROXY_SHELL`: a new module is core until listed there);
- no import circle within `proxy/` or within `harness/`.

The modules are read, not imported: every `import` and `from ... import` in the source,
at any depth (a function-level import is an arrow too), `if TYPE_CHECKING:` blocks
included (a type-only arrow is still an arrow a reader follows).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("proxy", "harness")

# The proxy's network shell: the modules that do I/O (sockets, processes, HTTP, signals)
# or drive those that do. Every other module of `proxy/` is core: a new module is core
# until it is listed here.
PROXY_SHELL = frozenset(
    {
        "proxy.__main__",
        "proxy.access",
        "proxy.bridge",
        "proxy.cli",
        "proxy.config",
        "proxy.function_http",
        "proxy.handshakes",
        "proxy.leg_base",
        "proxy.legs",
        "proxy.metrics",
        "proxy.mock_upstream",
        "proxy.outbox",
        "proxy.runner",
        "proxy.server",
        "proxy.test_app",
        "proxy.upstream",
        "proxy.worker_board",
        "proxy.workers",
    }
)
# What the core never imports, besides the shell: the network, its event loops, processes.
IO_LIBRARIES = frozenset(
    {
        "anyio",
        "asyncio",
        "multiprocessing",
        "selectors",
        "signal",
        "socket",
        "ssl",
        "subprocess",
        "websockets",
    }
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def imported_names(name: str, path: Path) -> Iterator[str]:
    """Every name `name`'s source imports, made absolute: `import x.y` yields `x.y`,
    `from x import y` yields `x.y` (y may be a module or a name in x)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - node.level + 1]
                base = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                base = node.module or ""
            yield from (f"{base}.{alias.name}" for alias in node.names)


@cache
def imports() -> dict[str, frozenset[str]]:
    """Each of our modules -> the names it imports (ours and others')."""
    return {name: frozenset(imported_names(name, path)) for name, path in modules().items()}


def our_module(imported: str) -> str | None:
    """The module of ours that `imported` names (its longest known prefix), if any."""
    parts = imported.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules():
            return candidate
    return None


def arrows() -> dict[str, set[str]]:
    """The import graph among our modules: `from x.y import z` is an arrow to the module
    x.y.z if there is one, else to x.y (a package's `__init__` that Python runs on the
    way is not an arrow of the importing module's choosing)."""
    graph: dict[str, set[str]] = {name: set() for name in modules()}
    for name, names in imports().items():
        for imported in names:
            target = our_module(imported)
            if target is not None and target != name:
                graph[name].add(target)
    return graph


def is_core(name: str) -> bool:
    return name.startswith("proxy.") and name not in PROXY_SHELL


def test_the_walker_sees_the_modules_and_their_arrows() -> None:
    """The contract below means nothing if the walk finds nothing."""
    assert {"proxy.session", "proxy.bridge", "harness.mock_openai.server"} <= set(modules())
    assert "proxy.session" in arrows()["proxy.bridge"]
    assert any(n.startswith("websockets") for n in imports()["proxy.legs"])
    assert is_core("proxy.session") and not is_core("proxy.bridge")


def test_every_listed_shell_module_exists() -> None:
    """A renamed or removed shell module must leave the list, or its new name would be
    checked as core without anyone deciding so."""
    assert set(modules()) >= PROXY_SHELL


def test_the_proxy_never_imports_the_harness() -> None:
    offending = sorted(
        f"{name} imports {imported}"
        for name, names in imports().items()
        if name.split(".")[0] == "proxy"
        for imported in names
        if imported.split(".")[0] == "harness"
    )
    assert not offending, offending


def test_the_core_does_no_io() -> None:
    offending = sorted(
        f"{name} imports {imported}"
        for name, names in imports().items()
        if is_core(name)
        for imported in names
        if imported.split(".")[0] in IO_LIBRARIES
    )
    assert not offending, offending


def test_the_core_imports_nothing_of_the_shell() -> None:
    offending = sorted(
        f"{name} imports {target}"
        for name, targets in arrows().items()
        if is_core(name)
        for target in targets
        if target in PROXY_SHELL
    )
    assert not offending, offending


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circle_within_a_package(package: str) -> None:
    graph = {
        name: {target for target in targets if target.split(".")[0] == package}
        for name, targets in arrows().items()
        if name.split(".")[0] == package
    }
    assert cycles(graph) == []
