"""How long the mock's event loop stalls while it hears a long turn.

    .venv/bin/python benchmarks/recognition_stall.py [--repeat N]

The mock awaits `recognise_async` for every spoken turn, on the event loop that serves
every connection of a test (and the proxy, when it runs in the same process). A 10 ms
ticker task runs on that loop while a ~30 s utterance (espeak-ng, 24 kHz, as the mock
receives a turn) is decoded: its worst lateness is the longest stall, next to the
decode's own wall time. Then the cost of a decode's trip to wherever it runs: a short
phrase decoded by `recognise` (the harness's path) against `recognition_of` (decoded in
this thread), median of many; the long turn's bytes carried to the worker and back alone;
and whether both ways heard the same.

(The monologue is none of the phrases and is heard as nothing; before
`recognition.MAX_WORD_SECONDS` it was heard as "what time is it", one word stretched over
25 s. What was heard is printed, not what is measured here.)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import recognition_worker
from harness.recognition import recognise, recognise_async, recognition_of, require_recognition
from harness.speech import speech_pcm16

RATE = 24_000  # what the mock receives
TICK_S = 0.01
PHRASES = ("what time is it", "tell me a joke", "book a table for two", "turn off the lights")
#: About 30 s when espeak-ng says it: a long turn that is none of the phrases.
MONOLOGUE = (
    "the quick brown fox jumps over the lazy dog while the farmer walks to the market "
    "to sell his apples and pears, and the children play in the garden near the old oak "
    "tree where the birds sing every morning before the sun rises over the hills. "
    "The river flows quietly past the village where everyone knows each other by name, "
    "and the baker opens his shop early to bake fresh bread for the whole town. "
    "In the evening the fishermen come home with their boats full of fish, and the "
    "families gather around the table to share a meal and talk about the day."
)


def long_turn() -> bytes:
    return speech_pcm16(MONOLOGUE, rate=RATE)


async def stall_while_decoding(audio: bytes) -> tuple[float, float, str]:
    """(decode seconds, the loop's longest stall in seconds, what was heard)."""
    worst = 0.0
    decoding = True

    async def tick() -> None:
        nonlocal worst
        while decoding:
            before = time.perf_counter()
            await asyncio.sleep(TICK_S)
            worst = max(worst, time.perf_counter() - before - TICK_S)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(5 * TICK_S)  # the ticker is running
    worst = 0.0
    started = time.perf_counter()
    heard = await recognise_async(audio, PHRASES, rate=RATE)
    seconds = time.perf_counter() - started
    decoding = False
    await ticker
    return seconds, worst, heard


def median_ms(call: object, times: int) -> float:
    assert callable(call)
    taken = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        taken.append(time.perf_counter() - started)
    return statistics.median(taken) * 1000


async def run(repeat: int) -> None:
    require_recognition()
    audio = long_turn()
    short = speech_pcm16(PHRASES[0], rate=RATE)
    started = time.perf_counter()
    first = await recognise_async(short, PHRASES, rate=RATE)  # starts what decodes
    print(f"first decode (starting up): {(time.perf_counter() - started) * 1000:.0f} ms")
    print(f"long turn: {len(audio) / (2 * RATE):.1f} s of audio at {RATE} Hz")
    stalls = []
    for _ in range(repeat):
        seconds, worst, heard = await stall_while_decoding(audio)
        stalls.append(worst)
        print(
            f"  decode {seconds * 1000:5.0f} ms, loop's longest stall {worst * 1000:5.0f} ms "
            f"(heard {heard!r})"
        )
    print(f"longest stall, median of {repeat}: {statistics.median(stalls) * 1000:.0f} ms")

    here = median_ms(lambda: recognition_of(short, PHRASES, rate=RATE), 20)
    there = median_ms(lambda: recognise(short, PHRASES, rate=RATE), 20)
    print(
        f"short phrase, median of 20: recognition_of {here:.1f} ms, recognise {there:.1f} ms "
        f"(the trip: {there - here:+.1f} ms)"
    )
    carried = median_ms(lambda: recognition_worker.call(len, audio), 20)
    print(f"the long turn's bytes to the worker and back, median of 20: {carried:.1f} ms")
    same = all(
        recognise(pcm, PHRASES, rate=RATE) == recognition_of(pcm, PHRASES, rate=RATE).phrase
        for pcm in (short, audio, speech_pcm16(PHRASES[2], rate=RATE))
    )
    print(f"same phrases heard both ways: {same} (first heard {first!r})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="long decodes to time")
    args = parser.parse_args()
    asyncio.run(run(args.repeat))


if __name__ == "__main__":
    main()
