"""The files the bench's file workloads read, and their exact totals.

Each is written once per bench run, in the run's temporary directory, and its reference is
computed from the numbers written, never read back:

* W8: W3's random int64s, one per line (Python's exact sum, in int64 blocks);
* W8f: seeded decimal floats with three places (``-12345.678``), one per line; their
  reference is ``math.fsum`` of the floats the texts parse to (each text's value is
  ``thousandths / 1000`` rounded once, as ``float()`` rounds), and, for a decimal sum, the
  exact decimal total of the texts;
* W9: a 4-column table (``id,day,category,amount``) as a CSV file and as a Parquet file;
  ``amount`` holds seeded ints (cents), summed exactly by Python.
"""

import enum
import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import numpy.typing as npt

from app.bench.workloads import random_ints, scaled, write_lines

W8_COUNT = 10_000_000
W8F_COUNT = 10_000_000
W8F_PLACES = 3  # decimal places of W8f's texts
W8F_SPAN = 10**8  # W8f's values are thousandths in [-10**8, 10**8): -99999.999..99999.999
W9_ROWS = 10_000_000
W9_ROW_GROUP_ROWS = 1_000_000  # at scale 1; scaled with the rows, so a file has 10 groups
W9_CATEGORIES = ("books", "garden", "music", "toys", "food", "tools", "games", "sport")
W9_CENTS = 10**8  # W9's amounts are cents in [-10**8, 10**8)
COLUMN = "amount"  # the column W9 sums
# numbers per exact int64 partial sum of W8's reference: 2**20 values below 2**40 each in
# magnitude sum below 2**60, so no block can overflow
EXACT_BLOCK = 2**20
SEED = 20_240_604  # W8f's and W9's numbers (W8's are W3's)


class Format(enum.StrEnum):
    """What a bench file holds, which decides its peers (app.bench.peers)."""

    INTS = "ints"  # one int a line
    FLOATS = "floats"  # one decimal float a line
    CSV = "csv"  # column COLUMN of a CSV file with a header line
    PARQUET = "parquet"  # column COLUMN of a Parquet file


@dataclass(frozen=True, slots=True)
class FileWorkload:
    """A bench file: where it is, what it holds, and the exact total to expect.

    Args:
        decimal_expected: the exact decimal sum of a file of decimal texts (W8f), for a
            decimal sum of it.
    """

    name: str
    path: Path
    form: Format
    count: int
    expected: int | float
    decimal_expected: Decimal | None = None

    @property
    def size_mb(self) -> float:
        """Return the file's size in MB (10**6 bytes)."""
        return self.path.stat().st_size / 1e6


def write_text_workload(path: Path, scale: float) -> FileWorkload:
    """Write W8's file at ``path``: W3's random int64s at ``scale``, one per line."""
    ints = random_ints(scaled(W8_COUNT, scale))
    write_lines(path, ints)
    return FileWorkload("W8", path, Format.INTS, ints.size, exact_int_sum(ints))


def exact_int_sum(ints: npt.NDArray[np.int64]) -> int:
    """Return the exact sum of int64s below 2**40 in magnitude (int64 sums of blocks)."""
    blocks = (ints[start : start + EXACT_BLOCK] for start in range(0, ints.size, EXACT_BLOCK))
    return sum(int(block.sum()) for block in blocks)


def write_float_workload(path: Path, scale: float) -> FileWorkload:
    """Write W8f's file at ``path``: seeded decimal floats with three places, one per line."""
    count = scaled(W8F_COUNT, scale)
    thousandths = np.random.default_rng(SEED).integers(-W8F_SPAN, W8F_SPAN, count)
    path.write_bytes(decimal_lines(thousandths, W8F_PLACES))
    # IEEE division rounds the exact quotient once, as float() rounds the text's value
    floats = thousandths / 10**W8F_PLACES
    expected = math.fsum(floats.tolist())
    decimal = Decimal(exact_int_sum(thousandths)).scaleb(-W8F_PLACES)
    return FileWorkload("W8f", path, Format.FLOATS, count, expected, decimal)


def decimal_lines(scaled_ints: npt.NDArray[np.int64], places: int) -> bytes:
    """Return ``scaled_ints / 10**places`` as exact decimal texts, one a line: -12345.678."""
    import polars as pl

    units = 10**places
    value = pl.col("v")
    text = pl.concat_str(
        pl.when(value < 0).then(pl.lit("-")).otherwise(pl.lit("")),
        (value.abs() // units).cast(pl.String),
        pl.lit("."),
        (value.abs() % units).cast(pl.String).str.zfill(places),
    )
    frame = pl.DataFrame({"v": scaled_ints}).select(text.alias("x"))
    return frame.write_csv(include_header=False, quote_style="never").encode()


def write_table_workloads(directory: Path, scale: float) -> tuple[FileWorkload, FileWorkload]:
    """Write W9's table, as ``w9.csv`` and ``w9.parquet`` in ``directory``; return both."""
    import polars as pl

    rows = scaled(W9_ROWS, scale)
    rng = np.random.default_rng(SEED + 1)
    cents = rng.integers(-W9_CENTS, W9_CENTS, rows)
    days = np.datetime64("2024-01-01") + rng.integers(0, 366, rows).astype("timedelta64[D]")
    table = pl.DataFrame(
        {
            "id": np.arange(rows),
            "day": days,
            "category": np.array(W9_CATEGORIES)[rng.integers(0, len(W9_CATEGORIES), rows)],
            COLUMN: cents,
        }
    )
    csv, parquet = directory / "w9.csv", directory / "w9.parquet"
    table.write_csv(csv)
    table.write_parquet(parquet, row_group_size=scaled(W9_ROW_GROUP_ROWS, scale))
    expected = exact_int_sum(cents)
    return (
        FileWorkload("W9 CSV", csv, Format.CSV, rows, expected),
        FileWorkload("W9 Parquet", parquet, Format.PARQUET, rows, expected),
    )
