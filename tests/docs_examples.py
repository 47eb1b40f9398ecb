"""The runnable examples of the documentation: fenced blocks named with ``file=``.

A block opened with ```` ```python file=test_weather.py ```` is a file a how-to asks the
reader to write; the suite writes it into a fresh project and runs it.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
#: The pytest configuration of a fresh project that uses the plugin (for pytester).
PROJECT_INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
DOCS = ROOT / "docs"
_BLOCK = re.compile(r"^```\w+ file=(\S+)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def example_files(page: Path) -> dict[str, str]:
    """The named code blocks of a page: {file name: code}."""
    files = {name: code for name, code in _BLOCK.findall(page.read_text())}
    assert files, f"{page} has no runnable example"
    return files


def pages() -> list[Path]:
    """Every documentation page, README included."""
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
