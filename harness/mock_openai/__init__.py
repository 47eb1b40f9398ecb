"""A scriptable mock of the OpenAI Realtime API (GA) on a real WebSocket.

    mock = MockRealtime()
    await mock.start()                      # on the loop that should serve it
    mock.on_user_text("weather").call_function("get_weather", {"city": "Paris"}).once()
    ...                                     # point the code under test at mock.url
    await mock.wait_for("response.create")
    mock.check()                            # failures, and rules that did not fire as expected
    await mock.stop()

By default it behaves like the real service (session, conversation, responses with a
PCM16 tone, or espeak-ng speech, as audio, server VAD in audio time, transcription,
errors shaped like the real ones, a session that ends at `expires_at`); what the live
service was recorded doing beyond that is a step or setting by name (`server_error()`,
`fail_response()`, `delta_bytes=`, `leave_out()`, ...); rules change what it answers
and inject faults, responders compute answers, cassettes replay recorded sessions.
Every event it sends is validated against the SDK's GA schema first.

Modules: `server` (the `MockRealtime` façade), `rules` (scripting), `reply` and
`responders` (callable answers, given a `turn`), `rules_json` and `admin` (scripting
from any language; the admin API wraps a server from outside), `replay` (cassettes),
`service` (the default behaviour, no I/O), `connection` (serving one connection),
`left_out` (fields the service drops), `responses` (the response runner and the runtime
instructions), `conversation`, `audio`, `journal`, `watch`, `steps` (a script's steps:
data).
"""

from . import reply
from .audio import SAMPLE_RATE, silence_pcm16, tone_pcm16
from .connection import MockConnection
from .responders import Turn
from .rules import Expectation, Rule
from .server import MockRealtime
from .steps import SERVER_ERROR_MESSAGE

__all__ = [
    "SAMPLE_RATE",
    "SERVER_ERROR_MESSAGE",
    "Expectation",
    "MockConnection",
    "MockRealtime",
    "Rule",
    "Turn",
    "reply",
    "silence_pcm16",
    "tone_pcm16",
]
