"""A scriptable mock of the OpenAI Realtime API (GA) on a real WebSocket.

    mock = MockRealtime()
    await mock.start()                      # on the loop that should serve it
    mock.on_user_text("weather").call_function("get_weather", {"city": "Paris"})
    ...                                     # point the code under test at mock.url
    await mock.wait_for("response.create")
    mock.check()                            # failures recorded inside the mock
    await mock.stop()

By default it behaves like the real service (session, conversation, responses with a
PCM16 tone as speech, server VAD in audio time, transcription, errors shaped like the
real ones); rules change what it answers and inject faults. Every event it sends is
validated against the SDK's GA schema first.
"""

from .audio import SAMPLE_RATE, silence_pcm16, tone_pcm16
from .script import Rule
from .server import MockConnection, MockRealtime

__all__ = [
    "SAMPLE_RATE",
    "MockConnection",
    "MockRealtime",
    "Rule",
    "silence_pcm16",
    "tone_pcm16",
]
