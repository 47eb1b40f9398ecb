"""Renewing the upstream session before the service's cap, as the session sees it.

`proxy.renewal` holds the state and the rules (when it is due, what the next session
must be sent, when it is up to date); this mixin feeds it the session's events and
carries out its decisions: open the next upstream session when due and quiet, keep it
up to date, switch when it holds everything and all is quiet, give it up when it fails;
after a switch, pass on a user transcript the replaced session still owed.
"""

from __future__ import annotations

from typing import Any

import orjson

from .actions import (
    Action,
    CloseNextUpstream,
    OpenNextUpstream,
    SendNextUpstream,
    SendUpstream,
    SwitchUpstream,
)
from .errors import ErrorCode, WarningCode
from .phases import Phase, UserSpeech
from .renewal import POLL_SECONDS, RenewalFailed, RenewalState
from .server_messages import Transcript
from .session_state import SessionState, loggable

__all__ = ["Renewing"]

_CLOSED = Phase.CLOSED
_READY = Phase.READY
_NOT_DUE = RenewalState.IDLE


class Renewing(SessionState):
    """The renewal hooks of a session (see the module docstring)."""

    __slots__ = ()

    def next_upstream_connected(self) -> list[Action]:
        """The next session's socket is open: the settings and the conversation go to it."""
        if self.closed or not self._renewal.preparing:
            return []
        self._to_next(self._renewal.connected(self._clock()))
        return self._take()

    def next_upstream_message(self, data: bytes | bytearray | str) -> list[Action]:
        """A frame from the next session (nothing reaches the client before the switch)."""
        if self.closed or not self._renewal.preparing:
            return []
        try:
            self._renewal.next_frame(data, self._clock())
        except RenewalFailed as exc:
            self._renewal_failed(str(exc))
        else:
            self._renew_step()
        return self._take()

    def retired_upstream_message(self, data: bytes | bytearray | str) -> list[Action]:
        """A frame from the session the last switch replaced, while it is still heard:
        a user transcript it owed reaches the client (and the record), nothing else."""
        if self.closed:
            return []
        late = self._renewal.late_transcript(data, self._clock())
        if late is None:
            return []
        _, text = late
        if text.strip():
            self._conversation_text("user", text)
        self._to_client(Transcript(transcript=text, is_final=True, speech_final=True))
        return self._take()

    def next_upstream_failed(self, code: ErrorCode, description: str) -> list[Action]:
        """The next session's connection could not be opened."""
        if not self.closed and self._renewal.preparing:
            self._renewal_failed(f"{code.value}: {description}")
        return self._take()

    def next_upstream_closed(self, code: int | None, reason: str) -> list[Action]:
        """The next session closed before the switch."""
        if not self.closed and self._renewal.preparing:
            self._renewal_failed(f"the next upstream session closed (code {code}) {reason}")
        return self._take()

    def _renew_step(self) -> None:
        """After each event and tick: end at the cap; open the next session when due and
        quiet; keep it up to date; switch when it holds everything and all is quiet."""
        renewal = self._renewal
        if renewal.expires is None or self.phase is _CLOSED:
            return
        now = self._clock()
        if renewal.state is _NOT_DUE and renewal.due_at is not None and now < renewal.due_at:
            return  # nearly always: one comparison per event
        renewal.poll_at = now + POLL_SECONDS  # (read only while waiting for a quiet moment)
        if now >= renewal.expires:
            self._session_expired("the upstream session reached its time limit unrenewed")
        elif renewal.preparing:
            if renewal.confirm_by is not None and now >= renewal.confirm_by:
                self._renewal_failed(
                    f"the next upstream session did not confirm within "
                    f"{self.options.ready_timeout:g} s"
                )
                return
            self._to_next(renewal.top_up(now))
            if renewal.ready_to_switch(now) and self._quiet(now):
                self._switch(now)
        elif renewal.is_due(now) and not self._draining and self._quiet(now):
            renewal.opening()
            self.log.info("upstream session due for renewal: opening the next one")
            self._out.append(OpenNextUpstream())

    def _quiet(self, now: float) -> bool:
        """No response requested or running, the user not speaking nor just done (an
        answer or a transcript due), no function call or settings change pending, the
        agent's audio played out on the client. In the last stretch before the cap a
        pending call or the user's speech no longer counts (see `RENEWAL_FORCE_SECONDS`):
        neither has an end the proxy can wait for."""
        forced = self._renewal.forced(now)
        return not (
            self.phase is not _READY
            or self.gate.busy
            or (self._user_speech is UserSpeech.SPEAKING and not forced)
            or self._pending
            or (self._calls and not forced)
            or self._updates
            or self.agent_audio.playing(now)
            or self._renewal.settling(now)
        )

    def _switch(self, now: float) -> None:
        renewal = self._renewal
        session_id = renewal.next_session_id
        recent = list(renewal.recent_audio)
        self._out.append(SwitchUpstream(hear_old_for=renewal.switched(now)))
        for payload in recent:  # the old session may not have heard it all
            self._out.append(SendUpstream(payload))
        self.agent_audio.item_id = None  # the old session's items are not in the new one
        self._user_transcript = ("", "")
        self.log.upstream_session = loggable(session_id)
        self.log.info("upstream session renewed (renewal %d)", renewal.renewals)
        self._warn(
            WarningCode.SESSION_RENEWED,
            "the upstream session reached its time limit; a new one took over with the "
            "conversation so far",
        )

    def _renewal_failed(self, why: str) -> None:
        """The next session cannot be used: give it up and try again later, while there
        is time; else the current one serves until its cap (then the client gets Error
        upstream_session_expired)."""
        self._out.append(CloseNextUpstream(1000, "renewal abandoned"))
        again = self._renewal.failed(self._clock())
        self.log.warning(
            "upstream session renewal failed: %s; %s", why, "will retry" if again else "giving up"
        )

    def _session_expired(self, why: str) -> None:
        self._fail_upstream(ErrorCode.UPSTREAM_SESSION_EXPIRED, why)

    def _to_next(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            item = event.get("item")
            if item is not None and item.get("role") == "assistant":
                self._reported_items.add(item["id"])  # its late echo is not new text
            self._out.append(SendNextUpstream(orjson.dumps(event)))
