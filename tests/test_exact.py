"""Tests for app.exact: exact partial sums that merge in any order and round once."""

import itertools
import math
import sys
from collections.abc import Sequence
from fractions import Fraction
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import codec, exact
from app.exact import (
    FLOAT,
    NAN,
    NEG_INF,
    POS_INF,
    ExactSum,
    json_total,
    parse_total,
    total_text,
)

MAX = sys.float_info.max
TINY = 5e-324  # the smallest subnormal

finite_floats = st.floats(allow_nan=False, allow_infinity=False)
# Values a few binades apart from each other, so that sums cancel and carry across exponents.
wide_floats = st.builds(
    math.ldexp,
    st.floats(min_value=-1.0, max_value=1.0, exclude_min=True, exclude_max=True),
    st.integers(min_value=-1080, max_value=1024),  # |x| < 2**1024: always finite
)
subnormals = st.floats(min_value=-2.2250738585072014e-308, max_value=2.2250738585072014e-308)
float_lists = st.lists(st.one_of(finite_floats, wide_floats, subnormals), max_size=40)
big_ints = st.integers(min_value=-(2**200), max_value=2**200)


def exact_float(values: Sequence[float]) -> float:
    """Return the exact sum of ``values`` rounded once to float64, overflowing to +-inf."""
    exact_sum = sum((Fraction(v) for v in values), Fraction(0))
    try:
        return float(exact_sum)
    except OverflowError:
        return math.inf if exact_sum > 0 else -math.inf


def of_values(values: list[float]) -> ExactSum:
    """Return the exact sum of a list of floats."""
    return ExactSum.of_floats(np.array(values, dtype=np.float64))


def merge_in_order(partials: list[ExactSum], order: list[int]) -> ExactSum:
    """Merge partials in the order given by a permutation of their indexes."""
    total = ExactSum()
    for i in order:
        total += partials[i]
    return total


@st.composite
def chunked(
    draw: st.DrawFn, values: st.SearchStrategy[list[float]]
) -> tuple[list[float], list[list[float]], list[int]]:
    """Draw values, a split of them into chunks (some may be empty) and a merge order."""
    drawn = draw(values)
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(drawn)), max_size=8)))
    bounds = [0, *cuts, len(drawn)]
    chunks = [drawn[a:b] for a, b in itertools.pairwise(bounds)]
    order = draw(st.permutations(range(len(chunks))))
    return drawn, chunks, list(order)


@given(chunked(float_lists))
def test_any_chunking_and_merge_order_gives_fsum(
    case: tuple[list[float], list[list[float]], list[int]],
) -> None:
    """Any chunking of finite floats, merged in any order, equals math.fsum of the values.

    Compared with ``==``: an exact zero sum is +0.0 here, while fsum may return -0.0 when every
    input is -0.0; 0.0 == -0.0, so that difference (by design) does not fail the test.
    fsum raises OverflowError on intermediate overflow, so the exact rounding is checked too.
    """
    values, chunks, order = case
    total = merge_in_order([of_values(chunk) for chunk in chunks], order).value()
    assert isinstance(total, float)
    assert total == exact_float(values)
    try:
        expected = math.fsum(values)
    except OverflowError:
        return
    assert total == expected


@given(st.lists(st.lists(st.one_of(wide_floats, subnormals), max_size=10), max_size=6), st.data())
def test_merging_is_associative(chunks: list[list[float]], data: st.DataObject) -> None:
    """Merging partials pairwise in a random tree gives the same canonical sum as a left fold."""
    partials = [of_values(chunk) for chunk in chunks]
    folded = merge_in_order(partials, list(range(len(partials))))
    pool = list(partials) or [ExactSum()]
    while len(pool) > 1:
        a = pool.pop(data.draw(st.integers(0, len(pool) - 1)))
        b = pool.pop(data.draw(st.integers(0, len(pool) - 1)))
        pool.append(b + a)
    assert (pool[0].mantissa, pool[0].exponent) == (folded.mantissa, folded.exponent)


