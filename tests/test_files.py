"""Tests for app.files and jobs.files: text files summed by reference, range by range."""

import io
import itertools
import math
import os
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
from arq.connections import ArqRedis
from arq.worker import Worker
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import (
    ChunkingError,
    FileInputError,
    InvalidNumberError,
    RunFailedError,
    SettingsError,
)
from app.exact import ExactSum, Total
from app.files import FileStamp, TextFile, plan_ranges, sum_lines, sum_range
from app.settings import Settings
from app.sources import TEXT_BLOCK_BYTES, TEXT_IN_FLIGHT_BYTES, plan_source
from app.submit import Client
from app.text_blocks import TextStream, text_blocks
from tests.harness import eventually, no_jobs_left


def stamp_of(path: Path) -> FileStamp:
    """Return the stamp a submitter would take of ``path``."""
    return TextFile(str(path)).stamp()


def sum_in_ranges(path: Path, chunks: int) -> tuple[Total, int]:
    """Sum a file range by range, as workers do; return the total and the count."""
    stamp = stamp_of(path)
    total, count = ExactSum(), 0
    for byte_range in plan_ranges(stamp.size, chunks=chunks, chunk_bytes=1 << 20):
        partial, numbers = sum_range(str(path), byte_range.offset, byte_range.length, stamp)
        total, count = total + partial, count + numbers
    return total.value(), count


class TestPlanRanges:
    """Byte ranges cover a file once, in equal parts."""

    def test_ranges_cover_the_file_in_order(self) -> None:
        """chunks=N gives N contiguous ranges from 0 to the size, within a byte of equal."""
        ranges = plan_ranges(100, chunks=7, chunk_bytes=1)
        assert [r.index for r in ranges] == list(range(7))
        assert ranges[0].offset == 0
        assert all(a.offset + a.length == b.offset for a, b in itertools.pairwise(ranges))
        assert ranges[-1].offset + ranges[-1].length == 100
        assert max(r.length for r in ranges) - min(r.length for r in ranges) <= 1

    def test_chunk_bytes_sets_the_count(self) -> None:
        """Without chunks=, a range holds at most chunk_bytes; an empty file has none."""
        assert len(plan_ranges(100, chunks=None, chunk_bytes=30)) == 4
        assert len(plan_ranges(3, chunks=10, chunk_bytes=1)) == 3
        assert plan_ranges(0, chunks=4, chunk_bytes=1) == []
        with pytest.raises(ChunkingError, match="chunks must be at least 1"):
            plan_ranges(10, chunks=0, chunk_bytes=1)


