"""Tests for app.codec: chunk payloads round-trip exactly and untrusted bytes never run code."""

import contextlib
import math
import pathlib
import pickle
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt
import pytest
from arq.jobs import serialize_job
from hypothesis import given
from hypothesis import strategies as st

from app import codec
from app.chunking import ListSlice
from app.errors import InvalidNumberError, PayloadError
from app.exact import Total

INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
FLOAT_DTYPES = [np.float16, np.float32, np.float64]
LONGDOUBLE_IS_WIDE = np.finfo(np.longdouble).bits > 64


class Planted:
    """An object whose unpickling would create a marker file: proof that code ran."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        """Tell pickle to rebuild this object by touching the marker file."""
        return pathlib.Path.touch, (self.marker,)


def round_trip(values: Sequence[object] | npt.NDArray[Any], offset: int = 0) -> Total:
    """Encode a chunk, pass it through msgpack as arq would, decode and sum it."""
    parts = codec.encode_chunk(values, offset)
    return codec.sum_parts(codec.loads(codec.dumps(parts))).value()


def as_fraction(value: object) -> Fraction:
    """Return a Python or NumPy number as an exact Fraction."""
    if isinstance(value, int | np.integer):
        return Fraction(int(value))
    assert isinstance(value, float | np.floating)
    return Fraction(float(value))


def exact_float(values: Sequence[object]) -> float:
    """Return the exact sum of numbers (Python or NumPy) rounded once, overflowing to +-inf."""
    exact = sum(map(as_fraction, values), Fraction(0))
    try:
        return float(exact)
    except OverflowError:
        return math.inf if exact > 0 else -math.inf


def kinds(values: Sequence[object] | npt.NDArray[Any]) -> list[str]:
    """Return the kinds of the parts a chunk encodes to."""
    return [kind for kind, _ in codec.encode_chunk(values, 0)]


@pytest.mark.parametrize(
    "values",
    [
        [1, 2, 3],
        (4, -5, 6),
        [-(2**63), 2**63 - 1, 7],
        [2**64 - 1, 2**64 - 1],
        [2**200, -(3**150), 1, -1],
        [True, False, True, 4],
    ],
)
def test_int_sequences_round_trip_to_exact_ints(values: Sequence[int]) -> None:
    """Lists and tuples of ints (big ones and bools too) come back as their exact int sum."""
    total = round_trip(values)
    assert type(total) is int
    assert total == sum(values)


@pytest.mark.parametrize(
    "values",
    [
        range(10),
        range(-5, 100, 7),
        range(10, -10, -3),
        range(2**63 - 3, 2**63),
        range(2**63 - 2, 2**63 + 3),
        range(2**64 - 2, 2**64 + 5),
        range(-(2**63) - 3, -(2**63) + 3),
        range(2**100, 2**100 + 50, 7),
        range(-(2**90), -(2**90) - 20, -3),
    ],
)
def test_ranges_round_trip_including_beyond_int64(values: range) -> None:
    """Ranges, inside and beyond int64, decode to their exact int sum."""
    total = round_trip(values)
    assert type(total) is int
    assert total == sum(values)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_int_arrays_of_every_dtype_round_trip(dtype: type[np.integer]) -> None:
    """Int arrays of every dtype, at their extremes, decode to their exact int sum."""
    info = np.iinfo(dtype)
    values = np.array([info.min, info.max, info.max, 1, 0, info.min], dtype=dtype)
    total = round_trip(values)
    assert type(total) is int
    assert total == sum(int(v) for v in values)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_big_endian_int_arrays_round_trip(dtype: type[np.integer]) -> None:
    """Non-native byte order is converted, not misread."""
    info = np.iinfo(dtype)
    values = np.array([info.max, info.min, 3], dtype=np.dtype(dtype).newbyteorder(">"))
    assert round_trip(values) == int(info.max) + int(info.min) + 3


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_float_arrays_of_every_dtype_round_trip(dtype: type[np.floating]) -> None:
    """float16/32/64 arrays widen exactly and sum to the correctly rounded float."""
    info = np.finfo(dtype)
    values = np.array([info.max, info.tiny, -info.max, info.smallest_subnormal, 0.5], dtype=dtype)
    total = round_trip(values)
    assert type(total) is float
    assert total == math.fsum(float(v) for v in values)


def test_bool_arrays_round_trip() -> None:
    """Bool arrays count their True values, as Python's sum does."""
    values = np.array([True, False, True, True])
    assert kinds(values) == ["i1"]
    assert round_trip(values) == 3