@given(st.lists(wide_floats, min_size=1, max_size=30))
def test_block_boundaries_do_not_change_the_sum(values: list[float]) -> None:
    """Summing floats in tiny blocks (forcing the multi-block path) still gives the exact sum."""
    with mock.patch.object(exact, "_BLOCK", 3):
        total = of_values(values).value()
    assert total == exact_float(values)


def test_all_negative_zeros_sum_to_positive_zero() -> None:
    """An exact zero sum is +0.0, even when every input is -0.0 (fsum may give -0.0)."""
    total = of_values([-0.0, -0.0]).value()
    assert total == 0.0
    assert math.copysign(1.0, total) == 1.0


def test_subnormals_sum_exactly() -> None:
    """Sums of subnormals are exact and rounded once, down to the smallest subnormal."""
    values = [TINY, TINY, -1e-320, 2.2250738585072014e-308, -2.225073858507201e-308]
    assert of_values(values).value() == math.fsum(values)
    assert of_values([TINY] * 3).value() == 3 * TINY


def test_catastrophic_cancellation_is_exact() -> None:
    """Large values that cancel leave the small ones intact, unlike naive summation."""
    values = [1e100, 1.0, -1e100, 1e-100]
    assert of_values(values).value() == 1.0 + 1e-100
    assert of_values([1e16, 1.0, -1e16]).value() == 1.0


@given(st.lists(big_ints, max_size=30), st.integers(min_value=0, max_value=30))
def test_big_ints_sum_exactly_as_int(values: list[int], cut: int) -> None:
    """Python ints of any size (beyond 2**64, negative) sum exactly, to an int, over chunks."""
    total = (ExactSum.of_big_ints(values[:cut]) + ExactSum.of_big_ints(values[cut:])).value()
    assert type(total) is int
    assert total == sum(values)


@pytest.mark.parametrize(
    "dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
)
def test_int_array_extremes_sum_exactly(dtype: type[np.integer]) -> None:
    """Arrays at their dtype's min and max sum exactly, with no wrap-around."""
    info = np.iinfo(dtype)
    values = np.array([info.max] * 1000 + [info.min] * 7 + [info.max] * 5, dtype=dtype)
    total = ExactSum.of_ints(values).value()
    assert type(total) is int
    assert total == 1005 * int(info.max) + 7 * int(info.min)


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.uint64])
def test_int_blocks_sum_exactly(dtype: type[np.integer]) -> None:
    """Summing ints in tiny blocks (the multi-block path) gives the same exact int."""
    info = np.iinfo(dtype)
    values = np.array([info.max, info.min, info.max, info.max, 3, info.max, info.min], dtype=dtype)
    with mock.patch.object(exact, "_BLOCK", 2):
        total = ExactSum.of_ints(values).value()
    assert total == sum(int(v) for v in values)


@pytest.mark.parametrize("value", [2**62 - 1, 2**62, -(2**62), -(2**62) + 1, 2**63 - 1])
def test_int64_sums_at_the_edge_of_a_plain_int64_sum_are_exact(value: int) -> None:
    """Two values whose sum just fits an int64, or just doesn't, sum exactly: the one-pass
    sum is taken only where no int64 sum of them can overflow."""
    values = np.full(2, value, dtype=np.int64)
    assert ExactSum.of_ints(values).value() == 2 * value


def test_int64_extremes_sum_beyond_64_bits() -> None:
    """int64 and uint64 maxima add up past 2**64 exactly."""
    int64 = ExactSum.of_ints(np.full(4, np.iinfo(np.int64).max, dtype=np.int64))
    uint64 = ExactSum.of_ints(np.full(4, np.iinfo(np.uint64).max, dtype=np.uint64))
    assert (int64 + uint64).value() == 4 * (2**63 - 1) + 4 * (2**64 - 1)


@given(
    st.lists(big_ints, max_size=15), st.lists(st.one_of(finite_floats, wide_floats), max_size=15)
)
def test_ints_and_floats_give_the_correctly_rounded_float(
    ints: list[int], floats: list[float]
) -> None:
    """Mixing ints and floats gives a float: the exact sum of all of them, rounded once."""
    total = (ExactSum.of_big_ints(ints) + of_values(floats)).value()
    assert isinstance(total, float)
    assert total == exact_float([*ints, *floats])


