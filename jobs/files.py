"""The file jobs: sum a byte range of a text file or a slice of a ``.npy`` array that the
worker reads itself, or a block of lines the submitter shipped; record the partial."""

import asyncio
import time
from typing import Any

from app import codec
from app.arrays import sum_slice
from app.errors import FileInputError, PayloadError
from app.files import FileStamp, sum_block, sum_range
from app.parquet import sum_row_group
from app.runs import RunStore
from jobs.chunks import RUNS, fail, record, retry_or_fail


async def sum_file_range(
    ctx: dict[str, Any],
    *,
    run_id: str,
    index: int,
    path: str,
    offset: int,
    length: int,
    size: int,
    mtime_ns: int,
) -> bool:
    """Sum the lines that start in ``[offset, offset + length)`` of the file at ``path``, as
    app.files reads them; return False if the run already had this chunk.

    A file that is gone, changed since it was submitted (``size``, ``mtime_ns``) or holds a
    line that is not a number fails the run, naming the file (and the line): trying again
    would fail the same way.
    """
    started = time.perf_counter()
    runs: RunStore = ctx[RUNS]
    if not isinstance(path, str) or not all(
        isinstance(value, int) for value in (index, offset, length, size, mtime_ns)
    ):
        raise PayloadError(f"sum_file_range got a malformed range of run {run_id!r}")
    try:  # in a thread: reading and parsing megabytes would stall the worker's other jobs
        partial, count = await asyncio.to_thread(
            sum_range, path, offset, length, FileStamp(size, mtime_ns)
        )
    except FileInputError as exc:
        await fail(runs, run_id, index, str(exc))
        raise
    except Exception as exc:
        await retry_or_fail(runs, run_id, index, ctx.get("job_try", 1), exc)
        raise
    return await record(ctx, run_id, index, partial, count, started)


async def sum_text(
    ctx: dict[str, Any], *, run_id: str, index: int, text: object, first_line: int, source: str
) -> bool:
    """Sum a block of whole lines of ``source`` whose first is line ``first_line`` (the
    submitter read them, unparsed); return False if the run already had this chunk.

    A line that is not a number fails the run, naming ``source`` and the line's number.
    """
    started = time.perf_counter()
    runs: RunStore = ctx[RUNS]
    block = text.data if isinstance(text, codec.Packed) else text
    if not isinstance(block, bytes) or not isinstance(first_line, int):
        raise PayloadError(f"sum_text got a malformed block of run {run_id!r}")
    try:
        partial, count = await asyncio.to_thread(sum_block, block, source, lambda: first_line)
    except FileInputError as exc:
        await fail(runs, run_id, index, str(exc))
        raise
    return await record(ctx, run_id, index, partial, count, started)


async def sum_npy_slice(
    ctx: dict[str, Any],
    *,
    run_id: str,
    index: int,
    path: str,
    dtype: str,
    offset: int,
    start: int,
    stop: int,
    size: int,
    mtime_ns: int,
) -> bool:
    """Sum elements ``[start, stop)`` of the ``.npy`` array at ``path`` (of ``dtype``, its
    data from ``offset``); a file gone or changed fails the run."""
    started = time.perf_counter()
    runs: RunStore = ctx[RUNS]
    stamp = FileStamp(size, mtime_ns)
    try:
        partial, count = await asyncio.to_thread(sum_slice, path, dtype, offset, start, stop, stamp)
    except FileInputError as exc:
        await fail(runs, run_id, index, str(exc))
        raise
    return await record(ctx, run_id, index, partial, count, started)


async def sum_parquet_row_group(
    ctx: dict[str, Any],
    *,
    run_id: str,
    index: int,
    path: str,
    column: str,
    group: int,
    size: int,
    mtime_ns: int,
) -> bool:
    """Sum row group ``group`` of ``column`` of the Parquet file at ``path``; a file gone or
    changed fails the run."""
    started = time.perf_counter()
    runs: RunStore = ctx[RUNS]
    stamp = FileStamp(size, mtime_ns)
    try:
        partial, count = await asyncio.to_thread(sum_row_group, path, column, group, stamp)
    except FileInputError as exc:
        await fail(runs, run_id, index, str(exc))
        raise
    return await record(ctx, run_id, index, partial, count, started)
