"""Local worker processes: what `chunksum run --workers N` starts and stops around a run."""

import os
import subprocess
import sys
from types import TracebackType
from typing import Self

from app.settings import Settings

STOP_TIMEOUT_S = 10.0


class WorkerProcesses:
    """Run ``count`` ``chunksum worker`` processes against ``settings``' Redis until exit."""

    def __init__(self, count: int, settings: Settings) -> None:
        self.count = count
        self.settings = settings
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        """Start the processes; they connect (with retries) and wait for jobs."""
        env = {**os.environ, **self.settings.to_env()}
        command = [sys.executable, "-m", "app.cli", "worker", "--log-level", "warning"]
        for _ in range(self.count):
            self.processes.append(subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL))

    def stop(self) -> None:
        """Ask every process to stop (SIGTERM: arq finishes its jobs), then kill stragglers."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
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
