"""The `pytest11` entry point: load the harness plugin only when its extra is installed.

pytest imports every installed entry point at start-up, so a runtime-only install
(`pip install voice-agent-realtime-proxy`, no `[harness]`) would otherwise break the
pytest of anyone who has pytest for other reasons: `harness.pytest_plugin` imports
pytest-asyncio and the mock upstream (openai, pydantic). Here nothing is imported
unless all of them are present; when one is missing, no fixture, option or marker is
registered and the session header says which packages are missing and what to install.
A header line, not a warning: under `-W error` a warning would itself break the run.
"""

from __future__ import annotations

import importlib.util

import pytest

__all__: list[str] = []

# Import names of what `[harness]` brings that the plugin imports at load time.
REQUIRED = ("pytest_asyncio", "openai", "pydantic")
INSTALL_HINT = "pip install 'voice-agent-realtime-proxy[harness]'"


def missing_requirements() -> list[str]:
    return [name for name in REQUIRED if importlib.util.find_spec(name) is None]


_missing = missing_requirements()

if _missing:

    def pytest_report_header(config: pytest.Config) -> str:
        return (
            f"voice-agent-harness: plugin not loaded, missing {', '.join(_missing)} "
            f"({INSTALL_HINT})"
        )

else:
    # pytest imports and registers the modules named here when it registers this one.
    pytest_plugins = ["harness.pytest_plugin"]
