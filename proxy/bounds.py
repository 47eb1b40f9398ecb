"""Every internal bound in one place: limits that are not operator options, each with why
it is what it is.

Operator options (and the per-server bounds `ProxyConfig` carries, such as frame sizes
and timeouts) are in `proxy.settings`. What is here is fixed: caps on what one session or
one server may hold, retry counts and polling periods. The modules that enforce them
import them from here (under their own names where they have one); a bound is never a
literal in the middle of a loop. Nothing here imports anything.
"""

from __future__ import annotations

from typing import Final

# ---------------------------------------------------------------- wire and sockets

#: How deep JSON from either peer may nest (objects and arrays). Nothing the protocols
#: carry needs more, and orjson cannot write back what nests past 255 levels.
MAX_JSON_DEPTH: Final = 32
#: Binary frames to the client are split to at most this size.
MAX_CLIENT_AUDIO_FRAME: Final = 64 * 1024
#: The socket's write buffer may hold this much before frames queue in the outbox
#: (passed to websockets as its `write_limit`, so the transport's flow control agrees).
WRITE_LIMIT: Final = 64 * 1024
#: Seconds a close may take before the connection is dropped.
CLOSE_GRACE: Final = 2.0
#: Seconds a connection may take to finish its TLS handshake, and then to send its
#: upgrade request (websockets' own default, which the first review found holding).
OPEN_TIMEOUT: Final = 10.0

# ---------------------------------------------------------------- one session

#: Responses that may wait at once. Turns share one, so only speech (InjectAgentMessage
#: with `queue` or `interrupt`) could fill it: past this, it is refused.
MAX_QUEUED_RESPONSES: Final = 16
#: Responses the client may have been told about at once (out-of-band speech can run
#: beside an in-conversation response); older ones are forgotten.
MAX_OPEN_RESPONSES: Final = 8
#: Responses holding function calls that a session tracks as running at once; past it
#: the oldest is forgotten (should upstream never end one).
MAX_RUNNING_CALLS: Final = 16
#: Function calls waiting for their output at once: a model calls a few functions at a
#: time; past this (an upstream calling without end) a call is answered at once with a
#: failure, so the table cannot grow and the model is not left waiting.
MAX_PENDING_CALLS: Final = 64
#: Item, call and response ids a session remembers (to drop duplicates and echoes of what
#: it cancelled); older ones are forgotten, so a long session stays small.
RECENT_IDS: Final = 256
#: Server-side function calls (the proxy calls the endpoint) in flight at once per
#: session; past it a call is answered with a failure: one session cannot fan out.
MAX_SERVER_CALLS: Final = 4
#: The user's transcript as it grows (transcription deltas) is cut at this many
#: characters: upstream cannot make the proxy hold an unbounded string per item.
MAX_TRANSCRIPT_CHARS: Final = 64 * 1024
#: A message burst may be this many seconds' worth of the message rate (1000 messages
#: at the default 500 a second).
MESSAGE_BURST_SECONDS: Final = 2.0
#: A flood ends when nothing was dropped for this long (the next drop starts a new one).
FLOOD_QUIET_SECONDS: Final = 1.0

# ---------------------------------------------------------------- sessions past the cap

