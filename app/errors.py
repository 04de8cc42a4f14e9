"""Exceptions chunksum raises: one base class, one subclass per condition a caller can act on."""


class ChunksumError(Exception):
    """Base class of every error chunksum raises on purpose."""


class SettingsError(ChunksumError, ValueError):
    """A setting (environment variable, URL or argument) has a value chunksum can't use."""


class ChunkingError(ChunksumError, ValueError):
    """``chunks``/``chunk_size`` are both given, not positive, or unusable for the input."""


class InvalidNumberError(ChunksumError, TypeError):
    """An input item is not an int or a float; carries its position in the input."""

    def __init__(self, message: str, *, position: int) -> None:
        super().__init__(message)
        self.position = position


class FileInputError(ChunksumError, ValueError):
    """A worker can't sum its range of a file: the file is gone, changed, or holds a line
    that is not a number (the message names the file and the line)."""


class PayloadError(ChunksumError, ValueError):
    """A chunk payload read from Redis is malformed; the worker refuses it."""


class RedisUnavailableError(ChunksumError, ConnectionError):
    """Redis can't be reached, or refused the credentials."""


class RedisOutOfMemoryError(RedisUnavailableError):
    """Redis refused a write for want of memory (``maxmemory`` reached under ``noeviction``);
    the run failed and what it had enqueued was removed."""


class EvictionPolicyError(ChunksumError):
    """Redis may evict any key under memory pressure (``maxmemory-policy allkeys-*``), a
    run's jobs and partials included; chunksum refuses to start unless allowed to."""


class RedisServerError(ChunksumError):
    """The private Redis server that chunksum starts itself failed to start."""


class RunNotFoundError(ChunksumError, LookupError):
    """No run with this id exists under this key prefix (or its record has expired)."""


class RunFailedError(ChunksumError):
    """A run failed: a chunk could not be summed, or the run was cancelled or abandoned."""

    def __init__(self, message: str, *, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class RunLostError(RunFailedError):
    """Redis no longer holds a run it held: evicted, or Redis restarted without persistence."""


class RunTimeoutError(RunFailedError, TimeoutError):
    """A run did not finish within its ``timeout``; it is marked failed and its jobs removed."""


class WaitTimeoutError(ChunksumError, TimeoutError):
    """`wait` gave up before the run ended; the run itself goes on."""


class RunNotDoneError(ChunksumError):
    """The run exists but has no total yet (it is queued or running)."""
