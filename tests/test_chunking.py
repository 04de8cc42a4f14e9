"""Tests for app.chunking: balanced chunks for sized inputs, lazy chunks for streams."""

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.chunking import Chunk, ListSlice, balanced_sizes, plan
from app.errors import ChunkingError


class Counted:
    """A stream of 0..n-1 that records how many numbers have been read from it."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.read = 0

    def __iter__(self) -> Iterator[int]:
        """Yield the numbers one by one, counting each as it is read."""
        for i in range(self.n):
            self.read += 1
            yield i


def sizes(chunks: list[Chunk]) -> list[int]:
    """Return the number of values in each chunk."""
    return [len(chunk.values) for chunk in chunks]


def chunked(
    numbers: Any, *, chunks: int | None = None, chunk_size: int | None = None
) -> list[Chunk]:
    """Plan ``numbers`` with a default size of 10 and return every chunk."""
    return list(plan(numbers, chunks=chunks, chunk_size=chunk_size, default_size=10).items)


@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=1, max_value=500))
def test_balanced_sizes_differ_by_at_most_one(total: int, count: int) -> None:
    """balanced_sizes returns count sizes that add up to total and differ by at most one."""
    result = balanced_sizes(total, count)
    assert len(result) == count
    assert sum(result) == total
    assert max(result) - min(result) <= 1


def test_balanced_sizes_of_zero_chunks() -> None:
    """Zero chunks have no sizes."""
    assert balanced_sizes(0, 0) == []


@given(
    st.integers(min_value=0, max_value=2_000),
    st.one_of(
        st.fixed_dictionaries({"chunks": st.integers(min_value=1, max_value=300)}),
        st.fixed_dictionaries({"chunk_size": st.integers(min_value=1, max_value=300)}),
    ),
)
def test_sized_inputs_are_balanced(n: int, options: dict[str, int]) -> None:
    """Sized inputs split into non-empty chunks that differ by at most one and cover the input."""
    result = plan(
        range(n), chunks=options.get("chunks"), chunk_size=options.get("chunk_size"), default_size=7
    )
    chunks = list(result.items)
    assert result.chunks == len(chunks)
    if "chunks" in options:
        assert len(chunks) == min(options["chunks"], n)
    else:
        assert all(size <= options["chunk_size"] for size in sizes(chunks))
        assert len(chunks) == -(-n // options["chunk_size"])
    if chunks:
        assert min(sizes(chunks)) >= 1
        assert max(sizes(chunks)) - min(sizes(chunks)) <= 1
    assert [v for chunk in chunks for v in chunk.values] == list(range(n))
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))


def test_fewer_numbers_than_chunks() -> None:
    """Asking for more chunks than numbers gives one non-empty chunk per number."""
    chunks = chunked([1, 2, 3], chunks=10)
    assert sizes(chunks) == [1, 1, 1]


@pytest.mark.parametrize("numbers", [[], (), range(0), np.array([], dtype=np.int64)])
@pytest.mark.parametrize("options", [{"chunks": 4}, {"chunk_size": 4}, {}])
def test_empty_input_gives_no_chunks(numbers: Any, options: dict[str, int]) -> None:
    """An empty sized input plans zero chunks."""
    result = plan(
        numbers, chunks=options.get("chunks"), chunk_size=options.get("chunk_size"), default_size=5
    )
    assert result.chunks == 0
    assert list(result.items) == []


def test_empty_stream_gives_no_chunks() -> None:
    """An empty generator yields no chunks."""
    assert chunked(iter([])) == []


def test_offsets_are_positions_of_first_numbers() -> None:
    """Each chunk's offset is the position of its first number in the whole input."""
    chunks = chunked(list(range(10)), chunks=3)
    assert sizes(chunks) == [4, 3, 3]
    assert [c.offset for c in chunks] == [0, 4, 7]
    assert [c.values[0] for c in chunks] == [0, 4, 7]


class TestListSlice:
    """Chunks of a list or tuple read its numbers in place, as a full Sequence."""

    @pytest.mark.parametrize("numbers", [list(range(10)), tuple(range(10))])
    def test_chunks_of_lists_and_tuples_are_views(self, numbers: list[int] | tuple[int]) -> None:
        """Each chunk is a ListSlice over the input whose numbers are the slice's."""
        chunks = chunked(numbers, chunks=3)
        assert all(isinstance(c.values, ListSlice) for c in chunks)
        assert [list(c.values) for c in chunks] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]

    def test_indexing_matches_a_list(self) -> None:
        """Indexes (negative ones too) and slices read as they would from a list, and an
        index past either end raises IndexError."""
        view, copy = ListSlice(list(range(10)), 3, 7), [3, 4, 5, 6]
        assert view.copy() == copy
        assert [view[i] for i in range(-4, 4)] == [copy[i] for i in range(-4, 4)]
        assert view[1:-1] == [4, 5]
        assert view.index(5) == 2
        for index in (4, -5):
            with pytest.raises(IndexError):
                view[index]

    def test_a_subclass_is_sliced(self) -> None:
        """A list subclass, whose own __iter__ may differ, is sliced as before."""

        class Numbers(list[int]):
            """A list subclass."""

        chunks = chunked(Numbers(range(6)), chunks=2)
        assert [type(c.values) for c in chunks] == [list, list]


