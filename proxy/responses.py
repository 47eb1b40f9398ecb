"""Responses: one at a time, on a deadline, and what the agent says.

Every response the proxy wants goes through the `ResponseGate` (`response.create` is
held while a response is requested or running). While the gate is busy, upstream must
show signs of life: `response_timeout` after the last frame the response is abandoned.
That deadline is set in one place, `_response_timer`. Text the agent must say exactly
(the greeting, InjectAgentMessage) runs as an out-of-band response; the spoken-text map
(`_speech_responses`) tells those responses apart, so their text is reported once, as
written, and never truncated (it is not in the conversation). Assistant text from any
other response is reported once per item, wherever upstream put it.
"""

from __future__ import annotations

from . import base64_audio, translate
from .actions import SendToClient
from .client_messages import ForceEndTurn, InjectAgentMessage, InjectUserMessage
from .errors import ErrorCode, WarningCode
from .phases import UserSpeech
from .response_gate import ANSWER, FORCED_ANSWER, GateState, Request, Speech
from .server_messages import AgentAudioDone, AgentThinking, InjectionRefused
from .session_state import SessionState
from .upstream_events import (
    AudioDelta,
    AudioDone,
    FunctionArgumentsDone,
    ItemDone,
    ResponseCreated,
    ResponseDone,
    ResponseInfo,
    TextDone,
    TranscriptDone,
)

__all__ = ["Responses"]

_IDLE = GateState.IDLE


