"""What `import harness` gives a test to annotate with, and that it costs no browser."""

from __future__ import annotations

import subprocess
import sys

import harness
from harness import browser, client, endpoint, mock_openai


def test_every_exported_name_is_the_thing_itself() -> None:
    assert sorted(harness.__all__) == harness.__all__
    for name in harness.__all__:
        assert getattr(harness, name) is not None, name
    assert harness.MockRealtime is mock_openai.MockRealtime
    assert harness.ComponentClient is client.ComponentClient
    assert harness.ProxyEndpoint is endpoint.ProxyEndpoint
    assert harness.VoiceAgentApp is browser.VoiceAgentApp


def test_importing_the_harness_does_not_import_playwright() -> None:
    probe = "import sys, harness; print('playwright' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
