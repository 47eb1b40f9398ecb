"""Test harness for Deepgram-Voice-Agent-to-OpenAI-Realtime proxies.

Everything a test needs is a fixture or a marker of the pytest plugin
(`harness.pytest_plugin`, loaded automatically once the package is installed). This
package exports the types those fixtures hand out, for annotations, and the few
functions a test calls itself::

    from harness import ComponentClient, MockRealtime, Turn, reply

`VoiceAgentApp` and `FakeMicrophone` need the ``e2e`` extra (Playwright) and are
imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .audio_profile import AudioProfile, profile_pcm16
from .background import BackgroundLoop
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

if TYPE_CHECKING:
    from .browser import FakeMicrophone, VoiceAgentApp

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

_BROWSER = ("FakeMicrophone", "VoiceAgentApp")


def __getattr__(name: str) -> Any:
    """The browser types, imported only when asked for (Playwright is optional)."""
    if name in _BROWSER:
        from . import browser

        return getattr(browser, name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
