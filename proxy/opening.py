"""The opening of a session: readiness, messages held until then, settings updates.

Nothing goes upstream before the upstream socket is open. Then the first `Settings` goes
at once (not waiting for `session.created`: the API takes events as soon as the socket
is open, which saves a round trip) and everything else the client sent waits, in order,
until upstream applied it (then context items, then the greeting). What a Settings tells
the client (a Warning, an Error) still follows `Welcome`. The phases and their legal
steps are the table in `proxy.phases`; the later `session.update`s (UpdatePrompt, ...)
are tracked here too, each answered when upstream confirms it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from . import translate
from .actions import Action
from .audio_formats import UnsupportedAudioFormat, negotiate
from .client_messages import (
    ClientMessage,
    Settings,
    UpdateListen,
    UpdatePrompt,
    UpdateSpeak,
    UpdateThink,
    first,
)
from .errors import ErrorCode, WarningCode
from .phases import Phase, Step, advance
from .response_gate import GateState, Speech
from .server_messages import ServerMessage, SettingsApplied, SpeakUpdated, Welcome
from .session_state import SessionState, loggable
from .updates import UPDATE_REPLIES, PendingUpdate, UpdateKind
from .upstream_events import ErrorDetail, SessionCreated, SessionUpdated

__all__ = ["Opening"]


class Opening(SessionState):
    """Readiness and settings updates (see the module docstring)."""

    __slots__ = ()

    def upstream_connected(self) -> list[Action]:
        """The upstream socket is open: the first Settings may go now (OpenAI's own Agents
        SDK sends its session.update as the socket opens, before session.created), and
        session.created must follow in time."""
        if self.closed:
            return []
        self._created_deadline = self._clock() + self.options.ready_timeout
        self._socket_open()
        return self._take()

    def _socket_open(self) -> None:
        if self.phase is Phase.CONNECTING:
            self.phase = advance(self.phase, Step.SOCKET_OPEN)
            self._drain()

    # ------------------------------------------------------------ held messages

    def _admit(self, message: ClientMessage | bytes, size: int) -> None:
        """Handle now, or queue in arrival order until the session is ready."""
        if self._ready_for(message):
            self._handle(message)
            return
        if self.pending_bytes + size > self.options.max_buffered_bytes:
            self._error(
                ErrorCode.CLIENT_QUEUE_FULL,
                "too much sent before the session was ready; message refused",
            )
            return
        if self._pending is None:
            self._pending = deque()
        self._pending.append((message, size))
        self.pending_bytes += size
        self._drain()

    def _ready_for(self, message: ClientMessage | bytes) -> bool:
        if self._pending:
            return False
        if self.phase is Phase.READY:
            return True
        return self.phase is Phase.NEEDS_SETTINGS and isinstance(message, Settings)

    def _drain(self) -> None:
        """Replay queued messages now that the session moved on."""
        if self.phase is Phase.NEEDS_SETTINGS:
            # The first Settings unblocks everything queued before it.
            pending = self._pending or ()
            found = next((p for p in pending if isinstance(p[0], Settings)), None)
            if found is None:
                return
            assert self._pending is not None
            self._pending.remove(found)
            self.pending_bytes -= found[1]
            self._handle(found[0])
        while self.phase is Phase.READY and self._pending:
            message, size = self._pending.popleft()
            self.pending_bytes -= size
            self._handle(message)
        if not self._pending:
            self._pending = None  # nothing waits: do not keep the empty deque

    # ------------------------------------------------------------ Settings

    def _on_settings(self, settings: Settings) -> None:
        # Settings go upstream before session.created; what they tell the client (a
        # Warning, an Error) waits for Welcome, so the client hears Welcome first, as it
        # did when Settings waited for session.created.
        held = self._until_welcome
        self._apply_settings(settings, self._to_client if held is None else held.append)

    def _apply_settings(self, settings: Settings, tell: Callable[[ServerMessage], None]) -> None:
        first_settings = self.phase is Phase.NEEDS_SETTINGS
        try:
            audio = negotiate(settings.audio, None if first_settings else self.audio)
        except UnsupportedAudioFormat as exc:
            code = ErrorCode.UNSUPPORTED_AUDIO_FORMAT
            tell(self._error_message(code, f"{exc}; Settings not applied"))
            return
        ignored = translate.ignored_settings(settings)
        if ignored:
            ignored_text = "accepted, not applied: " + "; ".join(ignored)
            tell(self._warning_message(WarningCode.SETTING_IGNORED, ignored_text))
        self._upstream_audio(self.microphone.pause())
        self.audio = audio
        self.microphone.set_format(audio)
        self.agent_audio.set_format(audio)
        kind = UpdateKind.FIRST_SETTINGS if first_settings else UpdateKind.SETTINGS
        event_id = self._track_update(kind, settings)
        if first_settings:
            self.phase = advance(self.phase, Step.SETTINGS_SENT)
        self._upstream(translate.settings_update(settings, audio, event_id=event_id))

    def _settings_applied(self, settings: Settings) -> None:
        """session.updated for the first Settings: SettingsApplied, context, greeting."""
        self.settings = settings
        self.observer.settings_applied(self._clock() - self._opened_at)
        self._to_client(SettingsApplied())
        context = settings.context_messages
        for message in context:
            for event in translate.context_items(message, self._own_item_id()):
                self._upstream(event)
        greeting = settings.agent_config.greeting
        self.phase = advance(self.phase, Step.SETTINGS_APPLIED)
        if greeting and not context:
            self._say(Speech(greeting, greeting=True))
        self._drain()

    # ------------------------------------------------------------ later updates

    def _update(self, kind: UpdateKind, build: Callable[..., dict[str, Any]], value: Any) -> None:
        event_id = self._track_update(kind)
        self._upstream(build(value, event_id=event_id))

    def _on_update_prompt(self, message: UpdatePrompt) -> None:
        self._update(UpdateKind.PROMPT, translate.prompt_update, message.prompt)

    def _on_update_speak(self, message: UpdateSpeak) -> None:
        speak = first(message.speak)
        voice = translate.openai_voice(speak)
        if voice is None:
            self._warn(
                WarningCode.SETTING_IGNORED,
                "UpdateSpeak names no OpenAI Realtime voice; the voice is unchanged",
            )
            self._to_client(SpeakUpdated())
            return
        self._update(UpdateKind.SPEAK, translate.voice_update, voice)

    def _on_update_think(self, message: UpdateThink) -> None:
        if self.settings is not None:
            change = translate.think_model_change(message.think, self.settings.agent_config)
            if change:
                self._warn(WarningCode.UNSUPPORTED_BY_BACKEND, f"not applied: {change}")
            self.settings.agent_config.think = message.think
        event_id = self._track_update(UpdateKind.THINK)
        self._upstream(translate.think_update(message.think, event_id=event_id))

    def _on_update_listen(self, message: UpdateListen) -> None:
        language = self.settings.agent_config.language if self.settings else None
        event_id = self._track_update(UpdateKind.LISTEN)
        self._upstream(translate.listen_update(message.listen, language, event_id=event_id))

    def _track_update(self, kind: UpdateKind, settings: Settings | None = None) -> str:
        event_id = self._event_id(kind.name.lower())
        deadline = self._clock() + self.options.ready_timeout
        self._updates.append(PendingUpdate(event_id, kind, deadline, settings))
        return event_id

    def _update_refused(self, event_id: str) -> bool:
        """Upstream refused the request `event_id`: if it was one of our session.updates,
        no session.updated will answer it. True when it was the first Settings (the
        client may send corrected ones: call `_drain` once the client was told)."""
        failed = next((u for u in self._updates if u.event_id == event_id), None)
        if failed is None:
            return False
        self._updates.remove(failed)
        self._renewal.settings.refused(event_id)  # nor will it be carried over
        if failed.kind is not UpdateKind.FIRST_SETTINGS:
            return False
        self.phase = advance(self.phase, Step.SETTINGS_REFUSED)
        return True

    def _unattributed(self, error: ErrorDetail) -> str | None:
        """The request an error without `event_id` most likely answers (the real service
        sends some, e.g. a `server_error` in answer to a response.create): a
        session.update when it names a session field, else our response.create that
        upstream has not yet answered, else a refusal (not a failure) naming no other
        field while a session.update is outstanding: it must be that one, or the session
        would close waiting for its session.updated."""
        param = error.param
        if self._updates and param is not None and param.startswith("session"):
            return self._updates[0].event_id
        if self.gate.state is GateState.REQUESTED:
            return self.gate.request_event_id
        if self._updates and param is None and error.type == "invalid_request_error":
            return self._updates[0].event_id
        return None

    # ------------------------------------------------------------ upstream events

    def _on_session_created(self, event: SessionCreated) -> None:
        session_id = (event.session.id if event.session is not None else None) or ""
        self.log.upstream_session = loggable(session_id)
        self._created_deadline = None
        held = self._until_welcome
        if held is None:
            return  # a second session.created is not ours to act on
        self._until_welcome = None
        self._to_client(Welcome(request_id=session_id))
        for message in held:  # what Settings told the client since the socket opened
            self._to_client(message)
        self._socket_open()  # (a session not told the socket is open: this says it)

    def _on_session_updated(self, event: SessionUpdated) -> None:
        if not self._updates:
            return  # an update we did not ask for
        update = self._updates.pop(0)
        if update.kind is UpdateKind.FIRST_SETTINGS:
            assert update.settings is not None
            self._settings_applied(update.settings)
            return
        if update.kind is UpdateKind.SETTINGS:
            self.settings = update.settings
        self._to_client(UPDATE_REPLIES[update.kind]())
