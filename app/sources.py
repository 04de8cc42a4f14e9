"""What a submission's chunks come from, and the arq job that sums each.

* numbers in memory or streamed (lists, ranges, arrays, generators): each chunk's numbers
  travel packed (app.codec) to ``sum_chunk``;
* a :class:`~app.files.TextFile` the workers see: each chunk is a byte range they read
  themselves (``sum_file_range``); no number passes through the submitter or Redis;
* a :class:`~app.files.TextFile` named by URL (``s3://...``): byte ranges, as for a file
  the workers see, which they read through fsspec (``sum_url_range``, app.remote);
* a :class:`~app.arrays.NpyFile` the workers see: each chunk is a slice of the array,
  which they memory-map (``sum_npy_slice``);
* a :class:`~app.csvfiles.CsvColumn` the workers see: byte ranges, as for text files
  (``sum_csv_range``); one they can't see: raw blocks of rows, as for text
  (``sum_csv_text``), cut only where no quoted field is open;
* a :class:`~app.parquet.ParquetColumn` the workers see: each chunk is a row group of the
  column (``sum_parquet_row_group``);
* text the workers can't see (:class:`~app.text_blocks.TextStream`: a pipe, stdin, a file with
  ``shared=False``): the submitter reads blocks of whole lines without parsing them and
  ships the raw bytes (``sum_text``); the workers parse. At most ``TEXT_IN_FLIGHT_BYTES`` of
  it are queued or running at once, which bounds Redis's growth.

The workers count the numbers of a file or a text themselves; a submitter counts its own.
"""

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from app import codec
from app.arrays import NpyFile
from app.chunking import Numbers, plan
from app.csvfiles import CsvColumn
from app.errors import ChunkingError
from app.files import TextFile, plan_ranges, range_job
from app.keys import (
    SUM_CSV_JOB,
    SUM_CSV_TEXT_JOB,
    SUM_NPY_JOB,
    SUM_PARQUET_JOB,
    SUM_RANGE_JOB,
    SUM_TEXT_JOB,
)
from app.parquet import ParquetColumn
from app.queue import ChunkJob
from app.remote import is_url, stamp_url, url_job
from app.settings import Settings
from app.text_blocks import TextStream, text_blocks

# Raw text queued or running at once, across its chunks. Redis holds more than this while
# it runs: the records of chunks just finished until their worker's arq deletes them, and
# the client buffers of blocks on their way in and out (`chunksum bench`, W5 file raw bytes:
# 64 MiB and 4 MiB blocks grew Redis by 64-76 MiB; 32 MiB and 2 MiB blocks, by 32-54 MiB).
TEXT_IN_FLIGHT_BYTES = 32 << 20
TEXT_BLOCK_BYTES = 2 << 20  # raw text per chunk, at most (a longer line makes a longer one)


@dataclass(frozen=True, slots=True)
class ChunkArgs:
    """One chunk as its job gets it: its index, its own job arguments, and how many numbers
    it holds (0 where the workers count them)."""

    index: int
    args: dict[str, Any]
    count: int = 0


@dataclass(frozen=True, slots=True)
class Source:
    """A submission's chunks, planned but not yet read."""

    chunks: int | None  # None while a stream's length is unknown
    items: Iterator[ChunkArgs]
    job: ChunkJob
    counted_by_workers: bool = False
    max_in_flight: int | None = None  # tighter than the settings' (raw text: bytes)


FileInput = TextFile | TextStream | NpyFile | ParquetColumn | CsvColumn
Input = Numbers | FileInput
"""Anything :func:`app.submit.submit` sums."""