def test_mixed_sum_is_not_rounded_per_term() -> None:
    """An int beyond 2**53 plus a float keeps the int's low bits until the one final rounding."""
    total = (ExactSum.of_big_ints([2**53 + 1]) + of_values([0.5, 0.5])).value()
    assert total == 2.0**53 + 2


def test_pure_ints_stay_int() -> None:
    """A sum to which no float contributed is an int, even when it is zero."""
    assert ExactSum.of_big_ints([]).value() == 0
    assert type(ExactSum.of_big_ints([3, -3]).value()) is int
    assert type(ExactSum().value()) is int


def test_float_flag_survives_a_zero_float_chunk() -> None:
    """A float chunk summing to zero still makes the total a float."""
    total = (ExactSum.of_big_ints([2]) + of_values([0.0])).value()
    assert type(total) is float
    assert total == 2.0


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([[1.0, math.nan], [2.0]], math.nan),
        ([[1.0, math.inf], [2.0]], math.inf),
        ([[-math.inf, 1.0], [MAX]], -math.inf),
        ([[math.inf], [-math.inf]], math.nan),
        ([[math.inf, -math.inf]], math.nan),
        ([[math.inf, math.inf], [math.inf]], math.inf),
        ([[math.nan], [math.inf]], math.nan),
    ],
)
def test_specials_follow_ieee(chunks: list[list[float]], expected: float) -> None:
    """NaN, +inf, -inf, and +inf with -inf (even in separate chunks) give nan, inf, -inf, nan."""
    total = merge_in_order([of_values(c) for c in chunks], list(range(len(chunks)))).value()
    if math.isnan(expected):
        assert math.isnan(total)
    else:
        assert total == expected


def test_specials_set_flags() -> None:
    """NaN and the infinities are recorded as flags, and finite values are still summed."""
    partial = of_values([math.nan, math.inf, -math.inf, 1.5])
    assert partial.flags == FLOAT | NAN | POS_INF | NEG_INF
    assert (partial.mantissa, partial.exponent) == (3, -1)


def test_ints_plus_infinity_is_infinity() -> None:
    """An infinity in a float chunk dominates any int chunk."""
    assert (ExactSum.of_big_ints([-(2**2000)]) + of_values([math.inf])).value() == math.inf


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([MAX, MAX], math.inf),
        ([-MAX, -MAX], -math.inf),
        ([MAX, MAX, -MAX], MAX),
        ([MAX, 2.0**969], MAX),  # below half an ulp: rounds down to the largest float
        ([MAX, 2.0**970], math.inf),  # a tie: rounds to even, which is 2**1024, i.e. inf
        ([-MAX, -(2.0**970)], -math.inf),
    ],
)
def test_overflow_of_a_finite_exact_sum(values: list[float], expected: float) -> None:
    """A finite exact sum beyond float64's range rounds to +-inf; just below it, to max."""
    assert of_values(values).value() == expected


def test_overflow_with_negative_exponent() -> None:
    """A sum that needs a negative exponent (a subnormal term) still overflows to inf."""
    assert of_values([MAX, MAX, TINY]).value() == math.inf
    assert of_values([-MAX, -MAX, TINY]).value() == -math.inf


def test_of_canonicalises() -> None:
    """ExactSum.of strips trailing zero bits from the mantissa and zeroes the exponent of 0."""
    assert ExactSum.of(12, 3, FLOAT) == ExactSum(3, 5, FLOAT)
    assert ExactSum.of(0, 99, NAN) == ExactSum(0, 0, NAN)
    assert ExactSum.of(-8, 0, 0) == ExactSum(-1, 3, 0)