LINES = st.lists(
    st.one_of(
        st.integers(-(2**80), 2**80).map(str),
        st.integers(-(10**6), 10**6).map(lambda i: f"  {i:+d} "),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.just(""),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(lines=LINES, chunks=st.integers(1, 12), crlf=st.booleans(), last_newline=st.booleans())
def test_every_line_is_summed_once_whatever_the_ranges(
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[str],
    chunks: int,
    crlf: bool,
    last_newline: bool,
) -> None:
    """Summed range by range, a file gives the exact total and count of its lines, for any
    number of ranges, LF or CRLF, with or without a newline after the last line."""
    newline = "\r\n" if crlf else "\n"
    path = tmp_path_factory.mktemp("lines") / "numbers.txt"
    path.write_bytes((newline.join(lines) + (newline if last_newline else "")).encode())
    numbers = [float(s) if "." in s or "e" in s else int(s) for s in lines if s.strip()]
    total, count = sum_in_ranges(path, chunks)
    assert count == len(numbers)
    if any(isinstance(n, float) for n in numbers):
        # ints and floats summed exactly, then rounded once (to ±inf past the largest float)
        exact = sum((Fraction(n) for n in numbers), Fraction(0))
        try:
            expected = float(exact)
        except OverflowError:
            expected = math.inf if exact > 0 else -math.inf
        assert total == expected
        assert isinstance(total, float)
    else:
        assert total == sum(numbers)


class TestSumLines:
    """One block of lines: polars where it is exact, the line parser where it is not."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (b"1\n2\n3\n", 6),
            (b"1.5\n2.25\n", 3.75),
            (b"0.1\n0.2\n", math.fsum([0.1, 0.2])),
            (b"9007199254740993\n0.5\n", 9007199254740994.0),  # 2**53 + 1.5, rounded once
            (b"%d\n1\n" % 2**70, 2**70 + 1),
            (b"+5\n 7 \n1_000\n", 1012),
            (b"\n\n4\r\n\r\n5\r\n", 9),
        ],
    )
    def test_exact_totals(self, text: bytes, expected: int | float) -> None:
        """Ints stay exact ints (past int64 too), floats are summed exactly and rounded once."""
        total, _ = sum_lines(text, "f")
        assert type(total.value()) is type(expected)
        assert total.value() == expected

    @pytest.mark.parametrize(
        "text", [b"1\n0x10\n", b"1\nNaN?\n", b"1\n\xff\n", b"1\n1,2\n", b"1\n2\x1f3\n"]
    )
    def test_a_line_that_is_not_a_number_is_refused(self, text: bytes) -> None:
        """Text that Python's int() and float() refuse fails, naming its line."""
        with pytest.raises(InvalidNumberError, match="line 2 of f is"):
            sum_lines(text, "f")

    def test_nan_and_infinities_follow_ieee(self) -> None:
        """nan and inf lines give the IEEE total, as float() reads them."""
        assert math.isnan(sum_lines(b"1\nnan\n", "f")[0].value())
        assert sum_lines(b"inf\n1\n", "f")[0].value() == math.inf


class TestSumRange:
    """A worker's view of its range: the file as stamped, errors naming the place."""

    def test_a_bad_line_is_named_by_its_line_in_the_whole_file(self, tmp_path: Path) -> None:
        """A bad line deep in the file is reported with its absolute line number."""
        path = tmp_path / "numbers.txt"
        path.write_text("".join(f"{i}\n" for i in range(1000)) + "oops\n" + "5\n" * 10)
        with pytest.raises(FileInputError, match=f"line 1001 of {path} is 'oops'"):
            sum_in_ranges(path, chunks=7)

    def test_a_changed_file_is_refused(self, tmp_path: Path) -> None:
        """A file whose size or mtime changed since it was stamped fails, saying so."""
        path = tmp_path / "numbers.txt"
        path.write_text("1\n2\n")
        stamp = stamp_of(path)
        path.write_text("1\n2\n3\n")
        with pytest.raises(FileInputError, match="changed after the run was submitted"):
            sum_range(str(path), 0, stamp.size, stamp)

    def test_a_missing_file_is_refused(self, tmp_path: Path) -> None:
        """A worker that can't open the file fails naming it and why."""
        with pytest.raises(FileInputError, match=r"cannot read .*No such file"):
            sum_range(str(tmp_path / "gone.txt"), 0, 1, FileStamp(1, 0))

    def test_the_submitter_refuses_what_is_not_a_readable_file(self, tmp_path: Path) -> None:
        """A directory or a missing path fails at submit, with SettingsError."""
        with pytest.raises(SettingsError, match="not a regular file"):
            TextFile(str(tmp_path)).stamp()
        with pytest.raises(SettingsError, match="No such file"):
            TextFile(str(tmp_path / "gone.txt")).stamp()


async def test_workers_sum_a_file_by_reference(
    client: Client, worker: Worker, tmp_path: Path
) -> None:
    """submit(TextFile) sums on the workers, range by range: exact total, numbers counted."""
    numbers = [i * 7919 - 2**40 for i in range(20_000)] + [2**70]
    path = tmp_path / "numbers.txt"
    path.write_text("\n".join(map(str, numbers)))
    result = await client.submit(TextFile(str(path)), chunks=9, timeout=30)
    assert (result.total, result.count, result.chunks) == (sum(numbers), len(numbers), 9)
    stored = await client.status(result.run_id)
    assert (stored.total, stored.count) == (sum(numbers), len(numbers))


async def test_a_bad_line_fails_the_run_and_leaves_nothing_queued(
    client: Client, worker: Worker, redis: ArqRedis, tmp_path: Path
) -> None:
    """A bad line fails the run with the file and line, and no job of it stays queued."""
    path = tmp_path / "numbers.txt"
    path.write_text("1\n" * 5000 + "x1\n" + "2\n" * 5000)
    with pytest.raises(RunFailedError, match=f"line 5001 of {path} is 'x1'"):
        await client.submit(TextFile(str(path)), chunks=4, timeout=30)
    # the run failed; chunks that were running finish, and none stays queued
    await eventually(lambda: no_jobs_left(client), what="the failed run's jobs gone")


async def test_chunk_size_is_refused_for_a_file(client: Client, tmp_path: Path) -> None:
    """chunk_size= counts numbers: for a file, ChunkingError says to use chunks= instead."""
    path = tmp_path / "numbers.txt"
    path.write_text("1\n")
    with pytest.raises(ChunkingError, match="byte ranges"):
        await client.submit(TextFile(str(path)), chunk_size=10)


def test_an_empty_file_sums_to_zero(tmp_path: Path) -> None:
    """An empty file has no ranges; its sum is 0 (the run ends at once, as for [])."""
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    assert sum_in_ranges(path, chunks=3) == (0, 0)
    assert os.path.getsize(path) == 0


class TestTextBlocks:
    """Text the workers can't see travels as raw blocks of whole lines."""

    def test_blocks_end_at_a_newline_and_number_their_lines(self) -> None:
        """Blocks hold whole lines (the last may lack its newline), each with the number of
        its first line; a line longer than a block makes a longer block."""
        text = b"1\n22\n333\n" + b"4" * 50 + b"\n5"
        blocks = list(text_blocks(io.BytesIO(text), 4))
        assert b"".join(block for _, block in blocks) == text
        assert all(block.endswith(b"\n") for _, block in blocks[:-1])
        assert [first for first, _ in blocks] == [1, 2, 3, 4, 5]
        assert list(text_blocks(io.BytesIO(b""), 4)) == []

    def test_raw_text_is_bounded_in_flight(self, tmp_path: Path) -> None:
        """Raw text keeps at most TEXT_IN_FLIGHT_BYTES queued or running, whatever the
        settings allow; chunk_size= and chunks= are refused for it."""
        path = tmp_path / "numbers.txt"
        path.write_text("1\n")
        source = plan_source(
            TextFile(str(path), shared=False), chunks=None, chunk_size=None, settings=Settings()
        )
        assert source.max_in_flight == TEXT_IN_FLIGHT_BYTES // TEXT_BLOCK_BYTES
        assert source.counted_by_workers
        stream = TextStream(io.BytesIO(b"1\n"), "t")
        with pytest.raises(ChunkingError, match="needs a known length"):
            plan_source(stream, chunks=2, chunk_size=None, settings=Settings())
        with pytest.raises(ChunkingError, match="blocks of whole lines"):
            plan_source(stream, chunks=None, chunk_size=2, settings=Settings())


async def test_text_the_workers_cant_see_is_shipped_raw(
    settings: Settings, redis: ArqRedis, worker: Worker, tmp_path: Path
) -> None:
    """A file with shared=False, or a stream, is read here and parsed by the workers, in
    blocks: exact totals, numbers counted, a bad line named by its line in the whole text."""
    numbers = [i * 104729 - 2**45 for i in range(3000)] + [2**80, -7]
    path = tmp_path / "numbers.txt"
    path.write_text("\n".join(map(str, numbers)) + "\n")
    async with Client(replace(settings, chunk_bytes=1000)) as client:
        result = await client.submit(TextFile(str(path), shared=False), timeout=30)
        assert (result.total, result.count) == (sum(numbers), len(numbers))
        assert result.chunks == -(-path.stat().st_size // 1000) or result.chunks > 1
        piped = await client.submit(TextStream(io.BytesIO(b"0.5\n1\n\n2\n"), "<stdin>"), timeout=30)
        assert (piped.total, piped.count) == (3.5, 3)
        bad = io.BytesIO(b"1\n" * 2000 + b"two\n" + b"3\n" * 100)
        with pytest.raises(RunFailedError, match="line 2001 of <stdin> is 'two'"):
            await client.submit(TextStream(bad, "<stdin>"), timeout=30)
