"""How well `harness.recognition` hears, and what it costs.

    .venv/bin/python benchmarks/recognition.py [--phrases N] [--quick]

35 phrases spoken by espeak-ng, each decoded against a grammar of all 35, through:

* clean: espeak-ng at 16 kHz, straight in;
* in, every client format: the client's rate (linear16 at the six rates, mu-law and
  A-law at 8 kHz) through the proxy's own `InputConverter` in 20 ms chunks, decoded at
  what the mock receives (24 kHz PCM16);
* out, every client format: the mock's 24 kHz speech through the proxy's
  `OutputConverter`, decoded at the client's rate and encoding;
* broken: byte-swapped, every other 100 ms chunk dropped, 24 kHz audio taken for
  16 kHz (wrong rate), one byte lost (every later sample shifted);
* before the words: 0.5 s and 2 s of silence, 2 s of faint noise (Gaussian, std 30 of
  32767), and the microphone left on between turns (3 s of silence, the words, 0.6 s of
  silence, through the proxy's `InputConverter` at 16 kHz, as the mock receives a turn);
* unrelated: 10 sentences that are none of the phrases, white noise, faint noise,
  silence, silence then an unrelated sentence.

It prints, per condition: phrases heard right, heard as another phrase (a false match),
heard as nothing; for broken and unrelated audio every phrase heard is a false match.
Then the decode time per utterance (median and 95th percentile), and the margins
(`MIN_MARGIN`'s evidence).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.recognition import (
    MAX_WORD_SECONDS,
    MIN_MARGIN,
    Encoding,
    recognition_of,
    require_recognition,
)
from harness.speech import speech_pcm16
from proxy.audio_formats import ClientAudio, InputConverter, OutputConverter

PHRASES = (
    "what time is it",
    "tell me a joke",
    "book a table for two",
    "what is the weather in paris",
    "turn off the lights",
    "please open the door",
    "how are you doing today",
    "play some music",
    "set an alarm for seven",
    "call my mother",
    "where is the nearest station",
    "send a message to john",
    "what is on my calendar",
    "order a large pizza",
    "how far is the airport",
    "read me the news",
    "find a good restaurant",
    "cancel my appointment",
    "what is the capital of france",
    "remind me to buy milk",
    "show me the map",
    "is it going to rain tomorrow",
    "check my bank balance",
    "start a timer for ten minutes",
    "what does this word mean",
    "translate hello into spanish",
    "turn up the volume",
    "who won the game last night",
    "i need a taxi",
    "thank you very much",
    "please repeat that",
    "the answer is forty two",
    "the sun is shining",
    "it is half past three",
    "goodbye and see you soon",
)
UNRELATED = (
    "good morning everyone",
    "the cat sat on the mat",
    "i would like some coffee",
    "open the window please",
    "what is the time",
    "my brother lives in london",
    "this is a very long sentence about nothing at all",
    "seven eight nine",
    "do you have any questions",
    "we are going to the beach",
)
FORMATS: tuple[tuple[Encoding, int], ...] = (
    *(("linear16", rate) for rate in (8000, 16000, 24000, 32000, 44100, 48000)),
    ("mulaw", 8000),
    ("alaw", 8000),
)


@dataclass
class Tally:
    right: int = 0
    wrong: int = 0
    none: int = 0
    seconds: list[float] = field(default_factory=list)
    margins: list[float] = field(default_factory=list)
    false_margins: list[float] = field(default_factory=list)
    longest_words: list[float] = field(default_factory=list)

    def add(self, said: str, heard: str, seconds: float, margin: float, longest: float) -> None:
        self.seconds.append(seconds)
        if heard and heard == said:
            self.right += 1
            self.margins.append(margin)
            self.longest_words.append(longest)
        elif heard:
            self.wrong += 1
            self.false_margins.append(margin)
        else:
            self.none += 1


def through_input(pcm: bytes, encoding: Encoding, rate: int) -> bytes:
    """Client audio (PCM16 at `rate`) as the mock receives it: 24 kHz PCM16."""
    audio = ClientAudio(encoding, rate, "linear16", 24000)
    converter = InputConverter(audio)
    data = _encode(pcm, encoding)
    step = rate * (2 if encoding == "linear16" else 1) // 50  # 20 ms
    out = b"".join(converter.process(data[i : i + step]) for i in range(0, len(data), step))
    return out + converter.flush()


def through_output(pcm24: bytes, encoding: Encoding, rate: int) -> bytes:
    """The mock's 24 kHz speech as the client receives it."""
    converter = OutputConverter(ClientAudio("linear16", 16000, encoding, rate))
    step = 24000 * 2 // 10  # 100 ms deltas
    out = b"".join(converter.process(pcm24[i : i + step]) for i in range(0, len(pcm24), step))
    return out + converter.flush()


def _encode(pcm: bytes, encoding: Encoding) -> bytes:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    if encoding == "mulaw":
        return bytes(audioop.lin2ulaw(pcm, 2))
    if encoding == "alaw":
        return bytes(audioop.lin2alaw(pcm, 2))
    return pcm


def byte_swapped(pcm: bytes) -> bytes:
    return np.frombuffer(pcm, dtype="<i2").byteswap().tobytes()


def chunks_dropped(pcm: bytes, rate: int = 16000, chunk_ms: int = 100) -> bytes:
    size = rate * 2 * chunk_ms // 1000
    return b"".join(pcm[i : i + size] for i in range(0, len(pcm), 2 * size))


