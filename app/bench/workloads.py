"""The workloads of `chunksum bench`: their numbers and exact totals, and how runs are timed.

Every workload's size is multiplied by ``--scale``; chunk counts stay as named (at most one
chunk per number). References are computed independently of chunksum: Python's ``sum`` of
ints, ``math.fsum`` of floats, or a closed form. The files of W5, W8, W8f and W9 are written
once per run, their references computed from the numbers written, not read back
(app.bench.datafiles).
"""

import asyncio
import itertools
import math
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from app.errors import ChunksumError
from app.heartbeat import BEAT_S

WORKLOADS = ("W1", "W1i", "W2", "W3", "W3list", "W4", "W5", "W6", "W7", "W8", "W8f", "W9")
SEED = 20_240_603
W3_SPAN = 2**40  # W3 values need int64 (not int32) yet sum far below 2**63
W4_EXPONENTS = 100  # W4 floats are normal(0, 1) * 2**e, e uniform in -100..100
W6_IO_S = 0.05
W1_RUNS = 20  # W1 submits per --repeat (see Workload.runs_per_repeat)
W1I_RUNS = 4  # W1i's, each after its idle time
W1I_IDLE_MAX_S = 0.5  # W1i: the workers idle a random 0 to this many seconds before each run
# W7's waits shrink only below this scale, so that quick runs still measure idle workers
W7_FULL_SCALE = 0.1
# whole heartbeats, whatever their phase: a window of 3 s saw one beat of each idle worker or
# two, and gave 3.0 or 5.0 commands/s for the same 4.0
W7_IDLE_WINDOW_S = 2 * BEAT_S
W7_GAP_S = 1.0
W7_SAMPLES = 10
WRITE_BLOCK = 10_000_000  # numbers per block written to a text file (W5, W8)
RUN_TIMEOUT_S = 300.0
T = TypeVar("T")

Values = range | list[int] | npt.NDArray[Any]


@dataclass(frozen=True, slots=True)
class Workload:
    """A sized workload: its numbers, how many chunks, and the exact total to expect."""

    name: str
    numbers: Values
    chunks: int
    expected: int | float
    # chunksum runs per --repeat: a run of a few milliseconds varies with whatever else the
    # machine is doing, so W1's median needs more of them than one per repeat
    runs_per_repeat: int = 1
    # before each run, the workers idle a random 0 to idle_max_s seconds (outside the timing;
    # the same sequence for every contender): a submit as users make them, now and then
    idle_max_s: float = 0.0

    @property
    def count(self) -> int:
        """Return how many numbers the workload sums."""
        return len(self.numbers)


@dataclass(frozen=True, slots=True)
class Timing:
    """Wall times of one contender's runs of one workload, and whether every result was right.

    Args:
        extra: further measurements, e.g. ``peak_rss_mb``; names carry units.
    """

    times_s: tuple[float, ...]
    correct: bool
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def median_s(self) -> float:
        """Return the median wall time."""
        return statistics.median(self.times_s)

    def to_json(self) -> dict[str, Any]:
        """Return every raw number, for ``--json``."""
        return {
            "times_s": list(self.times_s),
            "median_s": self.median_s,
            "min_s": min(self.times_s),
            "max_s": max(self.times_s),
            "correct": self.correct,
            **self.extra,
        }


def scaled(size: int, scale: float) -> int:
    """Return ``size`` times ``scale``, at least 1."""
    return max(1, round(size * scale))


def build(name: str, scale: float) -> Workload:
    """Build sized workload ``name`` (W1, W1i, W2, W3, W3list, W4 or W6) at ``scale``."""
    match name:
        case "W1":
            numbers: Values = range(1, scaled(10_000, scale) + 1)
            return replace(_sized("W1", numbers, 4, sum(numbers)), runs_per_repeat=W1_RUNS)
        case "W1i":
            after_idle = replace(build("W1", scale), name="W1i", runs_per_repeat=W1I_RUNS)
            return replace(after_idle, idle_max_s=W1I_IDLE_MAX_S)
        case "W2":
            numbers = range(1, scaled(1_000_000, scale) + 1)
            return _sized("W2", numbers, 1_000, sum(numbers))
        case "W3":
            ints = random_ints(scaled(10**7, scale))
            return _sized("W3", ints, 100, sum(ints.tolist()))
        case "W3list":  # W3's numbers as a user often holds them: packing them is the submit's
            w3 = build("W3", scale)
            return replace(w3, name="W3list", numbers=np.asarray(w3.numbers).tolist())
        case "W4":
            floats = random_floats(scaled(10**7, scale))
            return _sized("W4", floats, 100, math.fsum(floats.tolist()))
        case "W6":
            numbers = range(1, scaled(200, scale) + 1)  # one number per chunk
            return _sized("W6", numbers, len(numbers), sum(numbers))
    raise ChunksumError(
        f"no sized workload {name!r}; the sized ones are W1, W1i, W2, W3, W3list, W4 and W6"
    )


