"""How long the agent took, measured by the proxy: from the end of the user's turn to the
response and to its first audio or text. Feeds `AgentStartedSpeaking`, `LatencyReport`
and the turn-latency metric."""

from __future__ import annotations

from .server_messages import AgentStartedSpeaking, LatencyReport

__all__ = ["TurnLatency"]


class TurnLatency:
    """Clock readings of the current agent turn."""

    __slots__ = ("first_output", "response_created", "turn_ended")

    def __init__(self) -> None:
        self.turn_ended: float | None = None
        self.response_created: float | None = None
        self.first_output: float | None = None

    def user_turn_ended(self, now: float) -> None:
        self.turn_ended, self.response_created, self.first_output = now, None, None

    def response_started(self, now: float) -> None:
        self.response_created, self.first_output = now, None

    def output_started(self, now: float) -> AgentStartedSpeaking | None:
        """The first audio or text of the response: `AgentStartedSpeaking` once, else None."""
        if self.first_output is not None:
            return None
        self.first_output = now
        turn_end = self.turn_ended if self.turn_ended is not None else now
        created = self.response_created if self.response_created is not None else now
        return AgentStartedSpeaking(
            total_latency=_seconds(now - turn_end),
            tts_latency=_seconds(now - created),
            ttt_latency=_seconds(created - turn_end),
        )

    def turn_done(self) -> tuple[LatencyReport | None, float | None]:
        """At response.done: the report of a turn that answered the user, and its total."""
        if self.first_output is None or self.turn_ended is None:
            return None, None
        created = self.response_created or self.first_output
        total = self.first_output - self.turn_ended
        report = LatencyReport(
            total_latency=_seconds(total),
            ttt_token_latency=_seconds(created - self.turn_ended),
            tts_latency=_seconds(self.first_output - created),
        )
        self.turn_ended = None
        return report, total


def _seconds(value: float) -> float:
    return round(max(value, 0.0), 4)
