"""Chaos: workers SIGKILLed and restarted all through 1,000-chunk runs; every total exact."""

import asyncio
import contextlib
import os
import random
import signal
from dataclasses import dataclass, field, replace

import pytest
from arq.connections import ArqRedis

from app.bench.slow_chunks import submit_slow
from app.settings import Settings
from app.submit import Client
from tests.harness import ROOT, process_env, read_hash, worker_command

WORKERS = 3
RUNS = int(os.environ.get("CHUNKSUM_CHAOS_RUNS", "3"))  # more for a longer soak
CHUNKS = 1_000
NUMBERS = range(-50_000, 250_000)
KILL_EVERY_S = 0.25
CHUNK_IO_S = 0.02  # each chunk waits this long, so that a run outlasts several kills
RUN_TIMEOUT_S = 60.0


@dataclass
class Chaos:
    """Worker processes, one of which is SIGKILLed and replaced every KILL_EVERY_S."""

    settings: Settings
    rng: random.Random
    kills: int = 0
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def start(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *worker_command(), env=process_env(self.settings), cwd=ROOT
        )

    async def run(self) -> None:
        """Kill and replace a random worker, again and again, until cancelled."""
        self.processes = [await self.start() for _ in range(WORKERS)]
        while True:
            await asyncio.sleep(KILL_EVERY_S)  # the fault's rhythm, not a synchronisation
            victim = self.rng.randrange(WORKERS)
            self.processes[victim].send_signal(signal.SIGKILL)
            await self.processes[victim].wait()
            self.kills += 1
            self.processes[victim] = await self.start()

    async def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):  # already gone
                process.send_signal(signal.SIGKILL)
            await process.wait()


@pytest.mark.timeout(RUNS * RUN_TIMEOUT_S + 30)
async def test_runs_stay_exact_while_workers_are_killed(
    settings: Settings, redis: ArqRedis
) -> None:
    """Three workers, one SIGKILLed and restarted every 0.25 s through three 1,000-chunk runs:
    every run finishes (none hangs) with the exact total, each chunk counted once."""
    settings = replace(settings, lease_s=1.0, worker_max_jobs=4)
    chaos = Chaos(settings, random.Random(20261127))
    killing = asyncio.create_task(chaos.run())
    try:
        async with Client(settings) as client:
            for _ in range(RUNS):
                kills_before = chaos.kills
                result = await submit_slow(
                    client, NUMBERS, chunks=CHUNKS, timeout=RUN_TIMEOUT_S, io_s=CHUNK_IO_S
                )
                assert result.total == sum(NUMBERS)
                stored = await read_hash(redis, client.keys.run(result.run_id))
                assert stored[b"done_chunks"] == str(CHUNKS).encode()
                kills = chaos.kills - kills_before
                assert kills >= 3, "the run ended before the chaos began"
                print(f"chaos run: {kills} kills, {result.elapsed_s:.2f} s, total exact")
    finally:
        killing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await killing
        await chaos.stop()
