"""The session core's shape: sans-I/O imports, the opening's transition table."""

from __future__ import annotations

import subprocess
import sys

import pytest

from proxy.phases import OPENING, IllegalStep, Phase, Step, advance


def test_the_session_core_imports_no_network_library() -> None:
    # The core decides; the shell (bridge, legs, function_http) does the I/O.
    code = (
        "import sys, proxy.session\n"
        "network = {'httpx', 'httpcore', 'anyio', 'websockets', 'harness'}\n"
        "found = sorted(network & set(sys.modules))\n"
        "print(','.join(found))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == ""


def test_the_opening_moves_only_along_its_table() -> None:
    phase = Phase.CONNECTING
    for step in (Step.SOCKET_OPEN, Step.SETTINGS_SENT, Step.SETTINGS_REFUSED):
        phase = advance(phase, step)
    assert phase is Phase.NEEDS_SETTINGS  # refused Settings: corrected ones may come
    assert advance(advance(phase, Step.SETTINGS_SENT), Step.SETTINGS_APPLIED) is Phase.READY
    with pytest.raises(IllegalStep):
        advance(Phase.CONNECTING, Step.SETTINGS_APPLIED)  # no Settings went yet
    with pytest.raises(IllegalStep):
        advance(Phase.READY, Step.SETTINGS_SENT)  # later Settings do not reopen the session
    assert all(advance(p, Step.CLOSE) is Phase.CLOSED for p in Phase)
    assert len(OPENING) == 4 + len(Phase)