def plan_source(
    numbers: Input,
    *,
    chunks: int | None,
    chunk_size: int | None,
    settings: Settings,
    job: ChunkJob | None = None,
    decimal: bool = False,
) -> Source:
    """Plan the chunks of ``numbers``; raise ChunkingError or SettingsError before any
    is read.

    Args:
        job: the job that sums numbers in memory (default ``sum_chunk``; the bench's differs).
        decimal: sum text as exact decimals (app.decimals); only text has decimals' digits.
    """
    text_options = {"decimal": True} if decimal else {}  # the jobs' default: False
    if decimal and not isinstance(numbers, TextFile | TextStream | CsvColumn):
        raise ChunkingError(
            "decimal=True sums decimal text exactly: give a text file, a stream or a CSV "
            f"column, not {type(numbers).__name__} (whose numbers are binary already; a "
            "Parquet decimal column is summed as decimals without it)"
        )
    if isinstance(numbers, FileInput):
        _no_chunk_size(chunk_size, _cut_into(numbers))
        return _file_source(numbers, chunks, settings.chunk_bytes, text_options)
    planned = plan(numbers, chunks=chunks, chunk_size=chunk_size, default_size=settings.chunk_size)
    items = (
        ChunkArgs(c.index, {"parts": codec.encode_chunk(c.values, c.offset)}, len(c.values))
        for c in planned.items
    )
    return Source(planned.chunks, items, job or ChunkJob())


def _file_source(
    numbers: FileInput, chunks: int | None, chunk_bytes: int, options: dict[str, Any]
) -> Source:
    if isinstance(numbers, TextFile) and is_url(numbers.path):  # always by reference
        return _url_source(numbers.path, chunks, chunk_bytes, options)
    if isinstance(numbers, TextFile) and numbers.shared:
        stamp = numbers.stamp()
        ranges = plan_ranges(stamp.size, chunks=chunks, chunk_bytes=chunk_bytes)
        items = (ChunkArgs(r.index, {"offset": r.offset, "length": r.length}) for r in ranges)
        job = ChunkJob(SUM_RANGE_JOB, {**range_job(numbers.path, stamp), **options})
        return Source(len(ranges), items, job, counted_by_workers=True)
    if isinstance(numbers, NpyFile):
        return _npy_source(numbers, chunks, chunk_bytes)
    if isinstance(numbers, CsvColumn) and numbers.shared:
        return _csv_source(numbers, chunks, chunk_bytes, options)
    if isinstance(numbers, ParquetColumn):
        if chunks is not None:
            raise ChunkingError("chunks= is not for Parquet files: their row groups are the chunks")
        return _parquet_source(numbers)
    if chunks is not None:
        raise ChunkingError("chunks= needs a known length; text is streamed in blocks")
    block_bytes = min(chunk_bytes, TEXT_BLOCK_BYTES)
    if isinstance(numbers, CsvColumn):
        return _csv_text_source(numbers, block_bytes, options)
    return _text_source(numbers, block_bytes, options)


def _cut_into(numbers: FileInput) -> str:
    """Say what a file or a stream is cut into, rather than a count of numbers."""
    if isinstance(numbers, TextFile | CsvColumn) and (numbers.shared or is_url(numbers.path)):
        return "a file read by reference is cut into byte ranges"
    if isinstance(numbers, NpyFile):
        return "an array file is cut into slices of its memory"
    if isinstance(numbers, ParquetColumn):
        return "a Parquet file's chunks are its row groups"
    return "text is cut into blocks of whole lines"


def _text_source(text: TextFile | TextStream, block_bytes: int, options: dict[str, Any]) -> Source:
    if isinstance(text, TextFile):
        text.stamp()  # a clear error now for a missing file (it is opened once read)

    def blocks() -> Iterator[tuple[int, bytes]]:
        with contextlib.ExitStack() as stack:
            if isinstance(text, TextFile):
                stream: BinaryIO = stack.enter_context(open(text.path, "rb"))
            else:
                stream = text.stream
            yield from text_blocks(stream, block_bytes)

    name = text.path if isinstance(text, TextFile) else text.name
    return _raw_source(blocks(), block_bytes, ChunkJob(SUM_TEXT_JOB, {"source": name, **options}))


