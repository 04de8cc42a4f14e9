"""The file jobs: sum a byte range of a text file (a local path or a URL) or a slice of a
``.npy`` array that the worker reads itself, or a block of lines the submitter shipped;
record the partial."""

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

from app import codec
from app.arrays import sum_slice
from app.csvfiles import sum_csv_block
from app.csvfiles import sum_csv_range as sum_csv_range_of
from app.errors import FileInputError, PayloadError
from app.exact import ExactSum
from app.files import FileStamp, sum_block, sum_range
from app.parquet import sum_row_group
from app.remote import ObjectStamp
from app.remote import sum_url_range as sum_url_range_of
from app.runs import RunStore
from jobs.chunks import RUNS, attempt, fail, record, retry_or_fail

Summed = tuple[ExactSum, int]  # a chunk's exact sum, and how many numbers it held


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
    decimal: bool = False,
) -> bool:
    """Sum the lines that start in ``[offset, offset + length)`` of the text file at
    ``path``, as app.files reads them (as decimals, if ``decimal``); return False if the
    run already had this chunk."""
    summing = functools.partial(sum_range, stamp=FileStamp(size, mtime_ns), decimal=decimal)
    return await _sum_in_thread(ctx, run_id, index, summing, path, offset, length)


async def sum_url_range(
    ctx: dict[str, Any],
    *,
    run_id: str,
    index: int,
    url: str,
    offset: int,
    length: int,
    size: int,
    etag: str | None,
    mtime: str | None,
    decimal: bool = False,
) -> bool:
    """Sum the lines that start in ``[offset, offset + length)`` of the text object at
    ``url`` (``s3://...``), read through fsspec as app.remote reads it (as decimals, if
    ``decimal``); return False if the run already had this chunk."""
    summing = functools.partial(
        sum_url_range_of, stamp=ObjectStamp(size, etag, mtime), decimal=decimal
    )
    return await _sum_in_thread(ctx, run_id, index, summing, url, offset, length)


async def sum_text(
    ctx: dict[str, Any],
    *,
    run_id: str,
    index: int,
    text: object,
    first_line: int,
    source: str,
    decimal: bool = False,
) -> bool:
    """Sum a block of whole lines of ``source`` whose first is line ``first_line`` (the
    submitter read them, unparsed; as decimals, if ``decimal``); return False if the run
    already had this chunk."""
    block = _raw_block(text, first_line, run_id)
    summing = functools.partial(sum_block, decimal=decimal)
    return await _sum_in_thread(ctx, run_id, index, summing, block, source, lambda: first_line)


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
    data from ``offset``); return False if the run already had this chunk."""
    stamp = FileStamp(size, mtime_ns)
    return await _sum_in_thread(
        ctx, run_id, index, sum_slice, path, dtype, offset, start, stop, stamp
    )


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
    """Sum row group ``group`` of ``column`` of the Parquet file at ``path``; return False
    if the run already had this chunk."""
    stamp = FileStamp(size, mtime_ns)
    return await _sum_in_thread(ctx, run_id, index, sum_row_group, path, column, group, stamp)


async def sum_csv_range(
    ctx: dict[str, Any],
    *,
    run_id: str,
    index: int,
    path: str,
    offset: int,
    length: int,
    size: int,
    mtime_ns: int,
    column: int,
    delimiter: str,
    header: bool,
    decimal: bool = False,
) -> bool:
    """Sum column ``column`` of the CSV rows that start in ``[offset, offset + length)`` of
    the file at ``path`` (as decimals, if ``decimal``); return False if the run already had
    this chunk."""
    stamp = FileStamp(size, mtime_ns)
    summing = functools.partial(
        sum_csv_range_of, column=column, delimiter=delimiter, header=header, decimal=decimal
    )
    return await _sum_in_thread(ctx, run_id, index, summing, path, offset, length, stamp)


async def sum_csv_text(
    ctx: dict[str, Any],
    *,
    run_id: str,
    index: int,
    text: object,
    first_line: int,
    source: str,
    column: int,
    delimiter: str,
    decimal: bool = False,
) -> bool:
    """Sum column ``column`` of a block of whole CSV rows of ``source`` whose first is line
    ``first_line`` (the submitter read them, unparsed); return False if the run already had
    this chunk."""
    block = _raw_block(text, first_line, run_id)
    summing = functools.partial(sum_csv_block, decimal=decimal)
    return await _sum_in_thread(
        ctx, run_id, index, summing, block, source, lambda: first_line, column, delimiter
    )


def _raw_block(text: object, first_line: object, run_id: str) -> bytes:
    """Return a block of raw text as shipped (msgpack bytes, never unpickled), or raise
    PayloadError if it or its first line's number is malformed."""
    block = text.data if isinstance(text, codec.Packed) else text
    if not isinstance(block, bytes) or not isinstance(first_line, int):
        raise PayloadError(f"a malformed block of raw text in run {run_id!r}")
    return block


async def _sum_in_thread(
    ctx: dict[str, Any], run_id: str, index: int, sums: Callable[..., Summed], *args: Any
) -> bool:
    """Run ``sums(*args)`` in a thread (reading and parsing megabytes would stall the
    worker's other jobs) and record what it summed.

    A file gone, changed since it was submitted, or holding a line that is not a number
    fails the run, naming the file (and the line): trying again would fail the same way.
    Anything else is retried, as sum_chunk retries.
    """
    started = time.perf_counter()
    runs: RunStore = ctx[RUNS]
    try:
        partial, count = await asyncio.to_thread(sums, *args)
    except FileInputError as exc:
        await fail(runs, run_id, index, str(exc), attempt(ctx, time.perf_counter() - started))
        raise
    except Exception as exc:
        await retry_or_fail(runs, run_id, index, attempt(ctx, time.perf_counter() - started), exc)
        raise
    return await record(ctx, run_id, index, partial, count, started)
