"""Barge-in: the user speaks, or the client interrupts, while the agent talks.

One rule for both (user speech from server VAD, `InjectAgentMessage` with
`behavior: interrupt`):

- the agent's audio stops where the client is (`AgentAudio.interrupt`);
- the active response is cancelled, unless upstream cancels it itself: server VAD's
  `interrupt_response` (which the proxy turns on, see `translate.settings_update`)
  cancels an in-conversation response when speech starts, but not an out-of-band one,
  so spoken text (the greeting, InjectAgentMessage) is cancelled by the proxy either way;
- the conversation item is truncated to what the user can have heard, unless the
  response is spoken text: that runs outside the conversation, nothing to truncate (the
  exact text was put in the conversation when it was asked for);
- pending function calls are cancelled: the user has moved on.
"""

from __future__ import annotations

from . import translate
from .phases import UserSpeech
from .response_gate import GateState
from .server_messages import UserStartedSpeaking
from .session_state import SessionState
from .upstream_events import SpeechStarted

__all__ = ["BargeIn"]


class BargeIn(SessionState):
    """The one cancel/truncate rule (see the module docstring)."""

    __slots__ = ()

    def _barge_in(self, *, upstream_cancels: bool) -> None:
        """Stop the agent now. `upstream_cancels`: server VAD cancels an in-conversation
        response on its own (speech started); the proxy cancels everything else."""
        gate = self.gate
        heard = self.agent_audio.interrupt(self._clock(), still_generating=gate.busy)
        response_id = gate.response_id
        spoken = response_id is not None and response_id in self._speech_responses
        if gate.state is GateState.ACTIVE and (spoken or not upstream_cancels):
            self._upstream(translate.response_cancel(self._event_id("cancel"), response_id))
        if heard is not None and not spoken:
            self._upstream(translate.truncate_item(*heard))
        self._cancel_pending_calls()

    def _on_speech_started(self, event: SpeechStarted) -> None:
        self._user_speech = UserSpeech.SPEAKING  # new speech goes into the buffer
        self._to_client(UserStartedSpeaking())
        self._barge_in(upstream_cancels=True)