@pytest.mark.parametrize(
    "partial",
    [
        ExactSum(),
        ExactSum(-5, -1074, FLOAT),
        ExactSum(2**63 - 1, 0, 0),
        ExactSum(-(2**63) + 1, 0, 0),
        ExactSum(2**63 + 1, 10, FLOAT | POS_INF),
        ExactSum(-(2**63) - 1, 0, 0),
        ExactSum(3**500, -1100, FLOAT | NAN),
        ExactSum(-(3**500), 7, 0),
    ],
)
def test_wire_round_trip(partial: ExactSum) -> None:
    """to_wire/from_wire round-trips through msgpack, huge mantissas as signed bytes."""
    wire = partial.to_wire()
    assert isinstance(wire[0], bytes) == (not -(2**63) <= partial.mantissa < 2**63)
    assert ExactSum.from_wire(codec.loads(codec.dumps(wire))) == partial


@given(st.integers(), st.integers(min_value=-1126, max_value=5000), st.integers(0, 15))
def test_wire_round_trip_property(mantissa: int, exponent: int, flags: int) -> None:
    """Any canonical sum survives to_wire, msgpack and from_wire unchanged."""
    partial = ExactSum.of(mantissa, exponent, flags)
    assert ExactSum.from_wire(codec.loads(codec.dumps(partial.to_wire()))) == partial


def test_from_wire_canonicalises() -> None:
    """from_wire returns the canonical form of a non-canonical wire value."""
    assert ExactSum.from_wire([8, 1, 0]) == ExactSum(1, 4, 0)


@pytest.mark.parametrize(
    "wire",
    [
        None,
        "1,2,3",
        b"\x01\x02\x03",
        42,
        [],
        [1, 2],
        [1, 2, 3, 4],
        [1.5, 0, 0],
        ["1", 0, 0],
        [1, 0.5, 0],
        [1, 0, None],
        [None, 0, 0],
        [bytearray(b"\x01"), 0, 0],
        {"mantissa": 1, "exponent": 0, "flags": 0},
    ],
)
def test_from_wire_rejects_malformed_input(wire: object) -> None:
    """Anything but [int-or-bytes, int, int] raises ValueError."""
    with pytest.raises(ValueError, match="not an exact partial sum"):
        ExactSum.from_wire(wire)


@pytest.mark.parametrize(
    ("total", "expected"),
    [
        (0, ("0", "int")),
        (-(2**100), (str(-(2**100)), "int")),
        (0.1, ("0.1", "float")),
        (-0.0, ("-0.0", "float")),
        (math.inf, ("inf", "float")),
        (-math.inf, ("-inf", "float")),
        (1e300, ("1e+300", "float")),
    ],
)
def test_total_text(total: int | float, expected: tuple[str, str]) -> None:
    """Totals are stored as decimal ints or float reprs, tagged with their type."""
    assert total_text(total) == expected


@given(st.one_of(st.integers(), st.floats(allow_nan=False)))
def test_total_text_round_trip(total: int | float) -> None:
    """parse_total inverts total_text, keeping the type and the exact value (and -0.0's sign)."""
    parsed = parse_total(*total_text(total))
    assert type(parsed) is type(total)
    assert parsed == total
    if isinstance(total, float):
        assert math.copysign(1.0, parsed) == math.copysign(1.0, total)


def test_total_text_round_trips_nan() -> None:
    """A NaN total is stored as 'nan' and parsed back as a float NaN."""
    text, kind = total_text(math.nan)
    parsed = parse_total(text, kind)
    assert isinstance(parsed, float)
    assert math.isnan(parsed)


@pytest.mark.parametrize(
    ("total", "expected"),
    [
        (2**53, 2**53),
        (-(2**53), -(2**53)),
        (2**53 + 1, "9007199254740993"),
        (-(10**30), "-1" + "0" * 30),
        (0.1, 0.1),
        (math.inf, "inf"),
        (math.nan, "nan"),
        (None, None),
    ],
)
def test_json_totals_are_exact_in_every_reader(total: int | float | None, expected: object) -> None:
    """A total goes into JSON as a number only where every reader (JavaScript's float64s
    included) reads it exactly; huge ints, NaN and infinities go as text."""
    assert json_total(total) == expected
