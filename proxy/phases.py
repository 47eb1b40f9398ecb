"""A session's small state types: the opening as a transition table (the shape of
h11's `_state.py`), and where the user's speech is.

A session opens in this order: the upstream socket opens, the client's first `Settings`
goes upstream, upstream confirms it (`session.updated`), and only then does everything
else the client sent go upstream. Every legal step is one row of `OPENING`; `advance`
refuses any other, so a wrong order is a bug caught where it happens, not a session
stuck in a phase nobody expected. Closing is legal from every phase.

Whether the client has had `Welcome` is not a phase: `session.created` may come before
or after the first `Settings` goes; the session keeps what it must hold until then.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["OPENING", "IllegalStep", "Phase", "Step", "UserSpeech", "advance"]


class Phase(Enum):
    """Where the session is in its opening."""

    CONNECTING = "waiting for the upstream socket"
    NEEDS_SETTINGS = "waiting for the client's Settings"
    APPLYING = "waiting for session.updated"
    READY = "ready"
    CLOSED = "closed"


class Step(Enum):
    """What moves the opening on."""

    SOCKET_OPEN = "the upstream socket is open"
    SETTINGS_SENT = "the first Settings went upstream"
    SETTINGS_REFUSED = "upstream refused the first Settings"
    SETTINGS_APPLIED = "upstream applied the first Settings"
    CLOSE = "the session closes"


#: (phase, step) -> the phase after it. Nothing else is legal.
OPENING: dict[tuple[Phase, Step], Phase] = {
    (Phase.CONNECTING, Step.SOCKET_OPEN): Phase.NEEDS_SETTINGS,
    (Phase.NEEDS_SETTINGS, Step.SETTINGS_SENT): Phase.APPLYING,
    (Phase.APPLYING, Step.SETTINGS_REFUSED): Phase.NEEDS_SETTINGS,  # corrected ones may come
    (Phase.APPLYING, Step.SETTINGS_APPLIED): Phase.READY,
    **{(phase, Step.CLOSE): Phase.CLOSED for phase in Phase},
}


class IllegalStep(RuntimeError):
    """A step the table does not allow from the current phase (a bug in the session)."""


def advance(phase: Phase, step: Step) -> Phase:
    """The phase after `step`; IllegalStep when the table has no such row."""
    try:
        return OPENING[phase, step]
    except KeyError:
        raise IllegalStep(f"{step.value!r} while {phase.value!r}") from None


class UserSpeech(Enum):
    """Where the user's speech is, as server VAD and ForceEndTurn tell it.

    QUIET -> SPEAKING (speech started) -> COMMITTED (speech stopped, or the buffer was
    committed: server VAD answers it, so a ForceEndTurn has nothing left to commit or ask
    for) -> QUIET (the response that answers it ended). A response starting, or a
    ForceEndTurn, ends SPEAKING too: the turn has ended, whatever VAD said.
    """

    QUIET = "quiet"
    SPEAKING = "speaking"
    COMMITTED = "committed by server VAD, not yet answered"
