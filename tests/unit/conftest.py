from __future__ import annotations

import pytest

from tests.unit.session_driver import Driver


@pytest.fixture
def driver() -> Driver:
    return Driver()