def _csv_text_source(table: CsvColumn, block_bytes: int, options: dict[str, Any]) -> Source:
    _, column = table.plan()  # a clear error now for a missing file or column

    def blocks() -> Iterator[tuple[int, bytes]]:
        with open(table.path, "rb") as stream:
            if table.header:
                stream.readline()
            first_line = 2 if table.header else 1
            yield from text_blocks(stream, block_bytes, quote=b'"', first_line=first_line)

    shared = {"source": table.path, "column": column, "delimiter": table.delimiter, **options}
    return _raw_source(blocks(), block_bytes, ChunkJob(SUM_CSV_TEXT_JOB, shared))


def _raw_source(blocks: Iterator[tuple[int, bytes]], block_bytes: int, job: ChunkJob) -> Source:
    """Ship ``blocks`` (number of its first line, bytes) unparsed, at most
    TEXT_IN_FLIGHT_BYTES of them queued or running at once."""
    items = (
        ChunkArgs(index, {"text": codec.Packed(block), "first_line": first_line})
        for index, (first_line, block) in enumerate(blocks)
    )
    in_flight = max(1, TEXT_IN_FLIGHT_BYTES // block_bytes)
    return Source(None, items, job, counted_by_workers=True, max_in_flight=in_flight)


def _npy_source(array: NpyFile, chunks: int | None, chunk_bytes: int) -> Source:
    stamp, dtype, size, offset = array.header()
    # elements per slice, so that a slice holds about chunk_bytes
    slices = plan_ranges(size, chunks=chunks, chunk_bytes=max(1, chunk_bytes // dtype.itemsize))
    items = (ChunkArgs(r.index, {"start": r.offset, "stop": r.offset + r.length}) for r in slices)
    shared = {
        "path": os.path.abspath(array.path),
        "dtype": dtype.str,
        "offset": offset,
        "size": stamp.size,
        "mtime_ns": stamp.mtime_ns,
    }
    return Source(len(slices), items, ChunkJob(SUM_NPY_JOB, shared), counted_by_workers=True)


def _csv_source(
    table: CsvColumn, chunks: int | None, chunk_bytes: int, options: dict[str, Any]
) -> Source:
    stamp, column = table.plan()
    ranges = plan_ranges(stamp.size, chunks=chunks, chunk_bytes=chunk_bytes)
    items = (ChunkArgs(r.index, {"offset": r.offset, "length": r.length}) for r in ranges)
    shared = {
        **range_job(table.path, stamp),
        "column": column,
        "delimiter": table.delimiter,
        "header": table.header,
        **options,
    }
    return Source(len(ranges), items, ChunkJob(SUM_CSV_JOB, shared), counted_by_workers=True)


def _parquet_source(column: ParquetColumn) -> Source:
    stamp, groups = column.plan()
    shared = {
        "path": os.path.abspath(column.path),
        "column": column.column,
        "size": stamp.size,
        "mtime_ns": stamp.mtime_ns,
    }
    items = (ChunkArgs(group, {"group": group}) for group in range(groups))
    return Source(groups, items, ChunkJob(SUM_PARQUET_JOB, shared), counted_by_workers=True)


def _url_source(url: str, chunks: int | None, chunk_bytes: int, options: dict[str, Any]) -> Source:
    stamp = stamp_url(url)  # the submitter never reads the object's data
    ranges = plan_ranges(stamp.size, chunks=chunks, chunk_bytes=chunk_bytes)
    items = (ChunkArgs(r.index, {"offset": r.offset, "length": r.length}) for r in ranges)
    return Source(len(ranges), items, url_job(url, stamp, options), counted_by_workers=True)


def _no_chunk_size(chunk_size: int | None, why: str) -> None:
    if chunk_size is not None:
        raise ChunkingError(
            f"chunk_size={chunk_size} counts numbers, but {why}: pass chunks= (a file read "
            "by reference) or set CHUNKSUM_CHUNK_BYTES"
        )
