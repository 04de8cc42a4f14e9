"""Tests for app.decimals and decimal sums: decimal text summed exactly as decimals."""

import decimal
import io
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from arq.worker import Worker
from hypothesis import given
from hypothesis import strategies as st

from app.csvfiles import CsvColumn, sum_csv_range
from app.decimals import exact_decimal, parse_decimal, sum_decimal_block, sum_decimals
from app.errors import ChunkingError, FileInputError, InvalidNumberError, RunFailedError
from app.exact import DECIMAL, ExactSum, json_total, parse_total, total_text
from app.files import TextFile, plan_ranges, sum_lines, sum_range
from app.settings import Settings
from app.sources import plan_source
from app.submit import Client
from app.text_blocks import TextStream

# decimal texts as a ledger writes them: a sign, digits, maybe a point and places
DECIMAL_TEXTS = st.builds(
    lambda sign, whole, places: f"{sign}{whole}{places}",
    st.sampled_from(["", "-", "+"]),
    st.integers(0, 10**20).map(str),
    st.one_of(st.just(""), st.integers(0, 10**12).map(lambda n: f".{n}"), st.just(".")),
)


def python_sum(texts: list[str]) -> Decimal:
    """Python's own decimal sum of ``texts``, the reference, at unlimited precision (its
    default context rounds to 28 digits)."""
    total = Decimal(0)
    with decimal.localcontext(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX):
        for text in texts:
            total = total + Decimal(text)
    return total


def same_decimal(a: object, b: Decimal) -> bool:
    """Equal values and equal texts (the same places: 3.50 is not 3.5 here)."""
    return isinstance(a, Decimal) and a == b and str(a) == str(b)


class TestParseDecimal:
    def test_decimal_texts_parse_exactly(self) -> None:
        """Every digit is kept, places too; exponents and underscores as Decimal reads them."""
        assert parse_decimal("0.10") == Decimal("0.10")
        assert str(parse_decimal("-12.500")) == "-12.500"
        assert parse_decimal("1e3") == 1000
        assert parse_decimal("1_000.5") == Decimal("1000.5")
        assert parse_decimal("9" * 60 + ".5") == Decimal("9" * 60 + ".5")

    @pytest.mark.parametrize("text", ["", "x", "1.2.3", "NaN", "inf", "-Infinity", "1e9999", "0x1"])
    def test_what_is_not_a_finite_decimal_is_refused(self, text: str) -> None:
        with pytest.raises(ValueError, match="decimal"):
            parse_decimal(text)


class TestDecimalSums:
    def test_a_ledger_adds_up(self) -> None:
        """0.1 + 0.2 is 0.3; places are kept as Decimal keeps them (1.50 + 2 is 3.50)."""
        assert same_decimal(sum_decimals(map(Decimal, ["0.1", "0.2"])).value(), Decimal("0.3"))
        assert same_decimal(sum_decimals(map(Decimal, ["1.50", "2"])).value(), Decimal("3.50"))
        assert same_decimal(sum_decimals([]).value(), Decimal(0))

    def test_partials_merge_in_any_order(self) -> None:
        """Decimal partials add exactly; the empty binary sum (a chunk of blank lines) is
        neutral; a binary partial can't meet a decimal one."""
        a, b = exact_decimal(Decimal("1.25")), exact_decimal(Decimal("-0.005"))
        assert same_decimal((a + b).value(), Decimal("1.245"))
        assert (a + b) == (b + a)
        assert ExactSum() + a == a == a + ExactSum()
        with pytest.raises(ValueError, match="decimal"):
            a + ExactSum.of(3, 0, 0)

    def test_decimal_partials_cross_the_wire(self) -> None:
        """to_wire/from_wire keep a decimal (its places too); an exponent past the bound,
        or decimal flags mixed with float ones, are refused."""
        for value in ["0.30", "-1" + "0" * 30 + ".5", "12e3"]:
            partial = exact_decimal(Decimal(value))
            assert ExactSum.from_wire(partial.to_wire()) == partial
        with pytest.raises(ValueError, match="not an exact partial"):
            ExactSum.from_wire([1, -5000, DECIMAL])
        with pytest.raises(ValueError, match="not an exact partial"):
            ExactSum.from_wire([1, 0, DECIMAL | 1])

    def test_a_decimal_total_is_stored_and_shown_as_text(self) -> None:
        """Stored as positional text of type 'decimal' (never 3E-1), read back as a Decimal;
        in JSON a string, which every reader keeps exact."""
        total = Decimal("0.30")
        assert total_text(total) == ("0.30", "decimal")
        assert total_text(Decimal("1E+3")) == ("1000", "decimal")
        assert total_text(Decimal("1E-7")) == ("0.0000001", "decimal")
        assert same_decimal(parse_total("0.30", "decimal"), total)
        assert json_total(total) == "0.30"


