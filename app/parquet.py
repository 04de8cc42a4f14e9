"""Parquet columns summed by reference: each worker reads one row group of the column.

The submitter reads the file's footer only (its row groups and schema); each row group is a
chunk, which a worker reads (pyarrow, the ``parquet`` extra) and sums exactly. Nulls are
skipped, as SQL's ``sum`` skips them, and not counted. A ``decimal128`` column is summed as
exact decimals (its 128-bit integers, then its scale), and its total is a ``Decimal``.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import InvalidNumberError, SettingsError
from app.exact import ExactSum
from app.files import FileStamp, stamp_of

NUMERIC_KINDS = "biuf"  # NumPy kinds of the Arrow types summed exactly: bool, int, uint, float


@dataclass(frozen=True, slots=True)
class ParquetColumn:
    """Column ``column`` of the Parquet file at ``path``, read by the workers (by reference).

    The workers must see ``path`` as the submitter does (see :class:`app.files.TextFile`).
    """

    path: str
    column: str

    def plan(self) -> tuple[FileStamp, int]:
        """Return the file's stamp and its number of row groups; raise SettingsError if it
        is not a readable Parquet file with that column of numbers."""
        stamp = stamp_of(self.path)
        parquet = _pyarrow_parquet()
        try:
            meta = parquet.ParquetFile(self.path).metadata
        except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
            raise SettingsError(f"{self.path!r} is not a Parquet file ({exc})") from exc
        schema = meta.schema.to_arrow_schema()
        if self.column not in schema.names:
            raise SettingsError(
                f"{self.path!r} has no column {self.column!r}; its columns are "
                f"{', '.join(schema.names)}"
            )
        arrow_type = schema.field(self.column).type
        if _numpy_kind(arrow_type) not in NUMERIC_KINDS and not _is_decimal128(arrow_type):
            raise InvalidNumberError(
                f"column {self.column!r} of {self.path!r} is {arrow_type}; "
                "chunksum sums bool, int, float and decimal128 columns exactly",
                position=0,
            )
        return stamp, meta.num_row_groups


def sum_row_group(path: str, column: str, group: int, stamp: FileStamp) -> tuple[ExactSum, int]:
    """Sum row group ``group`` of the column exactly; return the sum and how many values
    (nulls skipped). Raise FileInputError if the file is gone or changed."""
    stamp.check(path)
    table = _pyarrow_parquet().ParquetFile(path).read_row_group(group, [column])
    if _is_decimal128(table.schema.field(0).type):
        return _sum_decimal128(table)
    values = column_values(table)
    if values.dtype.kind == "f":
        return ExactSum.of_floats(values.astype("float64", copy=False)), values.size
    return ExactSum.of_ints(values.view("uint8") if values.dtype.kind == "b" else values), (
        values.size
    )


def load_column(path: str, column: str) -> Any:
    """Read a whole column into a NumPy array (nulls skipped), for this process to send its
    numbers to workers that can't see the file."""
    ParquetColumn(path, column).plan()
    table = _pyarrow_parquet().read_table(path, columns=[column])
    if _is_decimal128(table.schema.field(0).type):
        raise SettingsError(
            f"column {column!r} of {path!r} holds decimals, which the workers sum from the "
            "file itself: add --shared (or use `chunksum run`), with the file on a path they see"
        )
    return column_values(table)


def column_values(table: Any) -> Any:
    """Return a one-column table's non-null values as a NumPy array."""
    from pyarrow import compute

    chunked = compute.drop_null(table.column(0))
    return chunked.to_numpy()


def _sum_decimal128(table: Any) -> tuple[ExactSum, int]:
    """Sum a one-column decimal128 table exactly: each value is a 128-bit integer (two
    little-endian 64-bit words, the high one signed) times 10**-scale."""
    from pyarrow import compute

    total = count = 0
    for chunk in compute.drop_null(table.column(0)).chunks:
        words = np.frombuffer(chunk.buffers()[1], dtype=np.int64)
        words = words[2 * chunk.offset : 2 * (chunk.offset + len(chunk))]
        low, high = ExactSum.of_ints(words[0::2].view(np.uint64)), ExactSum.of_ints(words[1::2])
        total += (int(high.value()) << 64) + int(low.value())
        count += len(chunk)
    return ExactSum.of_decimal(total, -table.schema.field(0).type.scale), count


def _is_decimal128(arrow_type: Any) -> bool:
    from pyarrow import types

    return bool(types.is_decimal128(arrow_type))


def _numpy_kind(arrow_type: Any) -> str:
    try:
        return str(np.dtype(arrow_type.to_pandas_dtype()).kind)
    except (NotImplementedError, TypeError):
        return "O"


def _pyarrow_parquet() -> Any:
    try:
        from pyarrow import parquet
    except ImportError as exc:  # pragma: no cover  # the test extra installs pyarrow
        raise SettingsError("Parquet files need pyarrow: pip install 'chunksum[parquet]'") from exc
    return parquet
