"""W5 of `chunksum bench`: sum 1..N from a generator or a text file, in a child process.

Three sources, each a row: a generator (the numbers stream through the submitter and
Redis), the file by reference (``TextFile(path)``: the workers read byte ranges of it) and
the file as raw bytes (``TextFile(path, shared=False)``: the submitter reads blocks of
whole lines and ships them through Redis, unparsed). The file is written once per bench
run, in a temporary directory removed after W5.

The submit runs in a child process, so that its peak RSS is the submitter's alone (the
child reports its own; see :func:`_peak_rss_mb`). Meanwhile the bench samples Redis
``used_memory`` to find how much the run made Redis grow.
"""

import asyncio
import contextlib
import enum
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.bench.workloads import RUN_TIMEOUT_S, Timing, scaled, write_lines
from app.errors import ChunksumError
from app.files import TextFile
from app.settings import Settings
from app.submit import Client, submit

CHILD_CODE = "from app.bench.stream import child_main; child_main()"
CHILD_TIMEOUT_S = 900.0
SAMPLE_S = 0.02  # Redis memory sampling interval while the child runs
SETTLE_S = 5.0  # longest wait for Redis's memory to settle before a run
SETTLE_STEP_S = 0.2
SETTLED_BYTES = 64 * 1024  # a fall smaller than this over a step: settled
W5_COUNT = 100_000_000
MB = 1 << 20
KB = 1 << 10


class Source(enum.StrEnum):
    """Where W5's child submitter takes 1..N from."""

    GENERATOR = "generator"
    REFERENCE = "reference"  # the file, which the workers read (TextFile(path))
    RAW = "raw"  # the file, read here and shipped (TextFile(path, shared=False))


ROWS = {
    Source.GENERATOR: "W5 generator",
    Source.REFERENCE: "W5 file",
    Source.RAW: "W5 file raw bytes",
}
# runs per source, at most: a generator's run takes seconds to minutes at full scale
MAX_REPEAT = {Source.GENERATOR: 1, Source.REFERENCE: 5, Source.RAW: 3}


def write_numbers(path: Path, count: int) -> None:
    """Write the integers 1..count to ``path``, one per line."""
    write_lines(path, range(1, count + 1))


def child_main() -> None:
    """Submit 1..COUNT as SOURCE says: from a generator, or from the file at PATH by
    reference or as raw bytes; print JSON.

    The child's command line is ``python -c CHILD_CODE COUNT SOURCE [PATH]``, SOURCE a
    :class:`Source`.
    """
    count, source = int(sys.argv[1]), Source(sys.argv[2])
    settings = Settings.from_env()
    numbers: Any = (i for i in range(1, count + 1))
    if source != Source.GENERATOR:
        numbers = TextFile(sys.argv[3], shared=source == Source.REFERENCE)
    result = asyncio.run(submit(numbers, settings=settings, timeout=CHILD_TIMEOUT_S))
    fields = {"total": result.total, "count": result.count, "elapsed_s": result.elapsed_s}
    print(json.dumps({**fields, "peak_rss_mb": _peak_rss_mb()}))


async def measure_streams(
    client: Client, settings: Settings, *, scale: float, repeat: int, note: Callable[[str], None]
) -> dict[str, dict[str, Timing]]:
    """Time W5's three sources at ``scale``, each up to ``repeat`` times; return their rows."""
    count = scaled(W5_COUNT, scale)
    note(f"W5 chunksum: {count:,} numbers from a generator")
    generator = min(repeat, MAX_REPEAT[Source.GENERATOR])
    timing = await measure_stream(client.redis, settings, count=count, repeat=generator)
    rows = {ROWS[Source.GENERATOR]: {"chunksum": timing}}
    with tempfile.TemporaryDirectory(prefix="chunksum-bench-") as directory:
        path = Path(directory) / "numbers.txt"
        note(f"W5: writing {count:,} numbers to {path}")
        await asyncio.to_thread(write_numbers, path, count)
        size_mb = path.stat().st_size / 1e6
        await client.submit(TextFile(str(path)), chunks=2, timeout=RUN_TIMEOUT_S)  # warm-up
        for source in (Source.REFERENCE, Source.RAW):
            note(f"W5 chunksum: {count:,} numbers from a {size_mb:,.0f} MB file, {source}")
            runs = min(repeat, MAX_REPEAT[source])
            timing = await measure_stream(
                client.redis, settings, count=count, repeat=runs, source=source, path=path
            )
            rows[ROWS[source]] = {"chunksum": timing}
    return rows