class TestDecimalBlocks:
    @given(st.lists(DECIMAL_TEXTS, max_size=40), st.integers(1, 5))
    def test_blocks_sum_as_python_does_whatever_the_cut(self, texts: list[str], cuts: int) -> None:
        """polars' 128-bit path (or the line parser where it can't) gives Python's exact
        decimal sum, places and all, however the lines are cut into blocks."""
        lines = [text + "\n" for text in texts if text not in ("", "+", "-", ".", "+.", "-.")]
        total, count = ExactSum(), 0
        for start in range(cuts):
            block = "".join(lines[start::cuts]).encode()
            partial, numbers = sum_lines(block, "t", decimal=True)
            total, count = total + partial, count + numbers
        assert count == len(lines)
        expected = python_sum([line.strip() for line in lines])
        assert same_decimal((total + ExactSum.of_decimal(0, 0)).value(), expected)

    def test_the_fast_path_declines_what_it_cant_read_exactly(self) -> None:
        """Exponents, over 38 digits or a bad line go to the line parser (None here); the
        line parser still sums exactly, or names the bad line."""
        assert sum_decimal_block(b"1.5\n2.25\n\n") == (exact_decimal(Decimal("3.75")), 2)
        assert sum_decimal_block(b"1e3\n") is None
        long = b"1" * 39 + b"\n"
        assert sum_decimal_block(long) is None
        assert sum_decimal_block(b"0." + b"1" * 39 + b"\n") is None
        assert sum_lines(long + b"0.5\n", "t", decimal=True)[0].value() == Decimal("1" * 39 + ".5")
        with pytest.raises(InvalidNumberError, match="line 2 of t is 'x'"):
            sum_lines(b"1.5\nx\n", "t", decimal=True)

    def test_a_file_in_ranges_sums_exactly(self, tmp_path: Path) -> None:
        """Ranges of a file sum to Python's total; a bad line is named in the whole file."""
        texts = [f"{i * 37 % 1000 - 500}.{i % 100:02d}" for i in range(3000)]
        path = tmp_path / "ledger.txt"
        path.write_text("\n".join(texts) + "\n")
        stamp = TextFile(str(path)).stamp()
        total = ExactSum.of_decimal(0, 0)
        for piece in plan_ranges(stamp.size, chunks=7, chunk_bytes=1 << 20):
            total += sum_range(str(path), piece.offset, piece.length, stamp, decimal=True)[0]
        assert same_decimal(total.value(), python_sum(texts))
        path.write_text("1.5\n" * 10 + "1,5\n")
        stamp = TextFile(str(path)).stamp()
        with pytest.raises(FileInputError, match=r"line 11 of .* is '1,5'"):
            sum_range(str(path), 20, stamp.size - 20, stamp, decimal=True)

    def test_a_csv_column_sums_as_decimals(self, tmp_path: Path) -> None:
        """A CSV column's fields (quoted or not, empty ones skipped) sum as decimals."""
        path = tmp_path / "sales.csv"
        path.write_text('id,amount\n1,0.10\n2,"0.20"\n3,\n4, 1.005 \n')
        stamp, column = CsvColumn(str(path), "amount").plan()
        total, count = sum_csv_range(
            str(path), 0, stamp.size, stamp, column=column, delimiter=",", header=True, decimal=True
        )
        assert same_decimal(total.value(), Decimal("1.305"))
        assert count == 3
        path.write_text("amount\n1e2\n0.5\n")
        stamp, column = CsvColumn(str(path), "amount").plan()
        total, _ = sum_csv_range(
            str(path), 0, stamp.size, stamp, column=column, delimiter=",", header=True, decimal=True
        )
        assert same_decimal(total.value(), Decimal("100.5"))


def test_decimal_is_for_text_only(tmp_path: Path) -> None:
    """decimal=True for numbers in memory is refused, saying what it is for."""
    with pytest.raises(ChunkingError, match="decimal text"):
        plan_source([1, 2], chunks=None, chunk_size=None, settings=Settings(), decimal=True)


async def test_workers_sum_decimals_by_reference_and_raw(
    settings: Settings, worker: Worker, tmp_path: Path
) -> None:
    """A decimal run's total is a Decimal, the same by reference and as raw text, stored
    as one; an empty file's is Decimal 0; a bad line fails the run naming it."""
    texts = [f"{(i * 7919) % 20001 - 10000}.{i % 1000:03d}" for i in range(20_000)]
    path = tmp_path / "ledger.txt"
    path.write_text("\n".join(texts))
    expected = python_sum(texts)
    async with Client(replace(settings, chunk_bytes=20_000)) as client:
        by_reference = await client.submit(TextFile(str(path)), decimal=True, timeout=30)
        raw = await client.submit(TextFile(str(path), shared=False), decimal=True, timeout=30)
        for result in (by_reference, raw):
            assert same_decimal(result.total, expected)
            assert result.count == len(texts)
        assert same_decimal((await client.status(raw.run_id)).total, expected)
        empty = await client.submit(TextStream(io.BytesIO(b"\n"), "<stdin>"), decimal=True)
        assert same_decimal(empty.total, Decimal(0))
        path.write_text("0.1\n" * 100 + "0.1.\n")
        with pytest.raises(RunFailedError, match=r"line 101 of .* is '0\.1\.'"):
            await client.submit(TextFile(str(path)), decimal=True, chunks=3, timeout=30)
