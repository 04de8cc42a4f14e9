"""Tests for app.arrays: .npy files summed by reference, slice by slice."""

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from arq.worker import Worker

from app.arrays import NpyFile, sum_slice
from app.errors import FileInputError, InvalidNumberError, SettingsError
from app.exact import ExactSum, Total
from app.files import plan_ranges
from app.submit import Client


def saved(tmp_path: Path, array: Any, name: str = "a.npy") -> Path:
    """Save ``array`` as a .npy file and return its path."""
    path = tmp_path / name
    np.save(path, array)
    return path


def sum_in_slices(path: Path, slices: int) -> tuple[Total, int]:
    """Sum an array file slice by slice, as workers do; return the total and the count."""
    stamp, dtype, size, offset = NpyFile(str(path)).header()
    total, count = ExactSum(), 0
    for r in plan_ranges(size, chunks=slices, chunk_bytes=1):
        partial, numbers = sum_slice(
            str(path), dtype.str, offset, r.offset, r.offset + r.length, stamp
        )
        total, count = total + partial, count + numbers
    return total.value(), count


@pytest.mark.parametrize(
    "array",
    [
        np.array([2**63 - 1, 2**63 - 1, -(2**63), 5], dtype=np.int64),
        np.array([2**64 - 1] * 3, dtype=np.uint64),
        np.arange(-1000, 1000, dtype=">i4"),  # big-endian
        np.array([True, False, True]),
        np.arange(12, dtype=np.int16).reshape(3, 4).T,  # Fortran order, saved as such
    ],
)
def test_int_arrays_sum_exactly_in_any_slices(tmp_path: Path, array: Any) -> None:
    """Int and bool arrays of any dtype, byte order or memory order sum exactly."""
    path = saved(tmp_path, array)
    for slices in (1, 2, 5):
        assert sum_in_slices(path, slices) == (sum(int(v) for v in array.ravel()), array.size)


def test_float_arrays_sum_exactly(tmp_path: Path) -> None:
    """float16/32/64 arrays sum exactly, rounded once, as math.fsum does."""
    rng = np.random.default_rng(3)
    values = np.ldexp(rng.standard_normal(1000), rng.integers(-12, 12, 1000))  # float16 too
    for dtype in (np.float64, np.float32, np.float16):
        array = values.astype(dtype)
        total, count = sum_in_slices(saved(tmp_path, array), 7)
        assert (total, count) == (math.fsum(array.astype(np.float64).tolist()), 1000)


@pytest.mark.parametrize(
    ("array", "error"),
    [
        (np.array([1 + 2j]), InvalidNumberError),
        (np.array([1.5], dtype=np.longdouble), InvalidNumberError),
        (np.array(["x"]), InvalidNumberError),
    ],
)
def test_arrays_not_summed_exactly_are_refused(tmp_path: Path, array: Any, error: type) -> None:
    """Complex, long double and string arrays are refused at submit, naming the dtype."""
    if array.dtype == np.longdouble and np.dtype(np.longdouble).itemsize <= 8:
        pytest.skip("long double is float64 on this platform")
    with pytest.raises(error, match="chunksum sums bool, int and float"):
        NpyFile(str(saved(tmp_path, array))).header()


def test_what_is_not_an_npy_file_is_refused(tmp_path: Path) -> None:
    """A text file or a missing path given as NpyFile fails at submit, saying why."""
    text = tmp_path / "a.npy"
    text.write_text("1\n2\n")
    with pytest.raises(SettingsError, match=r"is not a \.npy file"):
        NpyFile(str(text)).header()
    with pytest.raises(SettingsError, match="No such file"):
        NpyFile(str(tmp_path / "gone.npy")).header()


def test_a_changed_array_file_is_refused(tmp_path: Path) -> None:
    """A worker finding the file changed since the submitter stamped it fails the run."""
    path = saved(tmp_path, np.arange(10))
    stamp, dtype, _, offset = NpyFile(str(path)).header()
    np.save(path, np.arange(20))
    with pytest.raises(FileInputError, match="changed after the run was submitted"):
        sum_slice(str(path), dtype.str, offset, 0, 10, stamp)


def test_an_empty_array_sums_to_zero(tmp_path: Path) -> None:
    """An empty array has no slices: total 0."""
    assert sum_in_slices(saved(tmp_path, np.array([], dtype=np.int64)), 3) == (0, 0)


async def test_workers_sum_an_npy_file_by_reference(
    client: Client, worker: Worker, tmp_path: Path
) -> None:
    """submit(NpyFile) sums on the workers, slice by slice, exactly, counting the elements."""
    array = np.random.default_rng(5).integers(-(2**62), 2**62, 100_000)
    path = saved(tmp_path, array)
    result = await client.submit(NpyFile(str(path)), chunks=6, timeout=30)
    assert (result.total, result.count, result.chunks) == (sum(array.tolist()), 100_000, 6)
