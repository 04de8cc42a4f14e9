"""Text files summed by reference: the workers read and parse their own byte ranges.

The submitter only stats the file and enqueues one job per byte range (``TextFile``); each
worker opens the file, reads its range, parses and sums it (``sum_range``), and no number
passes through the submitter or Redis. As in Hadoop's ``LineRecordReader``, a range owns
the lines that *start* inside it: its reader skips the partial line at the range's start
(the previous range's reader finishes it) and reads on past the range's end to the end
of its own last line. Every line is summed once, whatever the ranges.

Lines are parsed by polars' CSV reader (one column, no quoting; it refuses every text
Python's ``int()`` and ``float()`` refuse), as int64 or else as float64, and summed
exactly. A block that neither parses exactly (ints past int64, underscores, a line that is
not a number) falls back to the same line parser as streamed input
(``app.inputs.parse_lines``), which keeps every int exact and names a bad line by its
number in the whole file.
"""

import io
import itertools
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import numpy as np

from app import codec
from app.columns import read_column
from app.decimals import sum_decimal_block, sum_decimals
from app.errors import ChunkingError, FileInputError, InvalidNumberError, SettingsError
from app.exact import ExactSum
from app.inputs import parse_lines

SCAN_BYTES = 1 << 16  # read ahead this much at a time to find a line's end
FLOAT_MARKS = (b".", b"e", b"E", b"n", b"N")  # some float's text has one: 1.5, 1e9, nan, inf
FLOAT_EXACT_INT = 2.0**53  # float64 holds every int up to here; beyond, a float parse rounds


@dataclass(frozen=True, slots=True)
class FileStamp:
    """What the submitter saw of a file; a worker that sees otherwise fails the run."""

    size: int
    mtime_ns: int

    def check(self, path: str) -> None:
        """Raise FileInputError if the file at ``path`` is gone, or not as stamped."""
        try:
            seen = os.stat(path)
        except OSError as exc:
            raise FileInputError(_unreadable(path, exc)) from exc
        if (seen.st_size, seen.st_mtime_ns) != (self.size, self.mtime_ns):
            raise FileInputError(
                f"{path!r} changed after the run was submitted (its size or modification "
                "time differs); sum it again once it no longer changes"
            )


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Chunk ``index`` of a file: the lines that start in ``[offset, offset + length)``."""

    index: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class TextFile:
    """A text file of one number per line.

    Args:
        shared: the workers see ``path`` as the submitter does (the same machine, as with
            `chunksum run`, or the same path on a shared filesystem), and read it themselves,
            in byte ranges. False: the submitter reads it and ships its lines, unparsed, as
            raw blocks (app.sources).
    """

    path: str
    shared: bool = True

    def stamp(self) -> FileStamp:
        """Return the file's size and modification time (see :func:`stamp_of`)."""
        return stamp_of(self.path)


def _unreadable(path: str, exc: OSError) -> str:
    """Say that a worker cannot read ``path``, and what to do."""
    return (
        f"a worker cannot read {path!r} ({exc.strerror}); the workers read a file at the "
        "path the submitter gave: put it where they see it, or submit without --shared "
        "(shared=False) to send them its contents"
    )


