"""The layering contract: which of our modules may import which.

- `harness` imports `proxy`, never the reverse (the product does not import its test kit);
- the proxy's sans-I/O core imports no I/O library (network, HTTP clients, event loops,
  processes) and no module of the network shell (`PROXY_SHELL`: a new module is core
  until listed there), except through a function-level import listed in
  `LAZY_SHELL_IMPORTS` that only the shell runs; importing and running the core loads no
  I/O library (checked in a fresh interpreter);
- no import circle within `proxy/` or within `harness/`.

The modules are read, not imported: every `import` and `from ... import` in the source,
at any depth (a function-level import is an arrow too), `if TYPE_CHECKING:` blocks
included (a type-only arrow is still an arrow a reader follows).
"""

from __future__ import annotations

import ast
import subprocess
import sys
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
        "proxy.function_policy",
        "proxy.handshakes",
        "proxy.leg_base",
        "proxy.legs",
        "proxy.metrics",
        "proxy.mock_upstream",
        "proxy.next_upstream",
        "proxy.outbox",
        "proxy.runner",
        "proxy.server",
        "proxy.test_app",
        "proxy.upstream",
        "proxy.upstream_dial",
        "proxy.worker_board",
        "proxy.workers",
    }
)
# What the core never imports, besides the shell: the network, HTTP clients, event loops,
# processes (a name or any module under it: `http.client`, not `http.HTTPStatus`).
IO_LIBRARIES = frozenset(
    {
        "aiohttp",
        "anyio",
        "asyncio",
        "h11",
        "h2",
        "http.client",
        "http.server",
        "httpcore",
        "httpx",
        "multiprocessing",
        "requests",
        "selectors",
        "signal",
        "socket",
        "ssl",
        "subprocess",
        "trio",
        "urllib.request",
        "urllib3",
        "websockets",
    }
)
# The only ways from the core into the shell: function-level imports that run only when
# the shell calls them, each with why. (core module, shell module) -> the reason.
LAZY_SHELL_IMPORTS = {
    ("proxy.settings", "proxy.function_policy"): (
        "an endpoint allow-list entry is checked by the HTTP client's URL parser; only "
        "the command line and ProxyConfig parse entries, the session takes its defaults"
    ),
}


def is_io_library(imported: str) -> bool:
    return any(imported == lib or imported.startswith(lib + ".") for lib in IO_LIBRARIES)


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


def imported_names(name: str, path: Path, *, lazy: bool | None = None) -> Iterator[str]:
    """Every name `name`'s source imports, made absolute: `import x.y` yields `x.y`,
    `from x import y` yields `x.y` (y may be a module or a name in x). `lazy=True`: only
    the imports inside a function body (run when it is called), `False`: only the others
    (run when the module is imported), None: all."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    in_function = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for inner in ast.walk(node)
        if inner is not node
    }
    for node in ast.walk(tree):
        if lazy is not None and (id(node) in in_function) is not lazy:
            continue
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


@cache
def lazy_imports() -> dict[str, frozenset[str]]:
    """Each of our modules -> the names it imports inside a function body only."""
    return {
        name: frozenset(imported_names(name, path, lazy=True))
        - frozenset(imported_names(name, path, lazy=False))
        for name, path in modules().items()
    }


def arrows(only_lazy: bool = False) -> dict[str, set[str]]:
    """The import graph among our modules: `from x.y import z` is an arrow to the module
    x.y.z if there is one, else to x.y (a package's `__init__` that Python runs on the
    way is not an arrow of the importing module's choosing). `only_lazy`: the arrows
    made only by function-level imports."""
    graph: dict[str, set[str]] = {name: set() for name in modules()}
    for name, names in (lazy_imports() if only_lazy else imports()).items():
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
        if is_io_library(imported)
    )
    assert not offending, offending


def test_the_io_check_knows_an_http_client_from_a_status_code() -> None:
    assert is_io_library("httpx") and is_io_library("httpx.URL")
    assert is_io_library("http.client.HTTPConnection") and is_io_library("asyncio")
    assert not is_io_library("http.HTTPStatus") and not is_io_library("urllib.parse")
    assert not is_io_library("httpxyz")


def test_the_core_imports_nothing_of_the_shell() -> None:
    lazy = arrows(only_lazy=True)
    offending = sorted(
        f"{name} imports {target}"
        for name, targets in arrows().items()
        if is_core(name)
        for target in targets
        if target in PROXY_SHELL
        and not ((name, target) in LAZY_SHELL_IMPORTS and target in lazy[name])
    )
    assert not offending, offending


def test_every_listed_lazy_import_is_one() -> None:
    """A listed way into the shell that became a module-level import (run by importing
    the core) or went away must leave the list."""
    lazy = arrows(only_lazy=True)
    assert all(target in lazy[name] for name, target in LAZY_SHELL_IMPORTS)


def test_the_lazy_import_finder_tells_function_bodies_apart(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text(
        "import a\nif a:\n    import b\ndef f():\n    import c\n"
        "class K:\n    import d\n    def g(self):\n        from e import h\n"
    )
    assert set(imported_names("probe", source, lazy=False)) == {"a", "b", "d"}
    assert set(imported_names("probe", source, lazy=True)) == {"c", "e.h"}


# Imports every core module, runs a session up to its Settings (with a function that
# names an endpoint: the core's part of server-side calls), then lists the I/O libraries
# loaded; then imports the shell's function policy, to show that the probe sees httpx.
_PROBE = """
import sys
{imports}
from proxy.session import ProxySession

def io_loaded():
    return sorted(m for m in sys.modules if m.split(".")[0] in {libraries!r})

session = ProxySession()
session.upstream_connected()
session.client_text(
    '{{"type":"Settings","agent":{{"think":{{"functions":[{{"name":"f",'
    '"endpoint":{{"url":"http://127.0.0.1:9/f"}}}}]}}}}}}'
)
print(io_loaded())
import proxy.function_policy
print(io_loaded())
"""
# What a fresh interpreter may show: the stdlib's socket, selectors and threading come in
# with the standard library's own modules (email, random), so the probe looks for the
# libraries only the proxy's own choice would load.
_LOADED_ONLY_BY_CHOICE = frozenset(
    {
        "aiohttp",
        "anyio",
        "asyncio",
        "h11",
        "h2",
        "httpcore",
        "httpx",
        "requests",
        "trio",
        "urllib3",
        "websockets",
    }
)


def test_importing_and_running_the_core_loads_no_io_library() -> None:
    core = sorted(name for name in modules() if is_core(name))
    probe = _PROBE.format(
        imports="\n".join(f"import {name}" for name in core),
        libraries=set(_LOADED_ONLY_BY_CHOICE),
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    core_loaded, with_policy = result.stdout.splitlines()
    assert core_loaded == "[]", core_loaded
    assert "httpx" in with_policy  # the probe would see it


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
