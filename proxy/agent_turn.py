"""How each agent turn ends for the client, in Deepgram's order, whatever upstream does.

Deepgram ends an agent turn with `AgentAudioDone` *after* the turn's
`ConversationText {assistant}`; its browser component starts its idle timer on that
order. The Realtime service sends `response.output_audio.done` before the transcript's
`.done`, so `AgentAudioDone` for an item is held until the item's text has gone out, or
until `response.done` ends the response. And every response the client was told about
(`AgentThinking`) ends with an `AgentAudioDone`, whatever its status (`failed`,
`incomplete`, `cancelled`, or text and function calls only): the component never stays
"thinking".

`AgentTurns` decides only *when*; the session sends. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from .bounds import MAX_OPEN_RESPONSES as _MAX_OPEN

__all__ = ["AgentTurns"]


@dataclass(slots=True)
class _Turn:
    speech: bool  # exact speech: its text went out when it was asked for
    held: str | None = None  # the item whose AgentAudioDone waits for its text
    audio_done_sent: bool = False
    error_told: bool = False  # an upstream Error already told the client why it failed


class AgentTurns:
    """The responses the client was told started (`AgentThinking`) and not yet ended."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: dict[str, _Turn] = {}

    def started(self, response_id: str, *, speech: bool) -> None:
        """response.created: the client gets AgentThinking."""
        if len(self._open) >= _MAX_OPEN and response_id not in self._open:
            del self._open[next(iter(self._open))]
        self._open[response_id] = _Turn(speech)

    def audio_done(self, response_id: str | None, item_id: str, *, text_out: bool) -> bool:
        """An item's audio is complete: True when AgentAudioDone should go now (its
        text is out, or it is exact speech), False when it is held for the text."""
        turn = self._find(response_id)
        if turn is None:
            return True  # a response we never saw start: nothing to order it against
        if turn.speech or text_out:
            turn.audio_done_sent = True
            return True
        turn.held = item_id
        return False

    def text_out(self, item_id: str) -> bool:
        """The item's assistant text went out: True when a held AgentAudioDone goes now."""
        for turn in self._open.values():
            if turn.held == item_id:
                turn.held = None
                turn.audio_done_sent = True
                return True
        return False

    def error_told(self, response_id: str | None) -> None:
        """An upstream Error was told while this response ran."""
        turn = self._find(response_id)
        if turn is not None:
            turn.error_told = True

    def was_error_told(self, response_id: str) -> bool:
        turn = self._open.get(response_id)
        return turn is not None and turn.error_told

    def ended(self, response_id: str | None) -> bool:
        """response.done (or the response was abandoned): True when the client still
        needs its AgentAudioDone (one was held, or none was sent for this response)."""
        turn = self._open.pop(response_id, None) if response_id is not None else None
        if turn is None:
            return False
        return turn.held is not None or not turn.audio_done_sent

    def _find(self, response_id: str | None) -> _Turn | None:
        if response_id is not None:
            return self._open.get(response_id)
        # No id on the event: the latest response is meant.
        return next(reversed(self._open.values()), None)