def test_two_dimensional_arrays_are_flattened() -> None:
    """A 2-D array is summed over all its elements."""
    values = np.arange(12, dtype=np.int32).reshape(3, 4)
    assert round_trip(values) == 66
    assert round_trip(np.full((2, 3), 0.1)) == math.fsum([0.1] * 6)


def test_float_specials_round_trip() -> None:
    """NaN and infinities in a float chunk reach the decoder as IEEE specials."""
    assert math.isnan(round_trip([1.0, math.nan]))
    assert round_trip(np.array([math.inf, 1.0])) == math.inf
    assert math.isnan(round_trip([math.inf, -math.inf]))


@pytest.mark.parametrize(
    "values",
    [
        [1, 2.5, -3],
        [2**53 + 1, 0.5, 0.5],
        [2**80, 1e-3, np.float32(0.1), np.int16(-7)],
        [np.int64(5), np.uint64(2**64 - 1), 1.5],
        [0.1, 0.2, 0.3],
        (4, 2.0),  # a float that an int conversion would take for an int: still a float
    ],
)
def test_mixed_lists_sum_to_the_correctly_rounded_float(values: Sequence[object]) -> None:
    """Mixing ints and floats gives a float equal to the exact sum rounded once."""
    total = round_trip(values)
    assert type(total) is float
    assert total == exact_float(values)


def test_a_list_slice_packs_like_its_list() -> None:
    """A chunk read in place packs as its copy would: ints as int64, a float among ints as a
    float, an int beyond 64 bits exactly, and a non-number is named by its position."""
    numbers = [7, -(2**40), 3, 2.5, 1, "x"]
    assert kinds(ListSlice(numbers, 0, 3)) == kinds(numbers[:3]) == ["i8"]
    assert round_trip(ListSlice(numbers, 1, 5)) == exact_float(numbers[1:5])
    assert round_trip(ListSlice([5, 2**70, -1, 9], 1, 3)) == 2**70 - 1  # beyond int64
    with pytest.raises(InvalidNumberError, match="item 1004 of the input"):
        codec.encode_chunk(ListSlice(numbers, 1, 6), 1000)


def test_ints_in_a_float_list_are_not_rounded() -> None:
    """An int beyond 2**53 keeps its low bits until the single final rounding."""
    assert round_trip([2**53 + 1, 0.5, 0.5]) == 2.0**53 + 2


@given(
    st.lists(
        st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False)),
        min_size=1,
        max_size=30,
    ),
    st.integers(min_value=0, max_value=10**9),
)
def test_any_list_of_numbers_round_trips(values: list[int | float], offset: int) -> None:
    """Any list of ints and finite floats round-trips to its exact sum (an int if all ints)."""
    total = round_trip(values, offset)
    if all(type(v) is int for v in values):
        assert type(total) is int
        assert total == sum(values)
    else:
        assert type(total) is float
        assert total == exact_float(values)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, -128, 127], ["i1"]),
        ([128], ["i2"]),
        ([-32769], ["i4"]),
        ([2**31], ["i8"]),
        ([-(2**63)], ["i8"]),
        ([2**63], ["u8"]),
        ([2**64 - 1], ["u8"]),
        (np.array([2**62], dtype=np.uint64), ["i8"]),
        (np.array([200], dtype=np.int64), ["i2"]),
        (range(1000), ["i2"]),
        ([2**64], ["big"]),
        ([1, 2**64, 0.5], ["i1", "big", "f8"]),
        ([0.5, 1.5], ["f8"]),
    ],
)
def test_the_narrowest_int_kind_is_chosen(
    values: Sequence[object] | npt.NDArray[Any], expected: list[str]
) -> None:
    """Ints are packed in the narrowest kind that holds the chunk's min and max."""
    assert kinds(values) == expected


@pytest.mark.parametrize(
    ("values", "index"),
    [
        (["1"], 0),
        ([1, 2, None], 2),
        ([1.5, b"2"], 1),
        ([1, [2, 3]], 1),
        ([[1, 2], [3, 4]], 0),
        ([[1], [2, 3]], 0),
        ([1, {"a": 1}], 1),
        ([1, 2j], 1),
        ([Decimal("1.5")], 0),
        (np.array([1, "x"], dtype=object), 1),
        (np.array([1 + 2j]), 0),
        (np.array(["a", "b"]), 0),
    ],
)
def test_non_numbers_raise_with_their_position(
    values: Sequence[object] | npt.NDArray[Any], index: int
) -> None:
    """A non-number raises InvalidNumberError whose position is the chunk offset plus its index."""
    with pytest.raises(InvalidNumberError, match=f"item {1000 + index} of the input") as info:
        codec.encode_chunk(values, 1000)
    assert info.value.position == 1000 + index


