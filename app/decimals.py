"""Decimal text summed exactly as decimals (``--decimal``, ``decimal=True``): 0.1 + 0.2 is
0.3, as a ledger expects, not the float 0.30000000000000004.

A block of lines (or a CSV column) is read by polars as 128-bit decimals at the block's own
scale, the most digits after the point in any of its lines, so that no digit is rounded;
their integers (the values times 10**scale) are summed exactly. A block it can't read so (an
exponent, over 38 digits, a line that is not a number) is parsed line by line with Python's
``Decimal``, which keeps every digit and names a bad line. Either way the sum's exponent is
the smallest of its terms' (see app.exact), so the total is the same for any chunks.
"""

import decimal
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from app.columns import read_column
from app.exact import DECIMAL_EXPONENTS, ExactSum

MAX_DIGITS = 38  # a 128-bit decimal's, in polars as in Arrow
_INT128_MAX = (1 << 127) - 1
_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
_DIGIT_0, _POINT = ord("0"), ord(".")


def parse_decimal(text: str) -> Decimal:
    """Parse one number's text as an exact decimal (``12.30``, ``-1e3``, ``1_000``); raise
    ValueError if it is not a finite decimal within :data:`app.exact.DECIMAL_EXPONENTS`."""
    try:
        value = Decimal(text)
    except decimal.InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal number") from None
    if not value.is_finite() or value.as_tuple().exponent not in DECIMAL_EXPONENTS:
        raise ValueError(f"{text!r} is not a finite decimal of at most 4000 places")
    return value


def sum_decimals(values: Iterable[Decimal]) -> ExactSum:
    """Sum decimals exactly (an empty sum is still a decimal one)."""
    total = _EXACT.create_decimal(0)
    for value in values:
        total = _EXACT.add(total, value)
    return exact_decimal(total)


def exact_decimal(value: Decimal) -> ExactSum:
    """Return a finite Decimal as an exact decimal sum."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite: not 'n', 'N' or 'F'
    return ExactSum.of_decimal(int(value.scaleb(-exponent, _EXACT)), exponent)


def sum_decimal_block(block: bytes) -> tuple[ExactSum, int] | None:
    """Sum a block of whole lines of decimals (blank lines skipped) exactly, or return None
    if polars can't read every line as a decimal of at most 38 digits without an exponent
    (then the caller parses them one by one)."""
    import polars as pl  # imported here: only workers parse files

    # an exponent shifts the point, which the scale below doesn't count
    if b"e" in block or b"E" in block or (scale := _scale(block)) > MAX_DIGITS:
        return None
    column = read_column(block, pl.Decimal(MAX_DIGITS, scale))
    return None if column is None else _sum_scaled(column, scale)


def sum_decimal_strings(strings: Any) -> tuple[ExactSum, int] | None:
    """Sum a polars Series of decimal texts exactly (surrounding spaces allowed), or return
    None if polars can't read every one as a decimal of at most 38 digits."""
    import polars as pl

    texts = strings.str.strip_chars()
    if texts.str.contains("[eE]").any():
        return None
    places = texts.str.len_bytes() - texts.str.find(".", literal=True) - 1
    scale = int(places.max() or 0)
    if scale > MAX_DIGITS:
        return None
    try:
        column = texts.cast(pl.Decimal(MAX_DIGITS, scale), strict=True)
    except pl.exceptions.PolarsError:
        return None
    return _sum_scaled(column, scale)


def _sum_scaled(column: Any, scale: int) -> tuple[ExactSum, int]:
    """Sum a polars decimal column exactly through its 128-bit integers."""
    scaled = column.to_physical()  # Int128: each value times 10**scale
    count = scaled.len()
    largest = int(scaled.abs().max() or 0)
    # polars' Int128 sum wraps on overflow: only where it can't, else Python's ints
    total = int(scaled.sum()) if largest * count <= _INT128_MAX else sum(scaled.to_list())
    return ExactSum.of_decimal(total, -scale), count


def _scale(block: bytes) -> int:
    """Return the most digits that follow a point in ``block`` (0 if it has none); stop
    counting past :data:`MAX_DIGITS`."""
    first = block.find(b".")
    if first < 0:
        return 0
    # Most files give every number the same places: guess the first number's, then check in
    # one vectorised pass that no point has a digit past that many (one with more would).
    # A digit there can also be the next line's, after a number with fewer: then count all.
    guess = len(block[first + 1 : first + MAX_DIGITS + 2]) - len(
        block[first + 1 : first + MAX_DIGITS + 2].lstrip(b"0123456789")
    )
    data = np.frombuffer(block, dtype=np.uint8)
    points, shift = data == _POINT, guess + 1
    if shift >= data.size or not np.any(points[:-shift] & ((data[shift:] - _DIGIT_0) < 10)):
        return guess
    return _places(data, np.flatnonzero(points))


def _places(data: npt.NDArray[np.uint8], points: npt.NDArray[np.intp]) -> int:
    """Return the most digits that follow any of ``points``, up to MAX_DIGITS + 1."""
    following, places = points + 1, 0
    while following.size and places <= MAX_DIGITS:
        following = following[following < data.size]
        following = following[_digits(data, following)] + 1
        places += bool(following.size)
    return places


def _digits(data: npt.NDArray[np.uint8], at: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
    """Whether each byte of ``data`` at ``at`` is an ASCII digit."""
    return (data[at] - _DIGIT_0) < 10  # uint8: wraps below 0