#: What is carried over to the next upstream session is bounded: the items and their
#: text. gpt-realtime keeps 32k tokens of context (OpenAI cookbook, "Context summarization
#: with the Realtime API"; newer models keep more) and drops the oldest itself
#: (`truncation: auto`); 64k characters (about 16k tokens) leave room for the
#: instructions, the tools and the next turns, and 500 items bound the
#: `conversation.item.create` events (each one a round trip). When the record is over
#: either bound, its oldest entries go first: the model would lose those first anyway,
#: and the recent turns are what the next answer depends on.
MAX_CARRIED_ITEMS: Final = 500
MAX_CARRIED_CHARS: Final = 64_000
#: No one entry (a long message, a large function output) may take more than this share
#: of the character bound: it is cut, with `TRUNCATED_MARK` at its end, rather than
#: pushing the whole conversation out of the record.
CARRIED_ENTRY_SHARE: Final = 4
TRUNCATED_MARK: Final = " [... cut by the proxy when the upstream session was renewed]"
#: A spoken turn's transcript comes after its commit, often after the answer. The switch
#: waits for it this long (a transcription that never comes does not block renewal).
RENEWAL_TRANSCRIPT_WAIT: Final = 5.0
#: With server VAD the service answers a turn on its own once the user stops speaking
#: (`speech_stopped`, then `committed`, then `response.created`): that answer is waited
#: for this long before the moment counts as quiet.
RENEWAL_ANSWER_WAIT: Final = 5.0
#: While renewal waits for a quiet moment, it looks again this often: some moments turn
#: quiet with time alone (the agent's audio played out, a transcript given up).
RENEWAL_POLL_SECONDS: Final = 0.5
#: A next session that fails (refused, closed, silent) is tried again this much later,
#: at most `RENEWAL_MAX_ATTEMPTS` times in all, while the current session has time left.
RENEWAL_RETRY_SECONDS: Final = 15.0
RENEWAL_MAX_ATTEMPTS: Final = 3
#: At the switch, the newest microphone audio the old session got goes to the new one
#: too: speech that began just before the switch, too short for the old session's VAD to
#: have noticed, reaches the new session whole (three batches: 300 ms by default).
RECENT_AUDIO_BATCHES: Final = 3
#: After a switch, a spoken turn's transcript the switch did not wait for (it waits
#: `RENEWAL_TRANSCRIPT_WAIT`) may still come from the old session: the old session stays
#: open this long, only heard for those transcripts, which reach the client and the
#: record carried at the next renewal. Later ones are lost.
RENEWAL_LATE_TRANSCRIPT_SECONDS: Final = 20.0
#: Renewal waits for a quiet moment, but not past this last stretch before the cap (or
#: the last half of the renewal window, when that is shorter): from then on a client-side
#: function call the client has not answered, or user speech that has not stopped, no
#: longer holds the switch, which would otherwise come too late and end the session at
#: the cap. The call goes along (the next session gets its item, and the client's later
#: output goes to that session); of speech in progress the new session hears the newest
#: `RECENT_AUDIO_BATCHES` and what follows. A minute leaves room for the next session's
#: opening and confirmation (`ready_timeout`, 15 s by default) and a retry of neither.
RENEWAL_FORCE_SECONDS: Final = 60.0
#: The current session counts as at its cap this early: `expires_at` is whole seconds
#: and the service may close on the second.
CAP_EARLY_SECONDS: Final = 1.0

# ---------------------------------------------------------------- one server

#: Client addresses the per-address connection rate tracks; past it, buckets that have
#: refilled are dropped (at most once every `RATE_TABLE_PRUNE_SECONDS`), and while it
#: stays full new addresses share one bucket.
MAX_TRACKED_ADDRESSES: Final = 10_000
RATE_TABLE_PRUNE_SECONDS: Final = 1.0
#: Longer request URLs to a function endpoint (the endpoint, or with a GET's arguments)
#: are refused; 8 KiB is what common servers accept.
MAX_URL_CHARS: Final = 8192
#: Connections open at once to function endpoints, for the whole server (a call past it
#: waits for one, within its deadline): many sessions cannot open thousands to a backend.
MAX_FUNCTION_CONNECTIONS: Final = 100
#: Idle connections to function endpoints kept for reuse (each an open socket).
KEEPALIVE_FUNCTION_CONNECTIONS: Final = 10
#: Distinct upstream error codes counted by name in the metrics (the last is "other"):
#: upstream chooses the codes, and each one is a time series.
MAX_ERROR_CODES: Final = 64
#: Characters of one log message (peers choose what ends up in some messages).
MAX_LOGGED_CHARS: Final = 4096
#: Seconds between two additions of a session's traffic to the metrics.
TRAFFIC_REPORT_SECONDS: Final = 1.0

# ---------------------------------------------------------------- --workers

#: Seconds a worker may take to start listening (importing, on a loaded machine).
WORKER_READY_TIMEOUT: Final = 60.0
#: A worker that dies more than this many times in `WORKER_RESTART_WINDOW` seconds is
#: not restarted again: every worker stops (something is wrong that a restart won't fix).
WORKER_RESTARTS_ALLOWED: Final = 5
WORKER_RESTART_WINDOW: Final = 60.0
#: How often the supervisor looks at the ready queue while workers serve.
WORKER_POLL_SECONDS: Final = 0.5