@pytest.mark.skipif(not LONGDOUBLE_IS_WIDE, reason="longdouble is float64 on this platform")
def test_wide_longdouble_arrays_are_refused() -> None:
    """A longdouble array wider than 64 bits can't be summed exactly as float64, so it raises."""
    with pytest.raises(InvalidNumberError, match=r"astype\(float\)") as info:
        codec.encode_chunk(np.array([1.0, 2.0], dtype=np.longdouble), 40)
    assert info.value.position == 40


@pytest.mark.skipif(not LONGDOUBLE_IS_WIDE, reason="longdouble is float64 on this platform")
def test_wide_longdouble_scalars_are_refused() -> None:
    """A longdouble scalar in a list raises with its own position."""
    with pytest.raises(InvalidNumberError) as info:
        codec.encode_chunk([1.0, np.longdouble(2.0)], 7)
    assert info.value.position == 8


@pytest.mark.parametrize(
    "payload",
    [
        None,
        b"i8",
        {"i8": b""},
        [],
        [["i3", b"\x00"]],
        [["I8", b"\x00" * 8]],
        [["i8", b"\x00" * 7]],
        [["i2", b"\x00" * 3]],
        [["f8", b"\x00" * 9]],
        [["big", [b"\x01", 2]]],
        [["big", [b"\x01", "2"]]],
        [["big", b"\x01"]],
        [["i8", "not bytes"]],
        [["f8", [1.0]]],
        [["i8"]],
        [["i8", b"\x00" * 8, "extra"]],
        ["i8", b"\x00" * 8],
        [[b"i8", b"\x00" * 8]],
        [["i1", b"\x01"], "junk"],
    ],
)
def test_malformed_payloads_raise_payload_error(payload: object) -> None:
    """A payload that is not a non-empty list of well-formed parts raises PayloadError."""
    with pytest.raises(PayloadError):
        codec.sum_parts(payload)


def test_unknown_kind_error_lists_the_known_kinds() -> None:
    """The error for an unknown part names the kinds this worker can decode."""
    with pytest.raises(PayloadError, match="i1, i2, i4, i8, u8, f8, big"):
        codec.sum_parts([["pickle", b"\x80\x05."]])


def test_planted_pickle_in_a_part_is_never_unpickled(tmp_path: pathlib.Path) -> None:
    """Pickle bytes inside a part decode as plain numbers or raise PayloadError, never run."""
    marker = tmp_path / "pwned"
    blob = pickle.dumps(Planted(marker))
    for kind in ("i1", "i8", "u8", "f8"):
        for data in (blob, blob + b"\x00" * (-len(blob) % 8)):
            with contextlib.suppress(PayloadError):
                total = codec.sum_parts(codec.loads(codec.dumps([[kind, data]]))).value()
                assert isinstance(total, int | float)
    assert codec.sum_parts([["big", [blob]]]).value() == int.from_bytes(blob, "little", signed=True)
    assert not marker.exists()


def test_pickled_arq_job_is_refused_without_running_code(tmp_path: pathlib.Path) -> None:
    """A job pickled by arq's default serializer makes codec.loads raise, and runs nothing."""
    control, marker = tmp_path / "control", tmp_path / "pwned"
    pickle.loads(pickle.dumps(Planted(control)))
    assert control.exists(), "the planted payload must be live for this test to mean anything"
    job = serialize_job("sum_chunk", (), {"parts": Planted(marker)}, 1, 0, serializer=pickle.dumps)
    with pytest.raises((ValueError, msgpack.UnpackException)):
        codec.loads(job)
    assert not marker.exists()


def test_dumps_turns_unknown_objects_into_text() -> None:
    """Objects msgpack can't hold (an exception in a job result) are stored as their repr."""
    assert codec.loads(codec.dumps({"error": ValueError("bad")})) == {"error": "ValueError('bad')"}


def test_dumps_round_trips_job_shapes() -> None:
    """Lists, dicts, bytes, big-enough ints and floats survive dumps/loads."""
    job = {"run_id": "r", "index": 3, "parts": [["i8", b"\x01" * 8]], "x": [2**64 - 1, -0.5]}
    assert codec.loads(codec.dumps(job)) == job


def test_loads_all_reads_entries_written_one_after_another() -> None:
    """A worker's batch of partials is one inbox entry: their msgpack entries, concatenated."""
    entries = [[0, b"\x01", 1], [1, None, "error"], ["finalised"]]
    batch = b"".join(codec.dumps(entry) for entry in entries)
    assert codec.loads_all(batch) == entries
    assert codec.loads_all(codec.dumps(entries[0])) == [entries[0]]
