"""Local worker processes: what `chunksum run --workers N` (and the bench) start and stop."""

import os
import subprocess
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import IO, Self

from app.settings import Settings

STOP_TIMEOUT_S = 10.0
WORKER_COMMAND = (sys.executable, "-m", "app.cli", "worker", "--log-level", "warning")


class WorkerProcesses:
    """Run ``count`` worker processes against ``settings``' Redis until exit.

    Args:
        command: the worker command line; default ``chunksum worker``.
        output: where the workers' stdout and stderr go; default inherited.
    """

    def __init__(
        self,
        count: int,
        settings: Settings,
        *,
        command: Sequence[str] = WORKER_COMMAND,
        output: IO[bytes] | None = None,
    ) -> None:
        self.count = count
        self.settings = settings
        self.command = list(command)
        self.output = output
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        """Start the processes; they connect (with retries) and wait for jobs."""
        env = {**os.environ, **self.settings.to_env()}
        stderr = None if self.output is None else subprocess.STDOUT
        for _ in range(self.count):
            self.processes.append(
                subprocess.Popen(
                    self.command,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=self.output,
                    stderr=stderr,
                )
            )

    def stop(self) -> None:
        """Ask every process to stop (SIGTERM: arq finishes its jobs), then kill stragglers."""
        stop_processes(self.processes)
        self.processes.clear()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def stop_processes(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """Terminate processes, then kill those still running after STOP_TIMEOUT_S."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
