"""Exact sums that merge in any order: the arithmetic that makes totals chunking-independent.

A partial sum is kept exactly as ``mantissa * 2**exponent`` (every float64 is such a
number, and so is every sum of them), together with flags: whether a float took part
(then the total is a float, as with Python's ``sum``) and which IEEE specials were seen.
Merging partials is exact integer arithmetic, so the final total is the exact sum
rounded once, correctly, to float64: the value ``math.fsum`` returns where it returns.

A sum of decimal text (``DECIMAL``) is ``mantissa * 10**exponent`` instead, and its
exponent is the smallest of its terms', as with Python's ``Decimal`` at unlimited
precision: ``0.1 + 0.2`` is ``0.3`` and ``1.50 + 2`` is ``3.50``, whatever the chunks.
"""

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Self

import numpy as np
import numpy.typing as npt

from app import binning
from app.binning import NAN as NAN  # IEEE specials seen: binning reports them
from app.binning import NEG_INF as NEG_INF
from app.binning import POS_INF as POS_INF

FLOAT = 1
DECIMAL = 16  # mantissa * 10**exponent: a sum of decimal text

# Blocks keep every intermediate NumPy sum exact: see _sum_int64.
_BLOCK = 1 << 24
_LOW32 = (1 << 32) - 1
_INT64 = np.iinfo(np.int64)
_DIGITS = 4000
_FEW_DIGITS = 10**_DIGITS  # below it, str() takes an int at once (computed once: 20 us)
JSON_EXACT_INT = 2**53
# Exponents a partial can have: float64 bits reach 2**-1074 (2**-1126 before canonical form).
_EXPONENTS = range(-1126, 1 << 40)
# A decimal's exponent: 4000 digits either side of the point (the alignment of two partials
# multiplies by 10**difference, which a bound keeps small).
DECIMAL_EXPONENTS = range(-4000, 4001)

Total = int | float | Decimal
"""A run's total: an int if every number was one, a float if one was a float, a Decimal
when summed as decimals."""


@dataclass(frozen=True, slots=True)
class ExactSum:
    """An exact sum ``mantissa * 2**exponent`` with flags; ``+`` merges two sums exactly."""

    mantissa: int = 0
    exponent: int = 0
    flags: int = 0

    @classmethod
    def of(cls, mantissa: int, exponent: int, flags: int) -> Self:
        """Return the canonical form: an odd mantissa, or zero with exponent 0 (a decimal
        sum keeps its exponent: its trailing zeros are part of its value's text)."""
        if flags & DECIMAL:
            return cls(mantissa, exponent, DECIMAL)
        if mantissa == 0:
            return cls(0, 0, flags)
        zeros = (mantissa & -mantissa).bit_length() - 1
        return cls(mantissa >> zeros, exponent + zeros, flags)

    @classmethod
    def of_ints(cls, values: npt.NDArray[np.integer]) -> Self:
        """Sum an integer array exactly, whatever its dtype and values."""
        total = sum(_sum_int64(values[i : i + _BLOCK]) for i in range(0, values.size, _BLOCK))
        return cls.of(total, 0, 0)

    @classmethod
    def of_big_ints(cls, values: list[int]) -> Self:
        """Sum Python ints of any size."""
        return cls.of(sum(values), 0, 0)

    @classmethod
    def of_floats(cls, values: npt.NDArray[np.float64]) -> Self:
        """Sum a float64 array exactly, tracking NaN and infinities as IEEE flags."""
        total, specials = binning.sum_floats(values)
        return cls.of(total, binning.FLOAT_BASE, FLOAT | specials)

    @classmethod
    def of_decimal(cls, mantissa: int, exponent: int) -> Self:
        """Return the decimal ``mantissa * 10**exponent``; raise ValueError if the exponent
        is out of :data:`DECIMAL_EXPONENTS`."""
        if exponent not in DECIMAL_EXPONENTS:
            raise ValueError(f"a decimal exponent of {exponent} is out of range")
        return cls(mantissa, exponent, DECIMAL)

    def __add__(self, other: "ExactSum") -> "ExactSum":
        if (self.flags | other.flags) & DECIMAL:
            return self._add_decimal(other)
        low = min(self.exponent, other.exponent)
        mantissa = (self.mantissa << (self.exponent - low)) + (
            other.mantissa << (other.exponent - low)
        )
        return ExactSum.of(mantissa, low, self.flags | other.flags)

    def _add_decimal(self, other: "ExactSum") -> "ExactSum":
        if not self.flags and not self.mantissa:  # the empty sum, of a chunk with no number
            return other
        if not other.flags and not other.mantissa:
            return self
        if self.flags != other.flags:
            raise ValueError("a decimal sum and a binary one cannot be added exactly")
        low = min(self.exponent, other.exponent)
        mantissa = self.mantissa * 10 ** (self.exponent - low)
        return ExactSum(mantissa + other.mantissa * 10 ** (other.exponent - low), low, DECIMAL)

    def value(self) -> Total:
        """Return the total: an int if no float took part, else the correctly rounded float;
        a Decimal for a decimal sum."""
        if self.flags & DECIMAL:
            return Decimal(f"{_decimal(self.mantissa)}E{self.exponent}")
        if self.flags & NAN or self.flags & (POS_INF | NEG_INF) == POS_INF | NEG_INF:
            return math.nan
        if self.flags & POS_INF:
            return math.inf
        if self.flags & NEG_INF:
            return -math.inf
        if not self.flags & FLOAT:
            return self.mantissa << self.exponent
        try:
            # int -> float and int / int are correctly rounded (round half to even) in CPython
            if self.exponent >= 0:
                return float(self.mantissa << self.exponent)
            return self.mantissa / (1 << -self.exponent)
        except OverflowError:
            # not copysign(inf, mantissa): that converts the mantissa, which may overflow too
            return math.inf if self.mantissa > 0 else -math.inf

    def to_wire(self) -> list[int | bytes]:
        """Return a msgpack-able form; mantissas beyond 64 bits travel as signed bytes."""
        if _INT64.min <= self.mantissa <= _INT64.max:
            return [self.mantissa, self.exponent, self.flags]
        size = self.mantissa.bit_length() // 8 + 1
        return [self.mantissa.to_bytes(size, "little", signed=True), self.exponent, self.flags]

    @classmethod
    def from_wire(cls, wire: object) -> Self:
        """Rebuild a sum from :meth:`to_wire`'s form; raise ValueError if it is malformed."""
        match wire:
            case [int() | bytes() as mantissa, int() as exponent, int() as flags] if (
                exponent in DECIMAL_EXPONENTS
                if flags == DECIMAL
                else exponent in _EXPONENTS and 0 <= flags < DECIMAL
            ):
                if isinstance(mantissa, bytes):
                    mantissa = int.from_bytes(mantissa, "little", signed=True)
                return cls.of(mantissa, exponent, flags)
        raise ValueError(f"not an exact partial sum: {wire!r:.80}")