def _peak_rss_mb() -> float:
    """Return this process's peak RSS in MB, from VmHWM (NaN where /proc is missing).

    Not ``ru_maxrss`` (from ``getrusage`` or ``os.wait4``): Linux carries it over from
    the parent that spawned the process, so the child would report the bench's own peak.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * KB / MB
    return math.nan


async def measure_stream(
    redis: Any,
    settings: Settings,
    *,
    count: int,
    repeat: int,
    source: Source = Source.GENERATOR,
    path: Path | None = None,
) -> Timing:
    """Time ``repeat`` child submits of 1..count; add numbers/s, peak RSS and Redis growth.

    Args:
        path: for a file source, a file holding 1..count, one per line (see
            :func:`write_numbers`).
    """
    times: list[float] = []
    correct = True
    rss_mb = growth_mb = 0.0
    for _ in range(repeat):
        output, run_growth_mb = await _run_child(redis, settings, count, source, path)
        times.append(output["elapsed_s"])
        correct = (
            output["total"] == count * (count + 1) // 2 and output["count"] == count and correct
        )
        rss_mb, growth_mb = max(rss_mb, output["peak_rss_mb"]), max(growth_mb, run_growth_mb)
    extra = {
        "numbers": count,
        "numbers_per_s": count / statistics.median(times),
        "peak_rss_mb": rss_mb,
        "redis_growth_mb": growth_mb,
    }
    return Timing(tuple(times), correct, extra)


async def _run_child(
    redis: Any, settings: Settings, count: int, source: Source, path: Path | None
) -> tuple[dict[str, Any], float]:
    """Run one child submit; return its output and how much Redis grew meanwhile (MB)."""
    before = await _settled_used_memory(redis)
    process = _spawn(settings, count, source, path)
    exited = asyncio.ensure_future(asyncio.to_thread(process.wait))
    try:
        peak = await _sample_until(redis, exited, before)
    finally:
        if not exited.done():  # failed or interrupted: don't leave the child running
            process.kill()
            await asyncio.wait({exited}, timeout=RUN_TIMEOUT_S)
    return _child_output(process), (peak - before) / MB


def _spawn(
    settings: Settings, count: int, source: Source, path: Path | None
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", CHILD_CODE, str(count), source.value]
    if path is not None:
        command.append(str(path))
    env = {**os.environ, **settings.to_env()}
    return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)


async def _sample_until(redis: Any, done: "asyncio.Future[Any]", before: int) -> int:
    """Sample Redis ``used_memory`` until ``done``; return the largest value seen."""
    peak = before
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while not done.done():
        if time.monotonic() > deadline:
            raise ChunksumError(
                f"the W5 submitter ran over {CHILD_TIMEOUT_S:g} s; try a smaller --scale"
            )
        peak = max(peak, await _used_memory(redis))
        await asyncio.wait({done}, timeout=SAMPLE_S)
    return peak


async def _settled_used_memory(redis: Any) -> int:
    """Return ``used_memory`` once it stops falling (for at most SETTLE_S).

    After a big workload Redis frees its clients' grown buffers over the next moments; a
    baseline taken before that would hide the next run's growth.
    """
    deadline = time.monotonic() + SETTLE_S
    last = await _used_memory(redis)
    while time.monotonic() < deadline:
        await asyncio.sleep(SETTLE_STEP_S)  # sampling Redis, which has no event for this
        now = await _used_memory(redis)
        if now >= last - SETTLED_BYTES:
            return now
        last = now
    return last


async def _used_memory(redis: Any) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


def _child_output(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    assert process.stdout is not None
    with process.stdout:
        text = process.stdout.read().decode()
    if process.returncode != 0:
        raise ChunksumError(
            f"the W5 submitter exited with status {process.returncode} (its error is above)"
        )
    output: dict[str, Any] = json.loads(text)
    return output
