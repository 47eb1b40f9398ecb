"""pytest plugin: markers, options and fixtures of the harness (filled in below)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in (
        ("unit", "pure logic, no sockets"),
        ("integration", "real sockets: proxy + mock upstream"),
        ("e2e", "real browser through the proxy"),
    ):
        config.addinivalue_line("markers", f"{name}: {doc}")