class Responses(SessionState):
    """The response gate's timing, the spoken-text map, the agent's words and audio."""

    __slots__ = ()

    def _response_timer(self) -> None:
        """The response deadline, the one place it is set: `response_timeout` from now
        while a response is requested or running (each upstream frame restarts it),
        none otherwise."""
        if self.gate.state is _IDLE:
            self._response_deadline = None
        else:
            self._response_deadline = self._clock() + self.options.response_timeout

    # ------------------------------------------------------------ client side

    def _on_inject_user_message(self, message: InjectUserMessage) -> None:
        self._conversation_text("user", message.content)
        self._upstream(translate.text_item("user", message.content))
        self._turn_ended()
        self._ask(ANSWER)

    def _ask(self, request: Request, *, urgent: bool = False) -> None:
        self._send_request(self.gate.ask(request, urgent=urgent))

    def _say(self, speech: Speech, *, urgent: bool = False) -> None:
        """Have the agent say exactly `speech.text` (when the gate lets it)."""
        self._ask(speech, urgent=urgent)

    def _send_request(self, request: Request | None) -> None:
        if request is None:
            return
        self._response_timer()
        if isinstance(request, Speech):
            event_id = self._event_id("speak")
            # The conversation holds the exact words, whatever the voice renders.
            self._upstream(
                translate.text_item("assistant", request.text, item_id=self._own_item_id())
            )
            self._conversation_text("assistant", request.text)
            self._upstream(translate.speak_response(request.text, event_id=event_id))
        else:
            event_id = self._event_id("response")
            self._upstream(translate.response_create(event_id))
        self.gate.sent(event_id)

    def _response_silent(self) -> None:
        """The response deadline passed: abandon the response, go on with the next."""
        if not self.gate.busy:
            self._response_deadline = None
            return  # released meanwhile (refused, raced): nothing is waited for
        response_id = self.gate.response_id
        self._error(
            ErrorCode.UPSTREAM_TIMEOUT,
            f"the response said nothing for {self.options.response_timeout:g} s; abandoned",
        )
        self._upstream(translate.response_cancel(self._event_id("cancel"), response_id))
        if self._agent_turns.ended(response_id):
            self._to_client(AgentAudioDone())
        follow_up = self._calls.response_done(response_id)
        self._send_request(self.gate.abandon())
        if follow_up:
            self._ask(ANSWER)
        self._response_timer()

    def _on_response_created(self, event: ResponseCreated) -> None:
        response = event.response
        speech = self._speech_answered_by(response)
        if speech is not None:
            self._speech_responses[response.id] = speech
        self.gate.created(response.id)
        if self._user_speech is UserSpeech.SPEAKING:
            self._user_speech = UserSpeech.QUIET  # a response answers a turn that has ended
        self._response_timer()
        self._latency.response_started(self._clock())
        self._agent_turns.started(response.id, speech=speech is not None)
        self._to_client(AgentThinking(content=""))

    def _speech_answered_by(self, response: ResponseInfo) -> Speech | None:
        """The exact speech this response says, if it is our out-of-band one. Known by
        the gate's order (the response.created that answers our outstanding speak
        request, or the next one when server VAD's answer raced it) unless it names a
        conversation (out-of-band ones have a null `conversation_id`); an echo of our
        `metadata`, when the service sends it, settles it."""
        speech = self.gate.speaking
        if speech is None:
            return None
        if translate.SPEAK_METADATA_KEY in (response.metadata or {}):
            return speech
        if isinstance(response.conversation_id, str):
            return None  # in the conversation: server VAD's answer, not our speech
        if self.gate.state is GateState.REQUESTED:
            return speech
        # A response that raced ours is running: ours is the next out-of-band one.
        return speech if self.gate.response_id not in self._speech_responses else None

    def _on_response_done(self, event: ResponseDone) -> None:
        response = event.response
        response_id = response.id
        speech = self._speech_responses.pop(response_id, None)
        if speech is None and response.status != "cancelled":
            # Assistant text the service put only here (no transcript .done, no item
            # .done). Not of a cancelled response: the user moved on before hearing it.
            for item in response.output or ():
                text = translate.assistant_text_of(item)
                if text is not None and item.id and item.id not in self.agent_audio.truncated:
                    self._report_assistant(response_id, item.id, text, release=False)
                elif item.type == "function_call" and item.call_id and item.name:
                    # A call whose arguments' .done never came (reported once either way).
                    self._on_function_call(
                        FunctionArgumentsDone(
                            item.call_id, item.name, item.arguments or "{}", response_id
                        )
                    )
        outcome = translate.response_outcome(response)
        if outcome is not None and not self._agent_turns.was_error_told(response_id):
            self.log.info("response ended %s: %s", response.status, outcome.description)
            self._to_client(outcome)
        if self._agent_turns.ended(response_id):
            self._to_client(AgentAudioDone())  # the turn ends here, whatever its status
        if self.gate.state is not GateState.IDLE and (self.gate.response_id in (None, response_id)):
            report, total = self._latency.turn_done()
            if report is not None:
                self._to_client(report)
            self.observer.turn_done(total)
            self.turns += 1
        # The turn VAD ended has been answered: audio from now on is a new utterance,
        # which a ForceEndTurn commits (a speaker too quiet for VAD, push-to-talk).
        if self._user_speech is UserSpeech.COMMITTED:
            self._user_speech = UserSpeech.QUIET
        follow_up = self._calls.response_done(response_id)
        self._send_request(self.gate.done(response_id))
        if follow_up:
            self._ask(ANSWER)  # every call of that response has its output
        self._response_timer()
        self._leave_if_quiet()

    def _on_audio_delta(self, event: AudioDelta) -> None:
        try:
            audio = base64_audio.decode(event.delta)
        except ValueError:  # binascii.Error is one
            self._error(ErrorCode.UNMAPPED_UPSTREAM_EVENT, "upstream audio delta is not base64")
            return
        now = self._clock()
        frames = self.agent_audio.deliver(event.item_id, audio, now)
        if not frames:
            return
        started = self._latency.output_started(now)
        if started is not None:
            self._to_client(started)
        for frame in frames:
            self._out.append(SendToClient(frame, text=False))

    def _on_audio_done(self, event: AudioDone) -> None:
        item_id = event.item_id
        for frame in self.agent_audio.item_done(item_id):
            self._out.append(SendToClient(frame, text=False))
        text_out = item_id in self._reported_items
        if self._agent_turns.audio_done(event.response_id, item_id, text_out=text_out):
            self._to_client(AgentAudioDone())
        # else: held until the item's text has gone out, or response.done

    def _on_transcript_done(self, event: TranscriptDone) -> None:
        response_id = event.response_id or self.gate.response_id
        self._report_assistant(response_id, event.item_id, event.transcript)

    def _on_text_done(self, event: TextDone) -> None:
        self._latency.output_started(self._clock())  # text only: no AgentStartedSpeaking
        response_id = event.response_id or self.gate.response_id
        self._report_assistant(response_id, event.item_id, event.text)

    def _on_item_done(self, event: ItemDone) -> None:
        item = event.item
        text = translate.assistant_text_of(item)
        if text is not None and item.id:
            self._report_assistant(None, item.id, text)

    def _report_assistant(
        self, response_id: str | None, item_id: str, text: str, *, release: bool = True
    ) -> None:
        """Assistant text, wherever upstream put it: told once per item. `release`: a
        held AgentAudioDone for the item may follow it (response.done sends its own)."""
        if response_id in self._speech_responses:
            return  # the exact text was reported when the speech started
        if not text or item_id in self._reported_items:
            return
        self._reported_items.add(item_id)
        self._renewal.record.message("assistant", text, key=item_id, now=self._clock())
        self._conversation_text("assistant", text)
        if release and self._agent_turns.text_out(item_id):
            self._to_client(AgentAudioDone())

    def _on_inject_agent_message(self, message: InjectAgentMessage) -> None:
        if message.is_dynamic:
            self._warn(
                WarningCode.UNSUPPORTED_BY_BACKEND,
                "dynamic agent messages are a Deepgram feature; the message was not spoken",
            )
            return
        behavior = message.behavior or "default"
        busy = self.gate.busy or self._user_speech is UserSpeech.SPEAKING
        if (behavior == "default" and busy) or self.gate.full:
            self._to_client(InjectionRefused(message=message.text))
            return
        if behavior == "interrupt" and self.gate.busy:
            self._barge_in(upstream_cancels=False)  # nobody else stops the agent
            self._say(Speech(message.text), urgent=True)
            return
        self._say(Speech(message.text))

    # ------------------------------------------------------------ the user's turn

    def _on_force_end_turn(self, message: ForceEndTurn) -> None:
        if self._user_speech is UserSpeech.SPEAKING:
            self._user_speech = UserSpeech.QUIET  # the client ended it, whatever VAD said
        self._upstream_audio(self.microphone.pause())
        if self._user_speech is UserSpeech.COMMITTED or not self._audio_since_commit:
            # Server VAD already committed this speech and answers it on its own (or no
            # audio came since the last commit): a commit would be refused as empty,
            # and a response would answer the same utterance twice.
            self.log.info("ForceEndTurn: the turn was already committed; nothing asked")
            return
        self._upstream(translate.input_commit(self._event_id("commit")))
        self._audio_since_commit = False
        self._turn_ended()
        # Withdrawn if the commit comes back empty: VAD's commit raced ours.
        self._ask(FORCED_ANSWER)
