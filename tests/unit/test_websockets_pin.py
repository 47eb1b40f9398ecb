"""The proxy uses websockets through its documented API only, pinned to the major version
the legs are tested with.

The legs are `asyncio.Protocol`s around websockets' Sans-I/O `ServerProtocol` and
`ClientProtocol` (proxy.legs): nothing of websockets' asyncio connections, whose
internals may change in any release. A new major may still change the public API: the
pin keeps a fresh install on the tested one until the pin is raised deliberately.
"""

from __future__ import annotations

import ast
import importlib.metadata
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).parents[2]
PYPROJECT = ROOT / "pyproject.toml"

#: What proxy/ may import from websockets: names of its documented API (the Sans-I/O
#: protocols and their events, data structures, exceptions, and the asyncio server's
#: connection type that the plain-HTTP handler's signature names).
PUBLIC = {
    "websockets.asyncio.server": {"ServerConnection"},
    "websockets.client": {"ClientProtocol"},
    "websockets.datastructures": {"Headers"},
    "websockets.exceptions": {"*"},
    "websockets.frames": {"CloseCode", "Frame", "Opcode"},
    "websockets.http11": {"Request", "Response"},
    "websockets.protocol": {"Protocol", "Side", "State"},
    "websockets.server": {"ServerProtocol"},
    "websockets.typing": {"Subprotocol"},
    "websockets.uri": {"WebSocketURI", "parse_uri"},
}


def _websockets_requirement() -> Requirement:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    found = [Requirement(text) for text in project["dependencies"]]
    (requirement,) = (r for r in found if r.name == "websockets")
    return requirement


def test_websockets_is_capped_below_the_next_major() -> None:
    specifier = _websockets_requirement().specifier
    caps = [Version(s.version) for s in specifier if s.operator == "<"]
    assert caps, f"websockets{specifier} has no upper bound"
    floors = [Version(s.version) for s in specifier if s.operator == ">="]
    assert floors and max(caps) <= Version(f"{max(floors).major + 1}")  # one major only


def test_the_installed_websockets_is_the_pinned_one() -> None:
    installed = importlib.metadata.version("websockets")
    assert _websockets_requirement().specifier.contains(installed), installed


def _websockets_imports(path: Path) -> list[tuple[str, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("websockets"):
            found += [(node.module or "", alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name.startswith("websockets")]
    return found


def test_the_proxy_imports_only_public_websockets_names() -> None:
    outside = [
        f"{path.name}: {module} {name}".strip()
        for path in sorted((ROOT / "proxy").glob("*.py"))
        for module, name in _websockets_imports(path)
        if not ({name, "*"} & PUBLIC.get(module, set()))
    ]
    assert outside == []


def test_the_import_check_sees_a_private_import(tmp_path: Path) -> None:
    module = tmp_path / "legs.py"
    module.write_text("from websockets.asyncio.messages import Assembler\nimport websockets\n")
    assert _websockets_imports(module) == [
        ("websockets.asyncio.messages", "Assembler"),
        ("websockets", ""),
    ]
