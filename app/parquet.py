"""Parquet columns summed by reference: each worker reads one row group of the column.

The submitter reads the file's footer only (its row groups and schema); each row group is a
chunk, which a worker reads (pyarrow, the ``parquet`` extra) and sums exactly. Nulls are
skipped, as SQL's ``sum`` skips them, and not counted.
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
        kind = _numpy_kind(schema.field(self.column).type)
        if kind not in NUMERIC_KINDS:
            raise InvalidNumberError(
                f"column {self.column!r} of {self.path!r} is {schema.field(self.column).type}; "
                "chunksum sums bool, int and float columns exactly",
                position=0,
            )
        return stamp, meta.num_row_groups


def sum_row_group(path: str, column: str, group: int, stamp: FileStamp) -> tuple[ExactSum, int]:
    """Sum row group ``group`` of the column exactly; return the sum and how many values
    (nulls skipped). Raise FileInputError if the file is gone or changed."""
    stamp.check(path)
    values = column_values(_pyarrow_parquet().ParquetFile(path).read_row_group(group, [column]))
    if values.dtype.kind == "f":
        return ExactSum.of_floats(values.astype("float64", copy=False)), values.size
    return ExactSum.of_ints(values.view("uint8") if values.dtype.kind == "b" else values), (
        values.size
    )


def load_column(path: str, column: str) -> Any:
    """Read a whole column into a NumPy array (nulls skipped), for this process to send its
    numbers to workers that can't see the file."""
    ParquetColumn(path, column).plan()
    return column_values(_pyarrow_parquet().read_table(path, columns=[column]))


def column_values(table: Any) -> Any:
    """Return a one-column table's non-null values as a NumPy array."""
    from pyarrow import compute

    chunked = compute.drop_null(table.column(0))
    return chunked.to_numpy()


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
