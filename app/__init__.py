"""chunksum: exact, distributed sums on arq workers, with totals stored in Redis."""

from app.allocator import tune_allocator
from app.arrays import NpyFile
from app.csvfiles import CsvColumn
from app.errors import (
    ChunkingError,
    ChunksumError,
    EvictionPolicyError,
    InvalidNumberError,
    RedisOutOfMemoryError,
    RedisUnavailableError,
    RunFailedError,
    RunLostError,
    RunNotDoneError,
    RunNotFoundError,
    RunTimeoutError,
    SettingsError,
    WaitTimeoutError,
)
from app.files import TextFile
from app.parquet import ParquetColumn
from app.run_status import RunStatus, Status
from app.settings import Settings
from app.submit import Client, RunResult, submit, submit_sync
from app.text_blocks import TextStream

__all__ = [
    "ChunkingError",
    "ChunksumError",
    "Client",
    "CsvColumn",
    "EvictionPolicyError",
    "InvalidNumberError",
    "NpyFile",
    "ParquetColumn",
    "RedisOutOfMemoryError",
    "RedisUnavailableError",
    "RunFailedError",
    "RunLostError",
    "RunNotDoneError",
    "RunNotFoundError",
    "RunResult",
    "RunStatus",
    "RunTimeoutError",
    "Settings",
    "SettingsError",
    "Status",
    "TextFile",
    "TextStream",
    "WaitTimeoutError",
    "submit",
    "submit_sync",
    "tune_allocator",
]
