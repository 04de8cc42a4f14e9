"""Numbers from outside Python: text lines (files, stdin) and inclusive integer ranges."""

import re
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal

from app.decimals import parse_decimal
from app.errors import InvalidNumberError
from app.exact import parse_int

_INT = re.compile(r"[+-]?\d+(?:_\d+)*")


def parse_lines(
    lines: Iterable[str], source: str, *, first_line: int = 1, decimal: bool = False
) -> Iterator[int | float | Decimal]:
    """Yield one number per non-blank line, lazily: ints stay exact ints, others are floats
    (or every one an exact Decimal, if ``decimal``).

    Args:
        source: names the input in errors, e.g. a file path or ``<stdin>``.
        first_line: the number of the first line in ``source`` (a block read from the middle).
    """
    parse: Callable[[str], int | float | Decimal] = parse_number
    example = "one int or float per line, e.g. 42 or -1.5e3"
    if decimal:
        parse, example = parse_decimal, "one decimal per line, e.g. 42 or -12.50"
    for line_number, line in enumerate(lines, first_line):
        text = line.strip()
        if not text:
            continue
        try:
            number = parse(text)
        except ValueError:
            raise InvalidNumberError(
                f"line {line_number} of {source} is {text[:60]!r}, not a number; give {example}",
                position=line_number - 1,
            ) from None
        yield number


def parse_number(text: str) -> int | float:
    """Parse one number's text: an exact int if it is one (any size), else a float; raise
    ValueError if it is neither."""
    try:
        return int(text)
    except ValueError:
        if _INT.fullmatch(text):
            # over 4300 digits int() refuses (CVE-2020-10735 guard) and float() gives inf
            return parse_int(text.replace("_", "").removeprefix("+"))
        return float(text)


def inclusive_range(first: int, last: int) -> range:
    """Return the integers from ``first`` to ``last``, both included (``--range 1 10000``)."""
    return range(first, last + 1) if first <= last else range(first, last - 1, -1)
