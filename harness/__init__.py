"""Test harness for Deepgram-Voice-Agent-to-OpenAI-Realtime proxies.

Everything a test needs is a fixture or a marker of the pytest plugin
(`harness.pytest_plugin`, loaded automatically once the package is installed). This
package exports the types those fixtures hand out, for annotations, and the few
functions a test calls itself::

    from harness import ComponentClient, MockRealtime, Turn, reply

Each is imported on first use, so `import harness` works with the runtime install
alone; `VoiceAgentApp` and `FakeMicrophone` need the ``e2e`` extra (Playwright).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .audio_profile import AudioProfile, profile_pcm16
    from .background import BackgroundLoop
    from .browser import FakeMicrophone, VoiceAgentApp
    from .cassette import Cassette
    from .client import ComponentClient, default_settings
    from .endpoint import ProxyEndpoint
    from .mock_openai import (
        Expectation,
        MockConnection,
        MockRealtime,
        Rule,
        Turn,
        reply,
        silence_pcm16,
        tone_pcm16,
    )
    from .recorder import Recording, RecordingRelay
    from .speech import speech_available, speech_pcm16

__all__ = [
    "AudioProfile",
    "BackgroundLoop",
    "Cassette",
    "ComponentClient",
    "Expectation",
    "FakeMicrophone",
    "MockConnection",
    "MockRealtime",
    "ProxyEndpoint",
    "Recording",
    "RecordingRelay",
    "Rule",
    "Turn",
    "VoiceAgentApp",
    "default_settings",
    "profile_pcm16",
    "reply",
    "silence_pcm16",
    "speech_available",
    "speech_pcm16",
    "tone_pcm16",
]

# Where each name lives. Imported on first use: the package itself must import with the
# runtime install only (the proxy starts `harness.mock_openai` and loads the pytest entry
# point), while these need the [harness] extra (pydantic, the SDKs) or [e2e] (Playwright).
_HOMES = {
    "AudioProfile": "audio_profile",
    "profile_pcm16": "audio_profile",
    "BackgroundLoop": "background",
    "FakeMicrophone": "browser",
    "VoiceAgentApp": "browser",
    "Cassette": "cassette",
    "ComponentClient": "client",
    "default_settings": "client",
    "ProxyEndpoint": "endpoint",
    "Expectation": "mock_openai",
    "MockConnection": "mock_openai",
    "MockRealtime": "mock_openai",
    "Rule": "mock_openai",
    "Turn": "mock_openai",
    "reply": "mock_openai",
    "silence_pcm16": "mock_openai",
    "tone_pcm16": "mock_openai",
    "Recording": "recorder",
    "RecordingRelay": "recorder",
    "speech_available": "speech",
    "speech_pcm16": "speech",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