def random_ints(count: int) -> npt.NDArray[np.int64]:
    """Return ``count`` seeded int64s in [-2**40, 2**40): W3's numbers, and W8's."""
    return np.random.default_rng(SEED).integers(-W3_SPAN, W3_SPAN, count)


def random_floats(count: int) -> npt.NDArray[np.float64]:
    """Return ``count`` seeded float64s with exponents spread over -100..100."""
    rng = np.random.default_rng(SEED + 1)
    exponents = rng.integers(-W4_EXPONENTS, W4_EXPONENTS + 1, count)
    return np.ldexp(rng.standard_normal(count), exponents)


def write_lines(path: Path, numbers: Values) -> None:
    """Write ``numbers`` to ``path``, one per line, in blocks of WRITE_BLOCK (polars writes
    each: 100 M numbers take seconds, not the minutes of Python's ``str``)."""
    import polars as pl

    with path.open("wb") as file:
        for start in range(0, len(numbers), WRITE_BLOCK):
            block = numbers[start : start + WRITE_BLOCK]
            values = np.arange(block.start, block.stop) if isinstance(block, range) else block
            pl.DataFrame({"x": values}).write_csv(file, include_header=False)


def _sized(name: str, numbers: Values, chunks: int, expected: int | float) -> Workload:
    return Workload(name, numbers, min(chunks, len(numbers)), expected)


def bounds(count: int, chunks: int) -> list[tuple[int, int]]:
    """Return ``chunks`` balanced (start, stop) slices of ``count`` items."""
    edges = [count * i // chunks for i in range(chunks + 1)]
    return list(itertools.pairwise(edges))


def same(total: object, expected: object) -> bool:
    """Tell whether ``total`` is exactly ``expected``: same value and same type (int or float)."""
    return type(total) is type(expected) and total == expected


def idle_times(scale: float) -> tuple[float, float, int]:
    """Return W7's idle window (s), the idle gap before each latency probe (s), and probes."""
    factor = min(1.0, scale / W7_FULL_SCALE)
    samples = W7_SAMPLES if factor == 1.0 else 3
    return W7_IDLE_WINDOW_S * factor, W7_GAP_S * factor, samples


async def measure(
    run: Callable[[], Awaitable[object]],
    check: Callable[[object], bool],
    *,
    repeat: int,
    timeout_s: float = RUN_TIMEOUT_S,
    pause_s: float = 0.0,
    idle_max_s: float = 0.0,
    after: Callable[[], Awaitable[None]] | None = None,
) -> Timing:
    """Time ``repeat`` runs, checking each result; raise ChunksumError if one takes too long.

    Args:
        pause_s: idle time before each run, outside the timing (latency after idleness).
        idle_max_s: and a random 0 to this many seconds more (seeded: the same for everyone).
        after: called after each run, outside the timing (clean-up).
    """
    times: list[float] = []
    correct = True
    idle = random.Random(SEED)
    for _ in range(repeat):
        if pause_s or idle_max_s:
            # the idleness being measured, not a synchronisation
            await asyncio.sleep(pause_s + idle.uniform(0, idle_max_s))
        started = time.perf_counter()
        result = await bounded(run(), timeout_s)
        times.append(time.perf_counter() - started)
        correct = check(result) and correct
        if after is not None:
            await after()
    return Timing(tuple(times), correct)


async def bounded(awaitable: Awaitable[T], timeout_s: float) -> T:
    """Await ``awaitable``; raise ChunksumError if it takes longer than ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            return await awaitable
    except TimeoutError as exc:
        raise ChunksumError(
            f"a benchmark step took over {timeout_s:g} s; are the worker processes running? "
            "Try a smaller --scale"
        ) from exc


def command_calls(commandstats: dict[str, Any]) -> dict[str, int]:
    """Return calls per command (``zrangebyscore``) from redis-py's ``INFO commandstats``."""
    return {
        name.removeprefix("cmdstat_"): int(stats["calls"]) for name, stats in commandstats.items()
    }


async def idle_commands_per_s(
    redis: Any, window_s: float, workers: int, *, settle_s: float
) -> dict[str, float]:
    """Count the Redis commands per second that ``workers`` idle workers send over a window.

    The window starts ``settle_s`` after the last job, so that workers finishing their
    bookkeeping don't count. The bench's own INFO calls are left out; other clients of
    the Redis count too. Besides the total per worker, ``idle_calls.<command>`` holds each
    command's calls in the window.
    """
    await asyncio.sleep(settle_s)  # let the previous workload's tail pass
    before = command_calls(await redis.info("commandstats"))
    await asyncio.sleep(window_s)  # the idle window being measured
    after = command_calls(await redis.info("commandstats"))
    calls = {
        name: count - before.get(name, 0)
        for name, count in after.items()
        if name != "info" and count > before.get(name, 0)
    }
    return {
        "idle_window_s": window_s,
        "idle_commands_per_s_per_worker": sum(calls.values()) / window_s / workers,
        **{f"idle_calls.{name}": count for name, count in sorted(calls.items())},
    }
