"""Numbers from outside Python: text lines (files, stdin) and inclusive integer ranges."""

import contextlib
import io
import re
import sys
from collections.abc import Iterable, Iterator

from app.chunking import Numbers
from app.errors import ChunksumError, InvalidNumberError, SettingsError
from app.exact import parse_total

_INT = re.compile(r"[+-]?\d+(?:_\d+)*")


def parse_lines(lines: Iterable[str], source: str, *, first_line: int = 1) -> Iterator[int | float]:
    """Yield one number per non-blank line, lazily: ints stay exact ints, others are floats.

    Args:
        source: names the input in errors, e.g. a file path or ``<stdin>``.
        first_line: the number of the first line in ``source`` (a block read from the middle).
    """
    for line_number, line in enumerate(lines, first_line):
        text = line.strip()
        if not text:
            continue
        try:
            number = _number(text)
        except ValueError:
            raise InvalidNumberError(
                f"line {line_number} of {source} is {text[:60]!r}, not a number; "
                "give one int or float per line, e.g. 42 or -1.5e3",
                position=line_number - 1,
            ) from None
        yield number


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        if _INT.fullmatch(text):
            # over 4300 digits int() refuses (CVE-2020-10735 guard) and float() gives inf
            return parse_total(text.replace("_", "").removeprefix("+"), "int")
        return float(text)


def inclusive_range(first: int, last: int) -> range:
    """Return the integers from ``first`` to ``last``, both included (``--range 1 10000``)."""
    return range(first, last + 1) if first <= last else range(first, last - 1, -1)


@contextlib.contextmanager
def read_numbers(first_last: tuple[int, int] | None, path: str | None) -> Iterator[Numbers]:
    """Yield the numbers the command line names: ``--range FIRST LAST``, ``--file PATH``,
    or standard input ('-', or when it is piped in); close the file after the block."""
    if first_last is not None:
        yield inclusive_range(*first_last)
    elif path not in (None, "-"):
        # errors="replace": a non-UTF-8 line becomes "line N is not a number", not a traceback
        try:
            lines = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError as exc:
            raise SettingsError(
                f"cannot read --file {path!r} ({exc.strerror}); give a readable text file "
                "with one number per line, or '-' for stdin"
            ) from exc
        with lines:
            yield parse_lines(lines, path)
    elif path == "-" or not sys.stdin.isatty():
        stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
        yield parse_lines(stdin, "<stdin>")
    else:
        raise ChunksumError("no numbers: give --range FIRST LAST, --file PATH, or pipe them in")
