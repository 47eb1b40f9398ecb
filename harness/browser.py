"""Driving the test-app in Chromium: launch flags, the fake microphone and the page object.

Chromium's fake capture device plays a WAV file as the microphone. It reads the file
each time a page opens the microphone, so `FakeMicrophone.load` before each utterance
chooses what the next `getUserMedia` hears. The file loops, so every utterance is
followed by a long silence.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
import wave
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from playwright.sync_api import Locator, Page, WebSocket, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from .client import component_fault
from .speech import speech_pcm16
from .utterances import PAUSE_S, utterances

__all__ = [
    "AudioStats",
    "FakeMicrophone",
    "Frame",
    "PlayedAudio",
    "VoiceAgentApp",
    "chromium_launch_args",
]

SYSTEM_CHROMIUM = "/usr/bin/chromium"

# Quiet, headless-safe Chromium: no calls home on a closed network, no GPU, root-safe.
_CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",  # grant the microphone without a prompt
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
)


def chromium_launch_args(
    base: dict[str, Any], microphone: FakeMicrophone, bundled_executable: str
) -> dict[str, Any]:
    """`base` launch options plus the flags the test-app needs.

    Uses Debian's Chromium when Playwright's own browser is not installed and no
    executable or channel was chosen.
    """
    launch = dict(base)
    if (
        "executable_path" not in launch
        and "channel" not in launch
        and not Path(bundled_executable).exists()
    ):
        system = shutil.which("chromium") or SYSTEM_CHROMIUM
        if Path(system).exists():
            launch["executable_path"] = system
    launch["args"] = [
        *launch.get("args", []),
        *_CHROMIUM_FLAGS,
        f"--use-file-for-fake-audio-capture={microphone.path}",
    ]
    return launch


class FakeMicrophone:
    """The WAV file Chromium plays as its microphone."""

    RATE = 16000
    TRAILING_SILENCE_S = 60.0  # the file loops; nobody should hear it twice in a test

    def __init__(self, path: Path) -> None:
        self.path = path
        self.load(b"")

    def load(self, pcm16: bytes, rate: int = RATE) -> float:
        """Make `pcm16` (mono) the next thing the microphone says; returns its seconds."""
        if len(pcm16) % 2:
            raise ValueError("PCM16 audio has an even number of bytes")
        silence = bytes(2 * int(rate * self.TRAILING_SILENCE_S))
        partial = self.path.with_suffix(".partial")
        with wave.open(str(partial), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(pcm16 + silence)
        os.replace(partial, self.path)  # Chromium never reads half a file
        return len(pcm16) / 2 / rate

    def load_wav(self, wav: Path) -> float:
        """Make a mono PCM16 WAV file the next thing the microphone says."""
        with wave.open(str(wav), "rb") as source:
            if source.getnchannels() != 1 or source.getsampwidth() != 2:
                raise ValueError(f"{wav}: need mono 16-bit PCM")
            return self.load(source.readframes(source.getnframes()), source.getframerate())


@dataclass(frozen=True)
class AudioStats:
    """What the app's speaker did, as shown on the page."""

    chunks: int
    received_ms: int
    played_ms: int
    playing: bool
    interrupted: int


@dataclass(frozen=True)
class PlayedAudio:
    """What the page's speaker played: PCM16 little-endian mono at `rate` Hz.

    Stretches of silence longer than half a second are shortened to half a second.
    `dropped_samples` counts the oldest audio the page let go to stay within its
    recording limit (0 unless a test outran it).
    """

    pcm16: bytes
    rate: int
    dropped_samples: int = 0

    @property
    def seconds(self) -> float:
        return len(self.pcm16) / 2 / self.rate


@dataclass(frozen=True)
class Frame:
    """One WebSocket frame the page sent or received."""

    direction: str  # "sent" | "received"
    payload: str | bytes

    @property
    def type(self) -> str:
        """The message's `type`, or "binary" for audio."""
        if isinstance(self.payload, bytes):
            return "binary"
        return str(json.loads(self.payload).get("type"))


# The messages that mark where an agent turn is (others, e.g. LatencyReport, are ignored).
_TURN_MESSAGES = frozenset(
    {"AgentThinking", "AgentStartedSpeaking", "AgentAudioDone", "ConversationText"}
)
RECORD_PLAYED_S = 60.0  # the played audio a page keeps, latest first: 2.9 MB at 24 kHz


