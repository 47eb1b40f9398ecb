"""Mark each test by the folder it lives in, so `pytest -m unit|integration|e2e` selects a layer."""

from __future__ import annotations

from pathlib import Path

import pytest

_LAYERS = {"unit", "integration", "e2e"}
_TESTS = Path(__file__).parent / "tests"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            layer = item.path.relative_to(_TESTS).parts[0]
        except ValueError:
            continue
        if layer in _LAYERS:
            item.add_marker(getattr(pytest.mark, layer))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "scaleout: two proxy processes behind HAProxy (select with -m scaleout)"
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-examples",
        type=int,
        default=150,
        help="examples per property in the session fuzz test (default 150; more for a soak)",
    )


@pytest.fixture
def fuzz_examples(request: pytest.FixtureRequest) -> int:
    return int(request.config.getoption("--fuzz-examples"))


# tests/haproxy.py: the `haproxy_factory` fixture (HAProxy in front of proxies under test);
# tests/deepgram_agent.py: `deepgram_agent_page` (Deepgram's browser component, from npm)
pytest_plugins = ["pytester", "tests.haproxy", "tests.deepgram_agent"]
