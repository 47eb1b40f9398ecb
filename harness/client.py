"""A test client that speaks the component (Deepgram Voice Agent) protocol.

It plays the browser component's part against any proxy URL: send Settings, inject
text, stream microphone audio, answer function calls, and wait for what comes back.
Every received message is kept (`messages`, `audio`) so tests can assert on order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .component_schema import ComponentSchemaError, validate_component_message
from .describe import summarize_types
from .recognition import Encoding, recognise_async, require_recognition

__all__ = ["ComponentClient", "default_settings"]

Predicate = Callable[[dict[str, Any]], bool]


def default_settings(**agent: Any) -> dict[str, Any]:
    """A Settings message as the component sends it; keyword arguments go under `agent`."""
    return {
        "type": "Settings",
        "audio": {
            "input": {"encoding": "linear16", "sample_rate": 16000},
            "output": {"encoding": "linear16", "sample_rate": 24000},
        },
        "agent": {
            "listen": {"provider": {"type": "deepgram", "model": "nova-3"}},
            "think": {
                "provider": {"type": "open_ai", "model": "gpt-realtime"},
                "prompt": "You are a helpful voice assistant. Keep answers short.",
            },
            "speak": {"provider": {"type": "open_ai", "model": "tts-1", "voice": "alloy"}},
            **agent,
        },
    }


class ComponentClient:
    """One component connection. Create with `await ComponentClient.connect(url)`.

    Every frame it receives is checked against the deepgram-sdk models as it arrives;
    `close()` and `wait_closed()` raise `AssertionError` in the test if any was not a
    valid Voice Agent message (`check()`), unless the client was made with
    `invalid_frames_expected="why"`. A client a test leaves open is checked when the
    test ends (the pytest plugin, through `recording_made()`).
    """

    # While a test runs: the clients it makes (None outside tests: nothing is kept).
    _made: ClassVar[list[ComponentClient] | None] = None

    def __init__(
        self,
        connection: ClientConnection | None = None,
        *,
        url: str = "",
        invalid_frames_expected: str | None = None,
    ) -> None:
        """Wrap an open `connection`, or (`url` only) connect on first use: `lazy()`.
        `invalid_frames_expected`, the reason a test expects frames a Voice Agent client
        would not understand, turns the check at close off (`check()` still works)."""
        self._connection = connection
        self._url = url
        self.messages: list[dict[str, Any]] = []  # every JSON message, in order
        self.audio = bytearray()  # every binary frame, concatenated
        self.audio_frames = 0
        self.audio_frame_sizes: list[int] = []  # bytes of each binary frame, in order
        # linear16 (the default) has two bytes a sample: a browser's Int16Array throws on
        # an odd-length frame. G.711 has one. Taken from the last Settings sent.
        self._sample_bytes = 2
        self.close_code: int | None = None
        self.close_reason = ""
        # Frames a Deepgram Voice Agent client would not understand (the deepgram-sdk
        # models are the oracle); `check()` and the fixtures fail the test on them.
        self.protocol_faults: list[str] = []
        self.invalid_frames_expected = invalid_frames_expected
        self._faults_reported = False  # raised once, by close() or wait_closed()
        if ComponentClient._made is not None:
            ComponentClient._made.append(self)
        # The agent audio's format, from the Settings sent (the proxy's defaults before).
        self.output_encoding: Encoding = "linear16"
        self.output_rate = 24000
        self._reply_ends: list[int] = []  # len(audio) at each AgentAudioDone
        self._changed = asyncio.Condition()
        self._closed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        if connection is not None:
            self._start_reading()

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        invalid_frames_expected: str | None = None,
    ) -> ComponentClient:
        if token is not None:
            url = f"{url}{'&' if '?' in url else '?'}token={token}"
        connection = await connect(url, open_timeout=timeout, max_size=None, compression=None)
        return cls(connection, invalid_frames_expected=invalid_frames_expected)

    @classmethod
    def lazy(
        cls, url: str, *, token: str | None = None, invalid_frames_expected: str | None = None
    ) -> ComponentClient:
        """A client that connects on its first use (a send or a wait), so a test can
        script the upstream's handshake (`on_connect` rules) after taking the fixture."""
        if token is not None:
            url = f"{url}{'&' if '?' in url else '?'}token={token}"
        return cls(url=url, invalid_frames_expected=invalid_frames_expected)

    @property
    def connection(self) -> ClientConnection:
        """The WebSocket (a lazy client's first use opens it: `await open()`)."""
        if self._connection is None:
            raise RuntimeError("the client has not connected yet: `await client.open()` first")
        return self._connection

    async def open(self, *, timeout: float = 10.0) -> None:
        """Connect now, if not yet connected (sends and waits call it)."""
        if self._connection is None:
            self._connection = await connect(
                self._url, open_timeout=timeout, max_size=None, compression=None
            )
            self._start_reading()

    def _start_reading(self) -> None:
        self._reader = asyncio.create_task(self._read(), name="component-client-reader")

    # ------------------------------------------------------------ sending

    async def send(self, message: dict[str, Any]) -> None:
        if message.get("type") == "Settings":
            self._sample_bytes = _output_sample_bytes(message)
            self._note_output_format(message)
        await self.open()
        await self.connection.send(orjson.dumps(message), text=True)

    async def send_raw(self, data: str | bytes) -> None:
        """Send a frame exactly as given (a str is a text frame, bytes a binary one)."""
        await self.open()
        await self.connection.send(data)

    async def send_settings(self, settings: dict[str, Any] | None = None, **agent: Any) -> None:
        await self.send(settings or default_settings(**agent))

    def _note_output_format(self, settings: dict[str, Any]) -> None:
        """The agent audio's format a Settings asks for (what `heard()` decodes)."""
        audio = settings.get("audio")
        output = audio.get("output") if isinstance(audio, dict) else None
        if isinstance(output, dict) and output.get("encoding") in ("linear16", "mulaw", "alaw"):
            self.output_encoding = output["encoding"]
            default_rate = 24000 if self.output_encoding == "linear16" else 8000
            self.output_rate = int(output.get("sample_rate") or default_rate)

    async def start(self, settings: dict[str, Any] | None = None, **agent: Any) -> dict[str, Any]:
        """Send Settings and wait for SettingsApplied, as the component does."""
        await self.send_settings(settings, **agent)
        return await self.wait_for("SettingsApplied")

    async def inject(self, text: str) -> None:
        await self.send({"type": "InjectUserMessage", "content": text})

    async def answer_function(self, request_id: str, name: str, content: str) -> None:
        await self.send(
            {"type": "FunctionCallResponse", "id": request_id, "name": name, "content": content}
        )

    async def send_audio(
        self, pcm: bytes, *, frame_bytes: int = 640, realtime: bool = False, rate: int = 16000
    ) -> None:
        """Stream PCM16 as the microphone would, in frames (20 ms at 16 kHz by default)."""
        frame_seconds = frame_bytes / (2 * rate)
        await self.open()
        for start in range(0, len(pcm), frame_bytes):
            await self.connection.send(pcm[start : start + frame_bytes])
            if realtime:
                await asyncio.sleep(frame_seconds)

    # ------------------------------------------------------------ receiving

    def received(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.messages if kind is None or m.get("type") == kind]

    def types(self) -> list[str]:
        return [str(m.get("type")) for m in self.messages]

    async def wait_for(
        self,
        kind: str,
        *,
        count: int = 1,
        timeout: float = 10.0,
        where: Predicate | None = None,
    ) -> dict[str, Any]:
        """The `count`-th message of this type (and predicate) received so far or next."""

        def found() -> list[dict[str, Any]]:
            return [m for m in self.received(kind) if where is None or where(m)]

        await self.open()
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    await self._changed.wait_for(
                        lambda: len(found()) >= count or self._closed.is_set()
                    )
        except TimeoutError:
            pass
        matches = found()
        if len(matches) < count:
            raise AssertionError(
                f"expected {count} x {kind} within {timeout:g}s, got {len(matches)}; "
                f"{self.describe()}"
            )
        return matches[count - 1]

    async def wait_for_reply(self, count: int = 1, *, timeout: float = 10.0) -> str:
        """The text of the `count`-th assistant `ConversationText`."""
        reply = await self.wait_for(
            "ConversationText", count=count, timeout=timeout, where=_from_assistant
        )
        return str(reply["content"])

    async def wait_for_audio(self, min_bytes: int, *, timeout: float = 10.0) -> bytes:
        await self.open()
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    await self._changed.wait_for(
                        lambda: len(self.audio) >= min_bytes or self._closed.is_set()
                    )
        except TimeoutError:
            pass
        if len(self.audio) < min_bytes:
            raise AssertionError(
                f"expected {min_bytes} audio bytes within {timeout:g}s, got {len(self.audio)}; "
                f"{self.describe()}"
            )
        return bytes(self.audio)

    async def wait_closed(self, *, timeout: float = 10.0) -> int | None:
        """Wait for the proxy to close the connection; returns the close code."""
        await self.open()
        try:
            async with asyncio.timeout(timeout):
                await self._closed.wait()
        except TimeoutError:
            raise AssertionError(
                f"expected the proxy to close within {timeout:g}s; {self.describe()}"
            ) from None
        self.report_faults()
        return self.close_code

    def replies_audio(self) -> list[bytes]:
        """The agent audio received, one piece per reply (split at each AgentAudioDone;
        audio after the last one is a reply still being spoken)."""
        audio = bytes(self.audio)
        bounds = [0, *self._reply_ends]
        pieces = [audio[start:end] for start, end in itertools.pairwise(bounds)]
        if len(audio) > bounds[-1]:
            pieces.append(audio[bounds[-1] :])
        return [piece for piece in pieces if piece]

    async def heard(self, *phrases: str) -> list[str]:
        """What the agent was heard saying, per reply: the binary audio this client
        received, at its output format, recognised against `phrases` (default: the
        agent's `ConversationText`, what its replies should have said). A reply whose
        audio says none of them is heard as "". Needs pocketsphinx (the ``[speech]``
        extra); the mock speaks words with ``@pytest.mark.mock_openai(voice="speech")``.
        """
        require_recognition()
        expected = list(phrases) or list(
            dict.fromkeys(
                str(m.get("content"))
                for m in self.received("ConversationText")
                if _from_assistant(m)
            )
        )
        return [
            await recognise_async(
                piece, expected, rate=self.output_rate, encoding=self.output_encoding
            )
            for piece in self.replies_audio()
        ]

    def describe(self) -> str:
        """The connection's state for a failure message: open or how it closed, the
        types received, and every `Error` in full (its code and description hold the
        cause)."""
        if self._closed.is_set():
            reason = f" ({self.close_reason})" if self.close_reason else ""
            state = f"connection closed with {self.close_code}{reason}"
        else:
            state = "connection still open"
        errors = [f"[{m.get('code')}] {m.get('description')}" for m in self.received("Error")]
        shown = f"; errors: {'; '.join(errors)}" if errors else ""
        return f"{state}; received: {summarize_types(self.types())}{shown}"

    async def close(self) -> None:
        """Close the connection, then raise if the proxy sent an invalid frame (once)."""
        if self._connection is None or self._reader is None:  # a lazy client never used
            return
        if not self._closed.is_set():  # the peer may have closed it already
            await self._connection.close()
        with contextlib.suppress(asyncio.CancelledError):
            self._reader.cancel()
            await self._reader
        self.report_faults()

    @classmethod
    @contextlib.contextmanager
    def recording_made(cls) -> Iterator[list[ComponentClient]]:
        """Within the block, every client made is added to the list it gives."""
        made: list[ComponentClient] = []
        previous, cls._made = cls._made, made
        try:
            yield made
        finally:
            cls._made = previous

    def report_faults(self) -> None:
        """`check()`, once, unless `invalid_frames_expected`: run at the end of the
        connection (`close()`, `wait_closed()`) and by the plugin at the end of a test,
        so the oracle runs for every client in the test that made it."""
        if self._faults_reported or self.invalid_frames_expected is not None:
            return
        self._faults_reported = bool(self.protocol_faults)
        self.check()

    def check(self) -> None:
        """Raise AssertionError listing every frame the proxy sent that a Deepgram Voice
        Agent client would not understand."""
        if self.protocol_faults:
            listed = "\n".join(f"  - {fault}" for fault in self.protocol_faults)
            raise AssertionError(
                f"the proxy sent {len(self.protocol_faults)} frame(s) that are not valid "
                f"Voice Agent messages:\n{listed}"
            )

    async def __aenter__(self) -> ComponentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _read(self) -> None:
        try:
            async for frame in self.connection:
                async with self._changed:
                    if isinstance(frame, bytes):
                        self.audio += frame
                        self.audio_frames += 1
                        self.audio_frame_sizes.append(len(frame))
                        if len(frame) % self._sample_bytes:
                            self.protocol_faults.append(
                                f"a binary frame of {len(frame)} bytes holds no whole number "
                                f"of {self._sample_bytes}-byte samples"
                            )
                    else:
                        message = _decode(frame)
                        self.messages.append(message)
                        if message.get("type") == "AgentAudioDone":
                            self._reply_ends.append(len(self.audio))
                        fault = component_fault(message)
                        if fault is not None:
                            self.protocol_faults.append(fault)
                    self._changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            received = self.connection.protocol.close_rcvd
            self.close_code = received.code if received else None
            self.close_reason = received.reason if received else ""
            self._closed.set()
            async with self._changed:
                self._changed.notify_all()


def component_fault(message: dict[str, Any]) -> str | None:
    """What is wrong with a received message, by the deepgram-sdk models; None if fine."""
    try:
        validate_component_message(message)
    except ComponentSchemaError as exc:
        return str(exc)
    return None


def _output_sample_bytes(settings: dict[str, Any]) -> int:
    """Bytes a sample of the agent audio a Settings message asks for."""
    audio = settings.get("audio")
    output = audio.get("output") if isinstance(audio, dict) else None
    encoding = output.get("encoding") if isinstance(output, dict) else None
    return 1 if encoding in ("mulaw", "alaw") else 2


def _decode(frame: str) -> dict[str, Any]:
    """A JSON object, or a marker a test will see if the proxy sent anything else."""
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return {"type": "<not json>", "raw": frame}
    return message if isinstance(message, dict) else {"type": "<not an object>", "raw": frame}


def _from_assistant(message: dict[str, Any]) -> bool:
    return bool(message.get("role") == "assistant")