def test_default_size_applies_without_options() -> None:
    """With neither chunks nor chunk_size, the default size sets the chunk count."""
    result = plan(range(25), chunks=None, chunk_size=None, default_size=10)
    assert result.chunks == 3
    assert sizes(list(result.items)) == [9, 8, 8]


def test_arrays_are_sliced_and_flattened() -> None:
    """A 2-D array is chunked over its flattened elements, as array slices."""
    chunks = chunked(np.arange(12).reshape(3, 4), chunks=2)
    assert all(isinstance(c.values, np.ndarray) for c in chunks)
    assert [list(c.values) for c in chunks] == [list(range(6)), list(range(6, 12))]


def test_sized_unsliceable_inputs_are_read_in_order() -> None:
    """A sized input that can't be sliced (dict values) is read into lists in order."""
    data = {str(i): i for i in range(7)}
    chunks = chunked(data.values(), chunks=3)
    assert [c.values for c in chunks] == [[0, 1, 2], [3, 4], [5, 6]]
    assert [c.offset for c in chunks] == [0, 3, 5]


def test_plan_reads_nothing_from_a_stream() -> None:
    """Planning a stream reads nothing, and its chunk count is unknown."""
    source = Counted(1000)
    result = plan(iter(source), chunks=None, chunk_size=10, default_size=99)
    assert result.chunks is None
    assert source.read == 0


def test_streams_are_read_lazily() -> None:
    """Taking the first chunk of a stream reads at most two chunks' worth of numbers."""
    source = Counted(10_000)
    items = plan(iter(source), chunks=None, chunk_size=10, default_size=99).items
    first = next(items)
    assert list(first.values) == list(range(10))
    assert source.read <= 20
    next(items)
    assert source.read <= 30


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (20, [10, 10]),
        (21, [10, 6, 5]),
        (24, [10, 7, 7]),
        (25, [10, 10, 5]),
        (29, [10, 10, 9]),
        (9, [9]),
        (1, [1]),
    ],
)
def test_streams_rebalance_the_last_two_chunks(n: int, expected: list[int]) -> None:
    """A nearly empty last chunk (under half a chunk) shares the remainder with the one before."""
    chunks = chunked(iter(range(n)), chunk_size=10)
    assert sizes(chunks) == expected
    assert [c.offset for c in chunks] == [sum(expected[:i]) for i in range(len(expected))]
    assert [v for c in chunks for v in c.values] == list(range(n))


@given(st.integers(min_value=0, max_value=300), st.integers(min_value=1, max_value=40))
def test_streams_cover_the_input_in_order(n: int, size: int) -> None:
    """Stream chunks cover the input in order, none empty or larger than chunk_size."""
    chunks = chunked(iter(range(n)), chunk_size=size)
    assert [v for c in chunks for v in c.values] == list(range(n))
    assert all(1 <= s <= size for s in sizes(chunks))
    assert [c.index for c in chunks] == list(range(len(chunks)))
    if len(chunks) >= 2:
        assert sizes(chunks)[-1] >= size // 2 or sizes(chunks)[-1] >= sizes(chunks)[-2] - 1


@pytest.mark.parametrize("name", ["chunks", "chunk_size"])
@pytest.mark.parametrize("value", [0, -1, True, False, 2.0, "3"])
def test_bad_counts_raise(name: str, value: object) -> None:
    """chunks and chunk_size must be positive ints: 0, negatives, bools and others raise."""
    options: dict[str, Any] = {"chunks": None, "chunk_size": None, name: value}
    with pytest.raises(ChunkingError, match=f"{name} must be a positive int, got {value!r}"):
        plan([1, 2, 3], default_size=10, **options)


def test_chunks_and_chunk_size_together_raise() -> None:
    """Giving both chunks and chunk_size raises ChunkingError naming both."""
    with pytest.raises(ChunkingError, match="not both"):
        plan([1, 2, 3], chunks=2, chunk_size=2, default_size=10)


def test_chunks_with_a_generator_raise() -> None:
    """chunks= needs a known length, so a generator raises and suggests chunk_size=."""
    source = Counted(10)
    with pytest.raises(ChunkingError, match="chunk_size="):
        plan(iter(source), chunks=2, chunk_size=None, default_size=10)
    assert source.read == 0


@pytest.mark.parametrize("numbers", ["123", b"123", bytearray(b"12"), {"a": 1}, 5, 2.5, None])
def test_non_iterables_and_text_raise_type_error(numbers: object) -> None:
    """Strings, bytes, dicts and plain numbers are refused with a TypeError naming their type."""
    with pytest.raises(TypeError, match=type(numbers).__name__):
        plan(numbers, chunks=None, chunk_size=None, default_size=10)  # type: ignore[arg-type]  # the point


def test_dict_error_suggests_values() -> None:
    """A dict input's error suggests passing dict.values()."""
    with pytest.raises(TypeError, match=r"dict\.values\(\)"):
        plan({"a": 1}, chunks=None, chunk_size=None, default_size=10)
