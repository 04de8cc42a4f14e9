"""Tests for app.parquet: Parquet columns summed by reference, row group by row group."""

import decimal
import math
import random
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from arq.worker import Worker
from pyarrow import parquet

from app.errors import FileInputError, InvalidNumberError, SettingsError
from app.exact import ExactSum, Total
from app.parquet import ParquetColumn, load_column, sum_row_group
from app.submit import Client


def write(tmp_path: Path, table: pa.Table, rows_per_group: int) -> Path:
    """Write ``table`` as a Parquet file with row groups of ``rows_per_group`` rows."""
    path = tmp_path / "t.parquet"
    parquet.write_table(table, path, row_group_size=rows_per_group)
    return path


def sum_in_groups(path: Path, column: str) -> tuple[Total, int]:
    """Sum a column row group by row group, as workers do."""
    stamp, groups = ParquetColumn(str(path), column).plan()
    total, count = ExactSum(), 0
    for group in range(groups):
        partial, numbers = sum_row_group(str(path), column, group, stamp)
        total, count = total + partial, count + numbers
    return total.value(), count


def test_int_float_and_bool_columns_sum_exactly_skipping_nulls(tmp_path: Path) -> None:
    """Each numeric column sums exactly over its row groups; nulls are skipped, not counted."""
    big = [2**63 - 1, None, -(2**63), 2**63 - 1]
    floats = [0.1, 0.2, None, 1e100]
    table = pa.table(
        {
            "big": pa.array(big, pa.int64()),
            "u8": pa.array([255, 255, 1, None], pa.uint8()),
            "f": pa.array(floats, pa.float64()),
            "flag": pa.array([True, True, None, False]),
        }
    )
    path = write(tmp_path, table, rows_per_group=3)
    assert sum_in_groups(path, "big") == (sum(v for v in big if v is not None), 3)
    assert sum_in_groups(path, "u8") == (511, 3)
    assert sum_in_groups(path, "f") == (math.fsum([0.1, 0.2, 1e100]), 3)
    assert sum_in_groups(path, "flag") == (2, 3)


def test_a_missing_column_lists_those_there_are(tmp_path: Path) -> None:
    """Naming a column the file lacks fails at submit, listing its columns."""
    path = write(tmp_path, pa.table({"a": [1], "b": [2]}), rows_per_group=1)
    with pytest.raises(SettingsError, match="has no column 'c'; its columns are a, b"):
        ParquetColumn(str(path), "c").plan()


def test_non_numeric_columns_and_non_parquet_files_are_refused(tmp_path: Path) -> None:
    """A string column, or a file that is not Parquet, fails at submit, saying why."""
    path = write(tmp_path, pa.table({"s": ["x"]}), rows_per_group=1)
    with pytest.raises(InvalidNumberError, match=r"column 's' of .* is string"):
        ParquetColumn(str(path), "s").plan()
    text = tmp_path / "t.txt"
    text.write_text("1\n")
    with pytest.raises(SettingsError, match="is not a Parquet file"):
        ParquetColumn(str(text), "x").plan()


def test_a_decimal_column_sums_as_exact_decimals(tmp_path: Path) -> None:
    """A decimal128 column sums exactly as decimals, past 64 bits and with its scale, nulls
    skipped, whatever the row groups; workers that can't see it are told to add --shared."""
    rng = random.Random(5)
    values = [Decimal(rng.randint(-(10**35), 10**35)).scaleb(-3) for _ in range(2000)]
    column = pa.array([*values, None, Decimal("0.500")], pa.decimal128(38, 3))
    path = write(tmp_path, pa.table({"amount": column}), rows_per_group=300)
    total, count = sum_in_groups(path, "amount")
    with decimal.localcontext(prec=decimal.MAX_PREC):
        expected = sum(values, Decimal("0.500"))
    assert (total, count) == (expected, 2001)
    assert str(total) == str(expected)  # the places too
    with pytest.raises(SettingsError, match="add --shared"):
        load_column(str(path), "amount")


def test_a_changed_parquet_file_is_refused(tmp_path: Path) -> None:
    """A worker that finds the file changed since submit fails the run, saying so."""
    path = write(tmp_path, pa.table({"a": [1, 2]}), rows_per_group=1)
    stamp, _ = ParquetColumn(str(path), "a").plan()
    parquet.write_table(pa.table({"a": [1, 2, 3]}), path)
    with pytest.raises(FileInputError, match="changed after the run was submitted"):
        sum_row_group(str(path), "a", 0, stamp)


async def test_workers_sum_a_parquet_column_by_reference(
    client: Client, worker: Worker, tmp_path: Path
) -> None:
    """submit(ParquetColumn) makes a chunk of each row group, summed on the workers."""
    values = np.random.default_rng(9).integers(-(2**60), 2**60, 50_000)
    path = write(tmp_path, pa.table({"x": values, "y": values * 0}), rows_per_group=7_000)
    result = await client.submit(ParquetColumn(str(path), "x"), timeout=30)
    assert (result.total, result.count, result.chunks) == (sum(values.tolist()), 50_000, 8)