def stamp_of(path: str) -> FileStamp:
    """Return a file's size and modification time, as the submitter sees them; raise
    SettingsError if it is not a readable regular file."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise SettingsError(f"{path!r} is not a regular file; give a file of numbers")
        os.close(os.open(path, os.O_RDONLY))
    except OSError as exc:
        raise SettingsError(f"cannot read {path!r} ({exc.strerror}); give a readable file") from exc
    return FileStamp(info.st_size, info.st_mtime_ns)


def plan_ranges(size: int, *, chunks: int | None, chunk_bytes: int) -> list[ByteRange]:
    """Cut ``size`` bytes into ``chunks`` equal ranges, or ranges of ``chunk_bytes``."""
    if chunks is not None and chunks < 1:
        raise ChunkingError(f"chunks must be at least 1, got {chunks}")
    if size == 0:
        return []
    count = min(chunks, size) if chunks is not None else -(-size // chunk_bytes)
    edges = [size * i // count for i in range(count + 1)]
    return [
        ByteRange(index, start, stop - start)
        for index, (start, stop) in enumerate(itertools.pairwise(edges))
    ]


def range_job(path: str, stamp: FileStamp) -> dict[str, Any]:
    """Return the job arguments every range of the file shares (see jobs.files): the path is
    absolute, as workers started elsewhere need it."""
    return {"path": os.path.abspath(path), "size": stamp.size, "mtime_ns": stamp.mtime_ns}


def sum_range(
    path: str, offset: int, length: int, stamp: FileStamp, *, decimal: bool = False
) -> tuple[ExactSum, int]:
    """Read the lines that start in ``[offset, offset + length)`` of the file at ``path``;
    return their exact sum (as decimals, if ``decimal``) and how many numbers they hold.

    Raises:
        FileInputError: the file is gone, unreadable, changed since ``stamp``, or holds a
            line that is not a number (named by its line number in the whole file).
    """
    block, first_line = read_lines(path, offset, length, stamp)
    return sum_block(block, path, first_line, decimal=decimal)


def read_lines(
    path: str, offset: int, length: int, stamp: FileStamp
) -> tuple[bytes, Callable[[], int]]:
    """Read the whole lines that start in ``[offset, offset + length)``; return them, and a
    function that returns the number of the first in the file (it counts the lines before:
    call it only to name a bad line)."""
    stamp.check(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise FileInputError(_unreadable(path, exc)) from exc
    try:
        start = offset if offset == 0 else _line_start(fd, offset - 1, stamp.size)
        end = min(offset + length, stamp.size)
        if end < stamp.size:
            end = _line_start(fd, end - 1, stamp.size)
        block = os.pread(fd, max(end - start, 0), start)
    finally:
        os.close(fd)
    return block, lambda: _lines_before(path, start) + 1


def sum_block(
    block: bytes, source: str, first_line: Callable[[], int], *, decimal: bool = False
) -> tuple[ExactSum, int]:
    """Sum a block of whole lines of ``source`` exactly (as decimals, if ``decimal``), or
    raise FileInputError naming a bad line by its number in ``source`` (``first_line()``:
    the block's first line's).
    """
    try:
        return sum_lines(block, source, decimal=decimal)
    except InvalidNumberError:  # numbered from the block's start: number it in the source
        try:
            sum_lines_exactly(block, source, first_line=first_line(), decimal=decimal)
        except InvalidNumberError as exc:
            raise FileInputError(str(exc)) from exc
        raise  # pragma: no cover  # the same block fails the same way


def sum_lines(block: bytes, source: str, *, decimal: bool = False) -> tuple[ExactSum, int]:
    """Sum a block of whole lines, one number each (blank lines skipped), exactly (as
    decimals, if ``decimal``: see app.decimals); raise InvalidNumberError for a line that is
    not a number (numbered from the block's start)."""
    if decimal:
        summed = sum_decimal_block(block)
        return summed or sum_lines_exactly(block, source, first_line=1, decimal=True)
    if (ints := _parse_column(block, "int64")) is not None:
        return ExactSum.of_ints(ints), ints.size
    # as floats only if a line is one (a total of ints alone stays an int), and only if
    # every int line is small enough for a float64 to hold it exactly
    if any(mark in block for mark in FLOAT_MARKS):
        floats = _parse_column(block, "float64")
        if floats is not None and _floats_exact(floats):
            return ExactSum.of_floats(floats), floats.size
    return sum_lines_exactly(block, source, first_line=1)


def sum_values(
    strings: Any, float_marks: tuple[bytes, ...] = FLOAT_MARKS
) -> tuple[ExactSum, int] | None:
    """Sum a polars Series of number texts exactly (surrounding spaces allowed), or return
    None if polars can't read every one as an int64 (or, where one is a float, every one as
    a float64 that holds its value exactly): then the caller parses them one by one."""
    import polars as pl

    texts = strings.str.strip_chars()
    try:
        ints = texts.cast(pl.Int64, strict=True).to_numpy()
        return ExactSum.of_ints(ints), ints.size
    except pl.exceptions.PolarsError:
        pass
    pattern = "[" + "".join(mark.decode() for mark in float_marks) + "]"
    if not texts.str.contains(pattern).any():
        return None
    try:
        floats = texts.cast(pl.Float64, strict=True).to_numpy()
    except pl.exceptions.PolarsError:
        return None
    return (ExactSum.of_floats(floats), floats.size) if _floats_exact(floats) else None


def exact_sum(numbers: list[int | float]) -> ExactSum:
    """Sum Python ints and floats exactly (as a chunk of numbers in memory is summed)."""
    return codec.sum_parts(codec.encode_chunk(numbers, 0)) if numbers else ExactSum()


def sum_lines_exactly(
    block: bytes, source: str, *, first_line: int, decimal: bool = False
) -> tuple[ExactSum, int]:
    """Sum a block of lines with the line parser of streamed input (slower, but every int
    stays exact); raise InvalidNumberError naming a bad line by its number from
    ``first_line``."""
    lines = io.TextIOWrapper(io.BytesIO(block), encoding="utf-8", errors="replace", newline="")
    numbers = list(parse_lines(lines, source, first_line=first_line, decimal=decimal))
    if decimal:
        return sum_decimals(cast(list[Decimal], numbers)), len(numbers)
    return exact_sum(cast(list[int | float], numbers)), len(numbers)


def _parse_column(block: bytes, kind: str) -> Any:
    """Return the block's numbers as a NumPy array of ``kind``, or None if polars can't
    parse every non-blank line so (a blank line reads as null and is skipped)."""
    import polars as pl  # imported here: only workers parse files

    column = read_column(block, pl.Int64 if kind == "int64" else pl.Float64)
    return None if column is None else column.to_numpy()


def _floats_exact(values: Any) -> bool:
    """Whether a float64 parse kept every value exact: an int written past 2**53 would have
    been rounded (a line parser keeps it an exact int), so such values go the slow way."""
    big = np.abs(values) >= FLOAT_EXACT_INT
    return not bool(np.any(big & (values == np.floor(values)) & np.isfinite(values)))


def _line_start(fd: int, position: int, size: int) -> int:
    """Return where the first line after ``position`` starts (just past the first newline
    at or after it), or ``size`` if none follows."""
    while position < size:
        scanned = os.pread(fd, SCAN_BYTES, position)
        if (newline := scanned.find(b"\n")) >= 0:
            return position + newline + 1
        position += len(scanned)
    return size


def _lines_before(path: str, end: int) -> int:
    """Count the newlines in the file before ``end`` (for a bad line's number)."""
    count = position = 0
    with open(path, "rb") as file:
        while position < end and (block := file.read(min(1 << 20, end - position))):
            count += block.count(b"\n")
            position += len(block)
    return count
