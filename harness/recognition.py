"""Recognising spoken words offline, against the phrases a test scripted.

A test knows what should be said ("what time is it"), so recognition here is a closed
question: which of these phrases, if any, is in this audio? pocketsphinx (the optional
``[speech]`` extra; its wheel carries the US English model, nothing is downloaded)
decodes the audio against a grammar made of exactly those phrases.

Only the speech is decoded: `harness.speech_segments` finds it with pocketsphinx's
endpointer and drops what comes before, between and after (padded), because the
grammar cannot pass over silence or noise before the words. Decoding whole turns, 0.5 s
of silence first was enough to hear nothing or a wrong phrase: of 35 phrases after
0.5 s or 2 s of silence, 2 s of faint noise, or a microphone left on between turns, 4
of 140 were heard right and 19 as another phrase; decoding the speech only, 140 of 140.

The grammar must not force a match, so a phrase counts as heard only when all three hold
(measured on 35 phrases by ``benchmarks/recognition.py``: 579-580 of 595 heard right
through every client format, 1-2 heard as another phrase, the rest as nothing; no
unrelated sentence (also after 2 s of silence), longer speech, noise or silence matched;
6 of 140 broken utterances still matched a phrase: 4 with every other 100 ms dropped, 2
slowed from 24 to 16 kHz):

* the grammar search reached the end of a whole phrase: pocketsphinx reports a partial
  path, or none, when the audio does not fit any phrase (filler words are off, so
  silence and noise cannot pad a path out);
* the phrase fits the audio clearly better than an unconstrained phone loop (the
  allphone search) does, by `MIN_MARGIN`;
* no word of the path lasts longer than `MAX_WORD_SECONDS`: speech longer than the
  phrase can otherwise be fitted to it by stretching one word over the rest.

One decoder serves a process (building one loads the acoustic model and the 130,000
word dictionary: ~0.15 s); a lock makes it safe from any thread, and each phrase set's
grammar is built once. A decode (finding the speech, then both searches) takes a median
122 ms per utterance, p95 504 ms, on a 2-core machine shared with other jobs (decoding
whole turns, the same benchmark took 213 ms and 858 ms there), and 1.5-2 s for a 30 s
turn. pocketsphinx holds the GIL all that time, so `recognise` and `recognise_async`
decode in one long-lived worker process (`harness.recognition_worker`): the caller's
threads and event loop run on (the loop's longest stall during a 30 s decode: 1.2-2.0 s
in a thread, a median 8-18 ms and at most 84 ms this way; the trip costs 1-9 ms a
decode, the first decode ~0.5 s more while the worker starts:
``benchmarks/recognition_stall.py``).
`recognition_of` decodes in the calling thread (the benchmarks measure the decode
itself with it).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import soxr

from harness import recognition_worker
from harness.speech_segments import PAD_AFTER_S, speech_only

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # G.711 (audioop-lts from 3.13)
    import audioop

__all__ = [
    "DECODER_RATE",
    "INSTALL_HINT",
    "MAX_WORD_SECONDS",
    "MIN_MARGIN",
    "Encoding",
    "Recognition",
    "RecognitionUnavailable",
    "phrase_words",
    "recognise",
    "recognise_async",
    "recognition_available",
    "recognition_of",
    "require_recognition",
    "to_decoder_pcm",
]

#: The rate of pocketsphinx's US English acoustic model.
DECODER_RATE: Final = 16_000
#: The one line a test that needs recognition fails with when pocketsphinx is missing.
INSTALL_HINT: Final = (
    "recognition needs pocketsphinx: pip install 'voice-agent-realtime-proxy[speech]' "
    "(the dev and e2e extras include it)"
)
#: How much better (per frame, in pocketsphinx's normalised score) the phrase must fit
#: than the phone loop. benchmarks/recognition.py (35 phrases, every client format):
#: phrases heard right fit at least 0.057 better (median 0.24); a whole phrase fitted
#: to broken audio can fit worse than the loop. Without this guard 9 of the 140 broken
#: utterances matched, with it 7. The whole-phrase rule above does most of the
#: rejecting.
MIN_MARGIN: Final = 0.02
#: The longest a word of a phrase heard may last. Speech that is not the phrase but
#: longer (a monologue, a sentence with more words around it) can still fit a short
#: phrase as a whole path, by stretching one of its words over the rest: a 29 s
#: monologue was heard as "what time is it" with "it" lasting 25 s, "i was wondering
#: whether you could tell me a joke about cats" as "what is on my calendar" with
#: "calendar" lasting 2.2 s. benchmarks/recognition.py (35 phrases through every client
#: format and at 130, 100 and 80 words a minute; espeak-ng's own pace is 175): the
#: longest word of a phrase heard right lasted a median 0.45 s, at most 0.92 s at 175
#: words a minute and 1.44 s at 80 (the padding `speech_only` leaves after the speech is
#: not counted). The bound sits between the slowest speaker and the nearest false match.
MAX_WORD_SECONDS: Final = 1.8
#: Grammars kept per decoder; beyond this the decoder is rebuilt (pocketsphinx cannot
#: safely drop the active search).
_MAX_GRAMMARS: Final = 256
#: pocketsphinx's feature frames: 10 ms each.
_FRAMES_PER_SECOND: Final = 100

Encoding = Literal["linear16", "mulaw", "alaw"]


class RecognitionUnavailable(RuntimeError):
    """pocketsphinx is not installed (the ``[speech]`` extra)."""


def recognition_available() -> bool:
    """Is pocketsphinx installed?"""
    return importlib.util.find_spec("pocketsphinx") is not None


def require_recognition() -> None:
    """Raise `RecognitionUnavailable` (with `INSTALL_HINT`) when pocketsphinx is missing."""
    if not recognition_available():
        raise RecognitionUnavailable(INSTALL_HINT)


@dataclass(frozen=True, slots=True)
class Recognition:
    """What one decode found.

    `phrase`: the phrase heard, as the caller wrote it, or "" when none was.
    `hypothesis`: the grammar search's best path (a partial one when nothing fitted).
    `margin`: how much better the path fits than the phone loop (see `MIN_MARGIN`).
    `seconds`: time spent decoding.
    `longest_word`: seconds of the path's longest word (see `MAX_WORD_SECONDS`).
    """

    phrase: str
    hypothesis: str
    margin: float
    seconds: float
    longest_word: float = 0.0


def phrase_words(phrase: str) -> str:
    """A phrase as the grammar spells it: lower case, words only ("What's up?" ->
    "what's up")."""
    return " ".join(re.findall(r"[a-z]+(?:'[a-z]+)*", phrase.lower()))


def to_decoder_pcm(audio: bytes, *, rate: int, encoding: Encoding = "linear16") -> bytes:
    """`audio` (PCM16 LE mono, or G.711 at `rate`) as the decoder takes it: PCM16 LE
    mono at 16 kHz. An odd trailing byte is dropped."""
    if encoding == "mulaw":
        audio = audioop.ulaw2lin(audio, 2)
    elif encoding == "alaw":
        audio = audioop.alaw2lin(audio, 2)
    elif encoding != "linear16":
        raise ValueError(f"no encoding {encoding!r}: linear16, mulaw or alaw")
    samples = np.frombuffer(audio[: len(audio) - len(audio) % 2], dtype="<i2")
    if rate != DECODER_RATE and samples.size:
        resampled = soxr.resample(samples.astype(np.float32) / 32768.0, rate, DECODER_RATE)
        samples = np.clip(np.round(resampled * 32768.0), -32768, 32767).astype("<i2")
    return bytes(samples.astype("<i2").tobytes())


def recognition_of(
    audio: bytes, phrases: Iterable[str], *, rate: int, encoding: Encoding = "linear16"
) -> Recognition:
    """Decode `audio` against `phrases`: the details (see `recognise`)."""
    require_recognition()
    spelled: dict[str, str] = {}
    for phrase in phrases:
        words = phrase_words(phrase)
        if not words:
            raise ValueError(f"phrase {phrase!r} has no words to recognise")
        spelled.setdefault(words, phrase)
    if not spelled or len(audio) < 2:
        return Recognition("", "", 0.0, 0.0)
    started = time.perf_counter()
    # Only the speech, padded: the grammar cannot pass over silence or noise before it.
    speech = speech_only(to_decoder_pcm(audio, rate=rate, encoding=encoding))
    if not speech:
        return Recognition("", "", 0.0, time.perf_counter() - started)
    found = _engine().decode(speech, spelled)
    return dataclasses.replace(found, seconds=time.perf_counter() - started)


def recognise(
    audio: bytes, phrases: Iterable[str], *, rate: int, encoding: Encoding = "linear16"
) -> str:
    """The phrase of `phrases` spoken in `audio` (as written), or "" when none was.

    `audio` is PCM16 LE mono (``encoding="linear16"``) or G.711 (``"mulaw"``,
    ``"alaw"``) at `rate` Hz; it should hold one utterance (silence or noise around it
    is passed over: only the speech is decoded). Raises
    `RecognitionUnavailable` without pocketsphinx, and ValueError for a phrase with a
    word outside the decoder's dictionary (numbers are spelled out: "two", not "2").
    Phrases of three words or more are recognised reliably; a single short word is not.

    The decode runs in the recognition worker process (`harness.recognition_worker`):
    pocketsphinx holds the GIL while it decodes, and would stall every thread here.
    """
    require_recognition()  # here, so a missing extra never starts the worker
    chosen = list(phrases)
    return recognition_worker.call(_heard, audio, chosen, rate=rate, encoding=encoding)


async def recognise_async(
    audio: bytes, phrases: Iterable[str], *, rate: int, encoding: Encoding = "linear16"
) -> str:
    """`recognise`, awaited: the event loop runs on while the worker process decodes."""
    require_recognition()
    chosen = list(phrases)
    return await recognition_worker.call_async(_heard, audio, chosen, rate=rate, encoding=encoding)


def _heard(audio: bytes, phrases: list[str], *, rate: int, encoding: Encoding) -> str:
    """In the worker process: the phrase `recognise` answers."""
    return recognition_of(audio, phrases, rate=rate, encoding=encoding).phrase


class _Engine:
    """One pocketsphinx decoder, its grammars and the phone loop (lock held to use it)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._decoder: Any = None
        self._grammars: dict[frozenset[str], str] = {}

    def decode(self, pcm: bytes, spelled: dict[str, str]) -> Recognition:
        started = time.perf_counter()
        with self.lock:
            search = self._grammar(frozenset(spelled))
            hypothesis, fit = self._run(search, pcm)
            longest = self._longest_word()
            phrase = spelled.get(hypothesis, "") if longest <= MAX_WORD_SECONDS else ""
            margin = 0.0
            if phrase:  # only a whole phrase is worth the phone loop's opinion
                _, loop = self._run("phone_loop", pcm)
                margin = fit - loop
                if margin < MIN_MARGIN:
                    phrase = ""
        return Recognition(phrase, hypothesis, margin, time.perf_counter() - started, longest)

    def _longest_word(self) -> float:
        """Seconds of the longest word in the last search's path, silence not counted and
        the padding `speech_only` leaves after the speech taken off the last word."""
        frames: list[int] = [
            int(segment.end_frame - segment.start_frame + 1)
            for segment in self._decoder.seg() or ()  # None without a path
            if not segment.word.startswith(("<", "["))
        ]
        if not frames:
            return 0.0
        frames[-1] -= round(PAD_AFTER_S * _FRAMES_PER_SECOND)
        return max(frames) / _FRAMES_PER_SECOND

    def _run(self, search: str, pcm: bytes) -> tuple[str, float]:
        decoder = self._decoder
        decoder.activate_search(search)
        # Feature extraction keeps state (the cepstral mean) from the last utterance:
        # reset it, so a decode never depends on what was decoded before it.
        decoder.reinit_feat()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        if hypothesis is None:
            return "", 0.0
        return str(hypothesis.hypstr), float(hypothesis.score)

    def _grammar(self, phrases: frozenset[str]) -> str:
        name = self._grammars.get(phrases)
        if name is not None:
            return name
        if self._decoder is None or len(self._grammars) >= _MAX_GRAMMARS:
            self._decoder = _new_decoder()
            self._grammars.clear()
        unknown = sorted(
            {w for p in phrases for w in p.split() if self._decoder.lookup_word(w) is None}
        )
        if unknown:
            raise ValueError(
                f"cannot recognise {', '.join(map(repr, unknown))}: not in the decoder's "
                "dictionary (spell numbers and symbols as words)"
            )
        name = f"phrases_{len(self._grammars)}"
        alternatives = " | ".join(f"( {p} )" for p in sorted(phrases))
        self._decoder.add_jsgf_string(
            name, f"#JSGF V1.0;\ngrammar heard;\npublic <phrase> = {alternatives};\n"
        )
        self._grammars[phrases] = name
        return name


def _new_decoder() -> Any:
    from pocketsphinx import Decoder, get_model_path

    model = os.path.join(get_model_path(), "en-us")
    decoder = Decoder(
        lm=None,
        logfn=os.devnull,
        # Filler words (silence, breath) at every grammar state let noise and silence
        # pad a path out to a whole phrase; off, a non-matching utterance ends partial.
        fsgusefiller=False,
        cmn="batch",  # the whole utterance is there: normalise over all of it
    )
    decoder.add_allphone_file("phone_loop", os.path.join(model, "en-us-phone.lm.bin"))
    return decoder


_ENGINE_LOCK: Final = threading.Lock()
_ENGINES: list[_Engine] = []


def _engine() -> _Engine:
    with _ENGINE_LOCK:
        if not _ENGINES:
            _ENGINES.append(_Engine())
        return _ENGINES[0]
