"""Tests for app.csvfiles: CSV columns summed by reference, range by range."""

import io
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from arq.worker import Worker
from hypothesis import given
from hypothesis import strategies as st

from app.csvfiles import CsvColumn, sum_csv_range
from app.errors import FileInputError, RunFailedError, SettingsError
from app.exact import ExactSum
from app.files import plan_ranges
from app.settings import Settings
from app.submit import Client
from app.text_blocks import text_blocks
from tests.harness import eventually, no_jobs_left


def sum_in_ranges(path: Path, column: str | int, chunks: int, **options: str) -> tuple[object, int]:
    """Sum a CSV column range by range, as workers do."""
    table = CsvColumn(str(path), column, **options)  # type: ignore[arg-type]  # str options
    stamp, index = table.plan()
    total, count = ExactSum(), 0
    for r in plan_ranges(stamp.size, chunks=chunks, chunk_bytes=1):
        partial, numbers = sum_csv_range(
            str(path),
            r.offset,
            r.length,
            stamp,
            column=index,
            delimiter=table.delimiter,
            header=table.header,
        )
        total, count = total + partial, count + numbers
    return total.value(), count


ROWS = [(i, f"name {i}", i * 0.5, 2**70 if i == 7 else i) for i in range(-50, 300)]


@pytest.fixture
def table(tmp_path: Path) -> Path:
    """A 4-column CSV file with a header, quoted fields holding the delimiter."""
    path = tmp_path / "t.csv"
    lines = ["id,name,half,big"] + [f'{a},"{b}, x",{c},{d}' for a, b, c, d in ROWS]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("chunks", [1, 3, 17])
def test_columns_sum_exactly_whatever_the_ranges(table: Path, chunks: int) -> None:
    """Each numeric column, by name or index, sums exactly over any ranges; the header
    line is skipped; a quoted delimiter doesn't shift the columns."""
    assert sum_in_ranges(table, "id", chunks) == (sum(r[0] for r in ROWS), len(ROWS))
    assert sum_in_ranges(table, 2, chunks) == (sum(r[2] for r in ROWS), len(ROWS))
    assert sum_in_ranges(table, "big", chunks) == (sum(r[3] for r in ROWS), len(ROWS))


def test_tabs_no_header_and_empty_fields(tmp_path: Path) -> None:
    """A TSV without a header, by index; empty fields are skipped."""
    path = tmp_path / "t.tsv"
    path.write_text("1\t 5\n2\t\n3\t7\n")
    assert sum_in_ranges(path, 1, 2, delimiter="\t", header=False) == (12, 2)  # type: ignore[arg-type]


def test_a_missing_column_lists_those_there_are(table: Path) -> None:
    """An unknown column name fails at submit, listing the header's names."""
    with pytest.raises(SettingsError, match="has no column 'nope'; its columns are id, name"):
        CsvColumn(str(table), "nope").plan()


def test_a_bad_field_is_named_by_line_and_column(tmp_path: Path) -> None:
    """A field that is not a number fails naming its line in the whole file and its column."""
    path = tmp_path / "t.csv"
    path.write_text("a,b\n" + "1,2\n" * 500 + "3,x\n" + "4,5\n" * 10)
    with pytest.raises(FileInputError, match=f"line 502, column 1 of {path} is 'x'"):
        sum_in_ranges(path, "b", 5)


def test_a_quoted_newline_across_ranges_fails_never_a_wrong_total(tmp_path: Path) -> None:
    """A quoted field with a newline in it is read right within one range, and fails the
    run, naming where, when a range boundary cuts it."""
    path = tmp_path / "t.csv"
    path.write_text('n,note\n1,"a\nb"\n2,c\n')
    assert sum_in_ranges(path, "n", 1) == (3, 2)
    with pytest.raises(FileInputError, match="holds a newline across the chunks"):
        sum_in_ranges(path, "n", 8)


async def test_workers_sum_a_csv_column_by_reference(
    client: Client, worker: Worker, table: Path
) -> None:
    """submit(CsvColumn) sums the column on the workers, range by range."""
    result = await client.submit(CsvColumn(str(table), "big"), chunks=4, timeout=30)
    assert (result.total, result.count) == (sum(r[3] for r in ROWS), len(ROWS))


ROWS_WITH_QUOTES = ['1,"a\nb"\n', '2,"x ""q"" y"\n', "3,z\n", '4,"\n\n"\n']


@given(st.lists(st.sampled_from(ROWS_WITH_QUOTES), max_size=30))
def test_raw_csv_blocks_end_outside_quotes(rows: list[str]) -> None:
    """Raw CSV blocks hold whole rows: each ends at a newline outside quotes (an even
    number of quote characters), they join back to the text, and number their lines."""
    data = "".join(rows).encode()
    blocks = list(text_blocks(io.BytesIO(data), 8, quote=b'"', first_line=2))
    assert b"".join(block for _, block in blocks) == data
    assert all(block.count(b'"') % 2 == 0 for _, block in blocks)
    lines = [2 + sum(block.count(b"\n") for _, block in blocks[:i]) for i in range(len(blocks))]
    assert [first for first, _ in blocks] == lines


async def test_a_csv_the_workers_cant_see_travels_as_raw_rows(
    settings: Settings, worker: Worker, table: Path, tmp_path: Path
) -> None:
    """CsvColumn(shared=False) ships blocks of whole rows: exact totals (quoted newlines
    too, wherever the blocks are cut), as decimals if asked; a bad field is named by its
    line in the whole file, and its run leaves no job behind."""
    async with Client(replace(settings, chunk_bytes=1000)) as client:
        result = await client.submit(CsvColumn(str(table), "big", shared=False), timeout=30)
        assert (result.total, result.count) == (sum(r[3] for r in ROWS), len(ROWS))
        assert result.chunks > 3
        notes = tmp_path / "notes.csv"
        notes.write_text("amount,note\n" + '0.10,"a\nb, c"\n' * 300)
        column = CsvColumn(str(notes), "amount", shared=False)
        ledger = await client.submit(column, decimal=True, timeout=30)
        assert (ledger.total, ledger.count) == (Decimal("30.00"), 300)
        notes.write_text("amount\n" + "1\n" * 700 + "one\n")
        with pytest.raises(RunFailedError, match=r"line 702, column 0 of .* is 'one'"):
            await client.submit(column, timeout=30)
        await eventually(lambda: no_jobs_left(client), what="the failed run's jobs gone")