class VoiceAgentApp:
    """The test-app's actions and readings, in the words a user would use."""

    def __init__(
        self, page: Page, app_url: str, proxy_url: str, microphone: FakeMicrophone
    ) -> None:
        self.page = page
        self.app_url = app_url
        self.proxy_url = proxy_url
        self.microphone = microphone
        self.page_errors: list[str] = []
        self.frames: list[Frame] = []  # every frame of every connection, in order
        # Received frames a Voice Agent client would not understand (deepgram-sdk oracle).
        self.protocol_faults: list[str] = []
        self.sockets: list[WebSocket] = []  # every connection the page opened, in order
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("websocket", self._record_frames)

    def _record_frames(self, socket: WebSocket) -> None:
        self.sockets.append(socket)
        socket.on("framesent", lambda payload: self.frames.append(Frame("sent", payload)))
        socket.on("framereceived", self._received)

    def _received(self, payload: str | bytes) -> None:
        self.frames.append(Frame("received", payload))
        if isinstance(payload, str):  # JSON; binary frames are agent audio
            fault = component_fault(_json_object(payload))
            if fault is not None:
                self.protocol_faults.append(fault)

    def wait_for_frames(
        self, type: str, count: int = 1, *, direction: str = "sent", timeout: float = 10.0
    ) -> list[Frame]:
        """Wait until the page has sent (or received) `count` frames of `type` on its
        latest connection; returns them. Each wait is for the socket's next frame."""
        deadline = time.monotonic() + timeout
        event = "framesent" if direction == "sent" else "framereceived"
        while True:
            socket = self.sockets[-1] if self.sockets else None
            found = [f for f in self.frames if f.direction == direction and f.type == type]
            if len(found) >= count:
                return found
            remaining_ms = (deadline - time.monotonic()) * 1000
            if remaining_ms <= 0 or socket is None or socket.is_closed():
                raise AssertionError(
                    f"expected {count} {direction} {type} frame(s) within {timeout:g}s, "
                    f"got {len(found)}; {direction}: {self.frame_types(direction)}"
                )
            try:
                socket.wait_for_event(event, timeout=remaining_ms)
            except PlaywrightTimeoutError:
                continue

    # ------------------------------------------------------------ navigation

    def open(
        self,
        *,
        proxy_url: str | None = None,
        greeting: str | None = None,
        prompt: str | None = None,
        functions: Iterable[str] = (),
        keep_alive_ms: int | None = None,
        token: str | None = None,
        input_rate: int | None = None,
        output_rate: int | None = None,
        record_played_s: float = RECORD_PLAYED_S,
    ) -> VoiceAgentApp:
        """Load the app pointed at `proxy_url` (default: the proxy under test).

        `input_rate` / `output_rate`: the linear16 rates of its microphone and speaker
        (default 16 kHz in, 24 kHz out). The page records what its speaker plays (the
        latest `record_played_s` seconds; 0: not at all) for `played_audio` and `heard`.
        """
        query: dict[str, str] = {"proxyEndpoint": proxy_url or self.proxy_url}
        if greeting:
            query["greeting"] = greeting
        if prompt:
            query["prompt"] = prompt
        if names := ",".join(functions):
            query["functions"] = names
        if keep_alive_ms is not None:
            query["keepAliveMs"] = str(keep_alive_ms)
        if token:
            query["proxyAuthToken"] = token
        if input_rate is not None:
            query["inputRate"] = str(input_rate)
        if output_rate is not None:
            query["outputRate"] = str(output_rate)
        if record_played_s > 0:
            query["recordPlayed"] = f"{record_played_s:g}"
        self.page.goto(f"{self.app_url}?{urlencode(query)}")
        expect(self.testid("voice-agent")).to_be_visible()
        if input_rate is not None or output_rate is not None:  # the page takes only valid ones
            expect(self.testid("audio-rates")).to_have_text(
                f"{input_rate or 16000} / {output_rate or 24000}"
            )
        if record_played_s > 0:
            expect(self.testid("played-recording")).to_have_text("on")
        return self

    def testid(self, name: str) -> Locator:
        return self.page.get_by_test_id(name)

    # ------------------------------------------------------------ actions

    def connect(self, timeout: float = 10.0) -> None:
        """Click Connect and wait until the proxy applied the Settings."""
        self.testid("connect-button").click()
        self.wait_until_ready(timeout)

    def wait_until_ready(self, timeout: float = 10.0) -> None:
        expect(self.testid("connection-status")).to_have_text("connected", timeout=timeout * 1000)
        expect(self.testid("has-sent-settings")).to_have_text("true", timeout=timeout * 1000)

    def send_text(self, text: str) -> None:
        """Type `text` and press Send, as a user would."""
        self.testid("text-input").fill(text)
        self.testid("send-button").click()

    def ask(self, text: str, timeout: float = 10.0) -> str:
        """Send `text` and return the agent's next reply from the history."""
        before = self.assistant_messages().count()
        self.send_text(text)
        return self.wait_for_reply(before + 1, timeout)

    def wait_for_reply(self, number: int = 1, timeout: float = 10.0) -> str:
        """The `number`-th assistant turn in the history, once it is shown."""
        reply = self.assistant_messages().nth(number - 1)
        expect(reply).to_be_visible(timeout=timeout * 1000)
        return reply.locator(".content").inner_text()

    def inject_agent_message(self, text: str, behavior: str | None = None) -> None:
        """Have the agent say `text` (InjectAgentMessage), as the component's
        `injectAgentMessage` does; `behavior`: "default", "queue" or "interrupt"."""
        self.page.evaluate(
            "([text, behavior]) => window.voiceAgentApp.agent.injectAgentMessage(text, behavior)",
            [text, behavior],
        )

    def speak(self, pcm16: bytes, rate: int = FakeMicrophone.RATE) -> None:
        """Say `pcm16` (mono) into the microphone and return once it has been said.

        The microphone stays on (hearing silence) until `stop_microphone()`, as a real
        user's does; saying more while it is on reopens it (Chromium's fake device plays
        a newly loaded file only to a new capture).
        """
        self._say(self.microphone.load(pcm16, rate))

    def say(self, text: str) -> bytes:
        """Say `text` (espeak-ng speech) into the microphone, as `speak` does; returns
        the PCM16 said (16 kHz)."""
        pcm = speech_pcm16(text, rate=FakeMicrophone.RATE)
        self.speak(pcm)
        return pcm

    def speak_wav(self, wav: Path) -> None:
        """Say a mono PCM16 WAV file into the microphone, as `speak` does."""
        self._say(self.microphone.load_wav(wav))

    def _say(self, seconds: float) -> None:
        if self.microphone_on:
            self.stop_microphone()
        self.start_microphone()
        self.page.wait_for_timeout(seconds * 1000)

    def wait_for_played_ms(self, at_least: int, timeout: float = 10.0) -> None:
        """Wait until the speaker has played at least this much agent audio."""
        self.page.wait_for_function(
            "ms => Number(document.querySelector('[data-testid=\"audio-played-ms\"]')"
            ".textContent) >= ms",
            arg=at_least,
            timeout=timeout * 1000,
        )

    @property
    def microphone_on(self) -> bool:
        """Is the page's microphone on (its Start / Stop button says so)?"""
        return bool(self.testid("mic-status").inner_text() == "Enabled")

    def start_microphone(self) -> None:
        self.testid("microphone-button").click()
        expect(self.testid("mic-status")).to_have_text("Enabled", timeout=10_000)

    def stop_microphone(self) -> None:
        self.testid("microphone-button").click()
        expect(self.testid("mic-status")).to_have_text("Disabled")

    def disconnect(self) -> None:
        """Press Disconnect: microphone off, playback off, connection closed."""
        self.testid("stop-button").click()
        expect(self.testid("connection-status")).to_have_text("closed")

    def register_function(
        self, definition: dict[str, Any], handler: Callable[[dict[str, Any]], Any]
    ) -> None:
        """Offer a function in the next Settings; the page calls `handler(arguments)`.

        Call before connecting. The handler runs in this test's thread while the test
        waits on the page; what it returns is sent as the FunctionCallResponse content.
        """
        bridge = f"__voiceAgentFunction_{definition['name']}"
        self.page.expose_function(bridge, handler)
        self.page.evaluate(
            "([definition, bridge]) => window.voiceAgentApp.registerFunction("
            "definition, (args) => window[bridge](args))",
            [definition, bridge],
        )

    # ------------------------------------------------------------ readings

    def wait_until_quiet(self, timeout: float = 15.0) -> None:
        """Wait until the agent is not speaking: its audio is done and played out, or cut.

        A greeting or injected message shows its text before its audio starts, so this
        also waits (up to `timeout`) until each assistant text shown has had its audio
        end (`AgentAudioDone`), or the user spoke since.
        """
        deadline = time.monotonic() + timeout
        while self._reply_audio_pending() and time.monotonic() < deadline:
            self.page.wait_for_timeout(50)  # frames are recorded while Playwright waits
        expect(self.testid("agent-state")).not_to_have_text("speaking", timeout=timeout * 1000)
        expect(self.testid("audio-playing-status")).to_have_text("false", timeout=timeout * 1000)

    def heard(self, *phrases: str, pause_s: float = PAUSE_S, timeout: float = 15.0) -> list[str]:
        """What a listener heard the page say since the last call: for each utterance
        in what its speaker played (stretches of sound between pauses of `pause_s`),
        the phrase of `phrases` recognised in it, or "" when none was.

        Waits first until the agent is quiet (`wait_until_quiet`), so a reply is taken
        whole. `phrases` defaults to what the agent's replies said (their
        `ConversationText`), as `ComponentClient.heard` does. Needs the ``speech`` extra
        (pocketsphinx); without it, fails with one line saying how to install it.
        """
        from .recognition import recognise, require_recognition

        require_recognition()
        expected = list(phrases) or self.agent_texts()
        self.wait_until_quiet(timeout)
        played = self.played_audio()
        return [
            recognise(utterance, expected, rate=played.rate)
            for utterance in utterances(played.pcm16, played.rate, pause_s=pause_s)
        ]

    def _reply_audio_pending(self) -> bool:
        """Has an assistant text come before its audio ended (a greeting, an injected
        message), with no AgentAudioDone (or barge-in) since?"""
        pending = False
        last = ""
        for frame in self.frames:
            if frame.direction != "received" or not isinstance(frame.payload, str):
                continue
            message = _json_object(frame.payload)
            kind = str(message.get("type"))
            if kind == "ConversationText" and message.get("role") == "assistant":
                pending = pending or last != "AgentAudioDone"  # a reply's text follows its audio
            elif kind in ("AgentAudioDone", "UserStartedSpeaking"):
                pending = False
            if kind in _TURN_MESSAGES:
                last = kind
        return pending

    def agent_texts(self) -> list[str]:
        """Every distinct text the agent's replies said (assistant `ConversationText`s
        received), in order."""
        texts = (
            _json_object(frame.payload)
            for frame in self.frames
            if frame.direction == "received" and isinstance(frame.payload, str)
        )
        return list(
            dict.fromkeys(
                str(text.get("content"))
                for text in texts
                if text.get("type") == "ConversationText" and text.get("role") == "assistant"
            )
        )

    def played_audio(self) -> PlayedAudio:
        """What the page's speaker played since the last call (taken from the page's
        audio output, after its scheduling and at its output rate, not from the frames)."""
        taken = self.page.evaluate("() => window.voiceAgentApp.takePlayed()")
        if taken is None:
            raise AssertionError(
                "the page does not record what it plays: open it with record_played_s > 0"
            )
        return PlayedAudio(
            base64.b64decode(taken["pcm16"]), int(taken["rate"]), int(taken["dropped"])
        )

    def assistant_messages(self) -> Locator:
        return self.testid("conversation-history").locator('li[data-role="assistant"]')

    def history(self) -> list[tuple[str, str]]:
        """(role, text) of every turn shown in the conversation history."""
        items = self.testid("conversation-history").locator("li[data-role]")
        return [
            (str(item.get_attribute("data-role")), item.locator(".content").inner_text())
            for item in items.all()
        ]

    def audio_stats(self) -> AudioStats:
        def number(testid: str) -> int:
            return int(self.testid(testid).inner_text())

        return AudioStats(
            chunks=number("agent-audio-chunks-received"),
            received_ms=number("audio-received-ms"),
            played_ms=number("audio-played-ms"),
            playing=self.testid("audio-playing-status").inner_text() == "true",
            interrupted=number("playback-interrupted"),
        )

    def frame_types(self, direction: str) -> list[str]:
        """Types of the frames the page sent (or received), in order."""
        return [frame.type for frame in self.frames if frame.direction == direction]

    def error_count(self) -> int:
        return int(self.testid("agent-error-count").inner_text())

    def error_banner(self) -> tuple[str, str] | None:
        """(code, description) of the last Error the page shows, or None."""
        banner = self.testid("error-banner")
        if not banner.is_visible():
            return None
        return self.testid("error-code").inner_text(), self.testid("error-description").inner_text()

    def event_log(self) -> list[str]:
        """The app's event log, oldest first."""
        text = self.testid("event-log").locator("pre").inner_text()
        return list(reversed(text.splitlines()))


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"type": "<not json>"}
    return value if isinstance(value, dict) else {"type": "<not an object>"}
