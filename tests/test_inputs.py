"""Unit tests of app.inputs: numbers parsed from text lines, and inclusive integer ranges."""

import itertools
import math
from collections.abc import Iterator

import pytest

from app.errors import InvalidNumberError
from app.inputs import inclusive_range, parse_lines


def test_ints_stay_exact_ints() -> None:
    """Integer lines give ints, signs and all, including ones far beyond 64 bits."""
    huge = 2**300 + 1
    numbers = list(parse_lines(["1", "-7", "+5", "0", str(huge), str(-huge)], "t"))
    assert numbers == [1, -7, 5, 0, huge, -huge]
    assert all(type(n) is int for n in numbers)


def test_ints_over_the_digit_limit_stay_exact() -> None:
    """Integers of more digits than int() converts at once (4300) are exact ints, not inf."""
    nines = "9" * 5000  # str() of the int would refuse too, so build the text directly
    numbers = list(parse_lines([nines, f"-{nines}", f"+{nines}", "1_000"], "t"))
    assert [type(n) for n in numbers] == [int] * 4
    huge = 10**5000 - 1
    assert numbers == [huge, -huge, huge, 1000]


def test_other_numbers_are_floats() -> None:
    """Decimal, exponent and special lines give floats: '1e3' is 1000.0, not the int 1000."""
    numbers = list(parse_lines(["1e3", "-0.5", "2.0", "inf", "-inf", "1e400"], "t"))
    assert numbers == [1000.0, -0.5, 2.0, math.inf, -math.inf, math.inf]
    assert all(type(n) is float for n in numbers)


def test_nan_is_a_float() -> None:
    """A 'nan' line gives a float NaN."""
    [number] = parse_lines(["nan"], "t")
    assert isinstance(number, float)
    assert math.isnan(number)


def test_blank_lines_are_skipped_and_whitespace_stripped() -> None:
    """Blank and whitespace-only lines yield nothing; numbers may carry spaces, tabs and CRLF."""
    lines = ["\n", "  12 \n", "\t\n", "\t-3.5\r\n", "", "7"]
    assert list(parse_lines(lines, "t")) == [12, -3.5, 7]


def test_empty_input_yields_nothing() -> None:
    """No lines, or only blank ones, give no numbers."""
    assert list(parse_lines([], "t")) == []
    assert list(parse_lines(["\n", "   "], "t")) == []


def test_lines_are_read_lazily() -> None:
    """Only as many lines are read as numbers are taken, so a bad later line goes unseen."""
    read: list[str] = []

    def lines() -> Iterator[str]:
        for line in ["1\n", "\n", "2\n", "3\n", "not a number\n"]:
            read.append(line)
            yield line

    numbers = parse_lines(lines(), "t")
    assert read == []
    assert list(itertools.islice(numbers, 2)) == [1, 2]
    assert read == ["1\n", "\n", "2\n"]


def test_bad_line_names_its_line_and_source() -> None:
    """A non-number raises InvalidNumberError naming its line and source, position 0-based."""
    lines = ["1\n", "\n", "2.5\n", "12abc\n", "4\n"]
    with pytest.raises(InvalidNumberError, match=r"line 4 of data\.txt is '12abc'") as caught:
        list(parse_lines(lines, "data.txt"))
    assert caught.value.position == 3
    assert "e.g. 42" in str(caught.value)


@pytest.mark.parametrize("text", ["0x10", "1,5", "one", "1 2", "--1", "1__0", "1e"])
def test_malformed_numbers_are_refused(text: str) -> None:
    """Hex, decimal commas, words, two numbers on a line and other malformed text are refused."""
    with pytest.raises(InvalidNumberError, match="line 1 of <stdin>"):
        list(parse_lines([text], "<stdin>"))


def test_long_bad_line_is_shortened_in_the_message() -> None:
    """The message quotes at most 60 characters of a bad line."""
    with pytest.raises(InvalidNumberError) as caught:
        list(parse_lines(["x" * 1000], "t"))
    assert "x" * 60 in str(caught.value)
    assert "x" * 61 not in str(caught.value)


def test_numbers_before_a_bad_line_are_yielded() -> None:
    """The numbers before a bad line are yielded before the error is raised."""
    numbers = parse_lines(["1", "2", "bad"], "t")
    assert [next(numbers), next(numbers)] == [1, 2]
    with pytest.raises(InvalidNumberError):
        next(numbers)


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [(1, 5, [1, 2, 3, 4, 5]), (3, -1, [3, 2, 1, 0, -1]), (7, 7, [7]), (-2, -2, [-2])],
)
def test_inclusive_range_includes_both_ends(first: int, last: int, expected: list[int]) -> None:
    """Ascending, descending and single-value ranges include both FIRST and LAST."""
    assert list(inclusive_range(first, last)) == expected


def test_inclusive_range_is_a_sized_range() -> None:
    """The range has a length, so --chunks can split it, and sums as expected."""
    numbers = inclusive_range(1, 10_000)
    assert isinstance(numbers, range)
    assert (len(numbers), sum(numbers)) == (10_000, 50_005_000)