#: espeak-ng speaks 175 words a minute; slower speakers stretch each word.
SLOW_PACES = (130, 100, 80)
#: Speech longer than any phrase: a phrase with more words around it, and a monologue
#: (~30 s, as a long spoken turn), which a grammar can fit to a short phrase by
#: stretching one word over the rest (see MAX_WORD_SECONDS).
LONGER = (
    "could you please tell me what time is it right now",
    "i was wondering whether you could tell me a joke about cats",
    "the quick brown fox jumps over the lazy dog while the farmer walks to the market to "
    "sell his apples and pears, and the children play in the garden near the old oak tree "
    "where the birds sing every morning before the sun rises over the hills. The river "
    "flows quietly past the village where everyone knows each other by name, and the "
    "baker opens his shop early to bake fresh bread for the whole town.",
)


def run(phrases: Sequence[str], quick: bool) -> None:
    require_recognition()
    grammar = list(phrases)
    tallies: dict[str, Tally] = {}

    def check(condition: str, said: str, audio: bytes, rate: int, encoding: Encoding) -> None:
        found = recognition_of(audio, grammar, rate=rate, encoding=encoding)
        tallies.setdefault(condition, Tally()).add(
            said, found.phrase, found.seconds, found.margin, found.longest_word
        )

    rng = np.random.default_rng(7)
    started = time.perf_counter()
    recognition_of(speech_pcm16(phrases[0], rate=16000), grammar, rate=16000)  # warm up
    for phrase in phrases:
        clean = speech_pcm16(phrase, rate=16000)
        check("clean 16 kHz", phrase, clean, 16000, "linear16")
        formats = FORMATS[:1] + FORMATS[-1:] if quick else FORMATS
        for encoding, rate in formats:
            spoken = speech_pcm16(phrase, rate=rate)
            check(
                f"in  {encoding} {rate}",
                phrase,
                through_input(spoken, encoding, rate),
                24000,
                "linear16",
            )
            out = through_output(speech_pcm16(phrase, rate=24000), encoding, rate)
            check(f"out {encoding} {rate}", phrase, out, rate, encoding)
        faint = rng.normal(0, 30, 32000).astype("<i2").tobytes()
        before = {
            "lead: 0.5 s silence": bytes(16000) + clean,
            "lead: 2 s silence": bytes(64000) + clean,
            "lead: 2 s faint noise": faint + clean,
            "lead: microphone on between turns": through_input(
                bytes(96000) + clean + bytes(19200), "linear16", 16000
            ),
        }
        for condition, late in before.items():
            rate = 24000 if "microphone" in condition else 16000
            check(condition, phrase, late, rate, "linear16")
        broken = {
            "broken: byte-swapped": byte_swapped(clean),
            "broken: 100 ms chunks dropped": chunks_dropped(clean),
            "broken: 24 kHz taken for 16 kHz": speech_pcm16(phrase, rate=24000),
            "broken: one byte lost": clean[1:],
        }
        for condition, faulty in broken.items():
            found = recognition_of(faulty, grammar, rate=16000)
            tallies.setdefault(condition, Tally()).add(
                "", found.phrase, found.seconds, found.margin, found.longest_word
            )
    for sentence in UNRELATED:
        unrelated = speech_pcm16(sentence, rate=16000)
        check("unrelated speech", "", unrelated, 16000, "linear16")
        check("unrelated after 2 s silence", "", bytes(64000) + unrelated, 16000, "linear16")
    for phrase in phrases:
        for pace in SLOW_PACES:
            slow = speech_pcm16(phrase, rate=16000, words_per_minute=pace)
            check(f"slow speaker: {pace} words a minute", phrase, slow, 16000, "linear16")
    for sentence in LONGER:
        check("longer than a phrase", "", speech_pcm16(sentence, rate=16000), 16000, "linear16")
    faint_noise = rng.normal(0, 30, 48000).astype("<i2").tobytes()
    check("faint noise", "", faint_noise, 16000, "linear16")
    noise = rng.normal(0, 3000, 24000).astype("<i2").tobytes()
    check("white noise", "", noise, 16000, "linear16")
    check("silence", "", bytes(32000), 16000, "linear16")

    print(f"{len(phrases)} phrases, one grammar of all of them; MIN_MARGIN = {MIN_MARGIN}")
    print(f"{'condition':34} {'right':>6} {'other':>6} {'none':>6}")
    for condition, tally in tallies.items():
        print(f"{condition:34} {tally.right:6} {tally.wrong:6} {tally.none:6}")
    every = [s for t in tallies.values() for s in t.seconds]
    heard = [m for t in tallies.values() for m in t.margins]
    false = [m for t in tallies.values() for m in t.false_margins]
    quantiles = statistics.quantiles(every, n=20)
    print(
        f"decode time per utterance: median {statistics.median(every) * 1000:.0f} ms, "
        f"p95 {quantiles[-1] * 1000:.0f} ms, max {max(every) * 1000:.0f} ms "
        f"({len(every)} decodes)"
    )
    if heard:
        low, middle = min(heard), statistics.median(heard)
        print(f"margins of phrases heard right: min {low:.3f}, median {middle:.3f}")
    longest = sorted(w for t in tallies.values() for w in t.longest_words)
    if longest:
        print(
            f"longest word of phrases heard right: median {statistics.median(longest):.2f} s, "
            f"p99 {longest[int(len(longest) * 0.99)]:.2f} s, max {longest[-1]:.2f} s; "
            f"MAX_WORD_SECONDS = {MAX_WORD_SECONDS}"
        )
    if false:
        print(f"margins of false matches: max {max(false):.3f} ({len(false)})")
    print(f"total {time.perf_counter() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phrases", type=int, default=len(PHRASES), help="how many phrases")
    parser.add_argument("--quick", action="store_true", help="two formats, not all eight")
    args = parser.parse_args()
    run(PHRASES[: args.phrases], args.quick)


if __name__ == "__main__":
    main()
