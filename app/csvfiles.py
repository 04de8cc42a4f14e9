"""CSV columns summed by reference: each worker reads its byte range's rows (app.files).

The submitter reads the header line only, to find the column; each range owns the lines
that start in it, as for text files, and its worker parses them as CSV (polars; quoted
fields, delimiters inside quotes) and sums the column exactly. Empty fields are skipped.
A quoted field with a newline in it is read right when it lies within one range; one that
crosses a range's end leaves an odd number of quote characters in a range, and fails the
run naming the line, never summing a wrong total (``--chunks 1`` reads such a file whole).

A CSV file the workers can't see (``shared=False``) travels as raw blocks of rows, as text
does (app.sources); the submitter cuts them only where no quoted field is open.
"""

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.decimals import parse_decimal, sum_decimal_strings, sum_decimals
from app.errors import FileInputError, SettingsError
from app.exact import ExactSum
from app.files import FileStamp, exact_sum, read_lines, stamp_of, sum_values
from app.inputs import parse_number

HEADER_BYTES = 1 << 20  # a header line longer than this is refused


@dataclass(frozen=True, slots=True)
class CsvColumn:
    """Column ``column`` (a name, or a 0-based index) of the CSV file at ``path``, read by
    the workers themselves (see :class:`app.files.TextFile` for what they must see).

    Args:
        header: the first line names the columns (and holds no numbers).
    """

    path: str
    column: str | int
    delimiter: str = ","
    header: bool = True
    shared: bool = True  # False: the submitter ships the rows, unparsed (app.sources)

    def plan(self) -> tuple[FileStamp, int]:
        """Return the file's stamp and the column's index; raise SettingsError if the file
        can't be read or has no such column (naming those it has)."""
        stamp = stamp_of(self.path)
        if len(self.delimiter) != 1:
            raise SettingsError(f"a CSV delimiter is one character, not {self.delimiter!r}")
        if isinstance(self.column, int):
            return stamp, self.column
        if not self.header:
            raise SettingsError(f"column {self.column!r} can't be found without a header line")
        with open(self.path, encoding="utf-8", errors="replace", newline="") as file:
            names = next(csv.reader([file.readline(HEADER_BYTES)], delimiter=self.delimiter), [])
        names = [name.strip() for name in names]
        if self.column not in names:
            raise SettingsError(
                f"{self.path!r} has no column {self.column!r}; its columns are {', '.join(names)}"
            )
        return stamp, names.index(self.column)


def sum_csv_range(
    path: str,
    offset: int,
    length: int,
    stamp: FileStamp,
    *,
    column: int,
    delimiter: str,
    header: bool,
    decimal: bool = False,
) -> tuple[ExactSum, int]:
    """Sum column ``column`` of the rows that start in ``[offset, offset + length)`` (as
    decimals, if ``decimal``)."""
    block, first_line = read_lines(path, offset, length, stamp)
    if header and offset == 0:  # the first range holds the header line: skip it
        cut = block.find(b"\n") + 1 or len(block)
        block, counted = block[cut:], first_line
        first_line = lambda: counted() + 1  # noqa: E731  # as read_lines gives it
    if block.count(b'"') % 2:
        raise FileInputError(
            f"a quoted field of {path!r} holds a newline across the chunks near line "
            f"{first_line()}; sum the file as one chunk (--chunks 1), or without such fields"
        )
    return sum_csv_block(block, path, first_line, column, delimiter, decimal=decimal)


def sum_csv_block(
    block: bytes,
    source: str,
    first_line: Callable[[], int],
    column: int,
    delimiter: str,
    *,
    decimal: bool = False,
) -> tuple[ExactSum, int]:
    """Sum column ``column`` of a block of whole CSV rows of ``source`` (as decimals, if
    ``decimal``); raise FileInputError naming a bad field by its line (``first_line()``: the
    block's first line's) and column."""
    values = _column_strings(block, column, delimiter)
    summing = sum_decimal_strings if decimal else sum_values
    if values is not None and (summed := summing(values)) is not None:
        return summed
    return _sum_rows_exactly(block, source, first_line, column, delimiter, decimal=decimal)


def _column_strings(block: bytes, column: int, delimiter: str) -> Any:
    """Return the column's non-empty fields as a polars string Series, or None if polars
    can't read the block as CSV (rows too short, bad quoting...)."""
    import polars as pl  # imported here: only workers parse files

    if not block.strip():
        return pl.Series("x", [], dtype=pl.String)
    try:
        frame = pl.read_csv(
            block, has_header=False, separator=delimiter, infer_schema=False, columns=[column]
        )
    except pl.exceptions.PolarsError:
        return None
    return frame.to_series().drop_nulls()


def _sum_rows_exactly(
    block: bytes,
    path: str,
    first_line: Callable[[], int],
    column: int,
    delimiter: str,
    *,
    decimal: bool,
) -> tuple[ExactSum, int]:
    """Parse the rows one by one (every int exact); raise FileInputError naming a bad field
    by its line and column."""
    text = io.StringIO(block.decode("utf-8", errors="replace"), newline="")
    rows = csv.reader(text, delimiter=delimiter)
    parse: Callable[[str], int | float | Decimal] = parse_decimal if decimal else parse_number
    numbers: list[Any] = []
    for row in rows:
        if not row:
            continue
        if column >= len(row) or not (field := row[column].strip()):
            if column >= len(row):
                raise FileInputError(
                    f"line {first_line() + rows.line_num - 1} of {path} has {len(row)} fields, "
                    f"no column {column}"
                )
            continue
        try:
            numbers.append(parse(field))
        except ValueError:
            raise FileInputError(
                f"line {first_line() + rows.line_num - 1}, column {column} of {path} is "
                f"{field[:60]!r}, not a number"
            ) from None
    return (sum_decimals(numbers) if decimal else exact_sum(numbers)), len(numbers)