def total_text(total: Total) -> tuple[str, str]:
    """Return (text, type) as stored in Redis: a decimal int, a float's round-trip repr, or
    a Decimal in positional notation (``0.30``, never ``3.0E-1``)."""
    if isinstance(total, int):
        return _decimal(total), "int"
    if isinstance(total, Decimal):
        return format(total, "f"), "decimal"
    return repr(total), "float"


def json_total(total: Total | None) -> int | float | str | None:
    """Return a total as every JSON reader reads it exactly: a number for an int within
    ±2**53 or a finite float, else its text (huge ints, NaN, infinities, decimals).

    JavaScript, and so the dashboard, reads JSON numbers as float64s, which hold ints
    exactly only up to 2**53; and JSON has no NaN, infinities or decimals.
    """
    if isinstance(total, Decimal):
        return format(total, "f")
    if isinstance(total, int) and abs(total) > JSON_EXACT_INT:
        return _decimal(total)
    if isinstance(total, float) and not math.isfinite(total):
        return repr(total)
    return total


def parse_total(text: str, kind: str) -> Total:
    """Invert :func:`total_text`."""
    if kind == "decimal":
        return Decimal(text)
    if kind != "int":
        return float(text)
    return parse_int(text)


def parse_int(text: str) -> int:
    """Parse an int's decimal text of any length (``int()`` refuses over 4300 digits)."""
    sign, digits = (-1, text[1:]) if text.startswith("-") else (1, text)
    value = 0
    for start in range(0, len(digits), _DIGITS):  # int() refuses over 4300 digits at once
        piece = digits[start : start + _DIGITS]
        value = value * 10 ** len(piece) + int(piece)
    return sign * value


def _decimal(value: int) -> str:
    # str() refuses ints of over 4300 digits (CVE-2020-10735 guard): split them in halves
    if value < 0:
        return "-" + _decimal(-value)
    if value < _FEW_DIGITS:
        return str(value)
    half = int(value.bit_length() * math.log10(2)) // 2
    high, low = divmod(value, 10**half)
    return _decimal(high) + _decimal(low).zfill(half)


def _sum_int64(values: npt.NDArray[np.integer]) -> int:
    if values.dtype.itemsize < 8:
        # fewer than 2**32 values of at most 32 bits: an int64 accumulator can't overflow
        return int(values.sum(dtype=np.int64))
    if values.size:
        # values this far from 2**63 can't overflow an int64 accumulator: one pass, no copies
        largest = max(-int(values.min()), int(values.max()))
        if largest * values.size < 2**63:
            return int(values.sum(dtype=np.int64))
    accumulator = np.uint64 if values.dtype.kind == "u" else np.int64
    low = (values & _LOW32).sum(dtype=accumulator)
    high = (values >> 32).sum(dtype=accumulator)
    return (int(high) << 32) + int(low)
