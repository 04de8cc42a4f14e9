"""Text of one number a line, read by polars as one column: how a worker parses the lines
it sums (app.files as ints or floats, app.decimals as decimals)."""

from typing import Any


def read_column(block: bytes, dtype: Any) -> Any:
    """Return a block's non-blank lines as a polars Series of ``dtype`` (a blank line reads
    as null and is dropped), or None if polars can't parse every line so (not numbers, or
    not one a line: the line parser then says which).

    Args:
        dtype: a polars data type, e.g. ``pl.Int64`` or ``pl.Decimal(38, 2)``.
    """
    import polars as pl  # imported here: only workers parse files

    try:
        column = pl.read_csv(
            block,
            has_header=False,
            new_columns=["x"],
            schema_overrides={"x": dtype},
            separator="\x1f",  # no delimiter, and no quoting: a line is a field
            quote_char=None,
        )["x"]
    except pl.exceptions.PolarsError:
        return None
    return column.drop_nulls()
