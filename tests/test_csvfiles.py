"""Tests for app.csvfiles: CSV columns summed by reference, range by range."""

from pathlib import Path

import pytest
from arq.worker import Worker

from app.csvfiles import CsvColumn, sum_csv_range
from app.errors import FileInputError, SettingsError
from app.exact import ExactSum
from app.files import plan_ranges
from app.submit import Client


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
