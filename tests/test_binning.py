"""Tests for app.binning: the compiled float kernel and the NumPy path give the same bits."""

import logging
import math
import sys
from fractions import Fraction
from unittest import mock

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import binning
from app.binning import NAN, NEG_INF, POS_INF, KernelLoader, KernelState
from app.errors import ChunksumError
from app.exact import ExactSum

MAX = sys.float_info.max
TINY = 5e-324  # the smallest subnormal
SMALLEST_NORMAL = 2.2250738585072014e-308
EDGES = [0.0, -0.0, TINY, -TINY, SMALLEST_NORMAL, -SMALLEST_NORMAL, MAX, -MAX, 1.0, -1.0]
SPECIALS = [math.nan, -math.nan, math.inf, -math.inf]

# any bit pattern: every NaN payload, subnormals, both zeros, the largest and smallest exponents
any_bits = st.integers(min_value=-(2**63), max_value=2**63 - 1)
edge_floats = st.sampled_from(EDGES + SPECIALS)
wide_floats = st.builds(
    math.ldexp,
    st.floats(min_value=-1.0, max_value=1.0),
    st.integers(min_value=-1080, max_value=1024),
)


def floats_of(bits: list[int]) -> npt.NDArray[np.float64]:
    """Return the float64s whose bit patterns are ``bits``."""
    return np.array(bits, dtype=np.int64).view(np.float64)


def exact_total(values: npt.NDArray[np.float64]) -> int:
    """Return the exact sum of the finite values in units of 2**-1074, with fractions."""
    finite = (Fraction(float(v)) for v in values if math.isfinite(v))
    total = sum(finite, Fraction(0)) * 2**1074
    assert total.denominator == 1
    return total.numerator


@pytest.fixture(scope="module")
def kernel() -> None:
    """Load the compiled kernel once (numba comes with the test extra), failing if it can't."""
    assert binning.KERNEL.wait() is KernelState.READY


@pytest.mark.usefixtures("kernel")
class TestSameBits:
    """The compiled kernel and NumPy agree bit for bit, and both are exact."""

    @given(st.lists(any_bits, max_size=30), st.lists(edge_floats, max_size=10))
    def test_any_bits_give_the_same_sum(self, bits: list[int], edges: list[float]) -> None:
        """Arbitrary bit patterns (NaN payloads, subnormals, ±0, extreme exponents) and
        special values give the same total and flags on both paths, and the exact total."""
        values = np.concatenate([floats_of(bits), np.array(edges, dtype=np.float64)])
        compiled = binning.compiled_sum(values)
        assert compiled == binning.numpy_sum(values)
        assert compiled[0] == exact_total(values)

    @given(st.lists(st.one_of(wide_floats, edge_floats), max_size=40))
    def test_exact_sums_match(self, values: list[float]) -> None:
        """ExactSum.of_floats is the same whichever path sums."""
        array = np.array(values, dtype=np.float64)
        with mock.patch.object(binning.KERNEL, "kernel", None):
            by_numpy = ExactSum.of_floats(array)
        assert ExactSum.of_floats(array) == by_numpy

    def test_specials_are_flagged_alike(self) -> None:
        """NaN and each infinity set their own flag on both paths."""
        cases = {
            (math.nan,): NAN,
            (math.inf, 1.0): POS_INF,
            (-math.inf,): NEG_INF,
            (math.inf, -math.inf, math.nan): NAN | POS_INF | NEG_INF,
            (1.0, -0.0): 0,
        }
        for values, flags in cases.items():
            array = np.array(values)
            assert binning.compiled_sum(array)[1] == flags
            assert binning.numpy_sum(array)[1] == flags

    def test_many_blocks_and_read_only_strided_input(self) -> None:
        """Large, read-only or strided input, cut in several bin blocks, sums alike and
        exactly."""
        rng = np.random.default_rng(7)
        values = np.ldexp(rng.standard_normal(200_001), rng.integers(-1074, 1000, 200_001))
        values[::9973] = TINY
        values[5::10007] = MAX
        values[[1_500, 70_001]] = [math.nan, -math.inf]  # strips with specials, among others
        strided = values[::3]
        read_only = np.frombuffer(values.tobytes(), dtype=np.float64)
        with mock.patch.object(binning, "_BLOCK", 50_000):
            for array in (values, strided, read_only):
                compiled = binning.compiled_sum(array)
                assert compiled == binning.numpy_sum(array)
                assert compiled == binning.numpy_sum(array[::-1])
        assert binning.compiled_sum(strided)[0] == exact_total(strided)


class TestCombine:
    """Bins combine into the exact integer, carries and signs included."""

    @given(
        st.dictionaries(
            st.integers(min_value=1, max_value=2047),
            st.tuples(
                st.integers(min_value=-(2**59), max_value=2**59 - 1),
                st.integers(min_value=0, max_value=2**58 - 1),
            ),
            max_size=40,
        )
    )
    def test_combine_is_the_weighted_sum(self, entries: dict[int, tuple[int, int]]) -> None:
        """Each field e counts (high * 2**26 + low) * 2**(e - 1), at the extremes too."""
        bins = np.zeros((2048, 2), dtype=np.int64)
        for field, (high, low) in entries.items():
            bins[field] = high, low
        expected = sum(((h << 26) + lo) << (f - 1) for f, (h, lo) in entries.items())
        assert binning._combine(bins) == expected


class TestKernelLoader:
    """The kernel loads in the background, and NumPy serves until then or without numba."""

    def test_missing_numba_falls_back_to_numpy(self) -> None:
        """A kernel module that can't be imported leaves the loader unavailable; sums still
        come from NumPy, and asking for the compiled path says what to install."""
        loader = KernelLoader(module="app.no_such_kernel")
        assert loader.wait() is KernelState.UNAVAILABLE
        values = np.arange(binning.LOAD_AT, dtype=np.float64)
        with mock.patch.object(binning, "KERNEL", loader):
            assert binning.sum_floats(values) == (exact_total(values), 0)
            with pytest.raises(ChunksumError, match=r"chunksum\[fast\]"):
                binning.compiled_sum(values)

    def test_a_failed_compile_is_logged_and_numpy_serves(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A kernel module that fails other than by a missing import (here: no kernel in
        it) leaves the loader unavailable and logs a warning once."""
        loader = KernelLoader(module="app.errors")
        with caplog.at_level(logging.WARNING, logger="app.binning"):
            assert loader.wait() is KernelState.UNAVAILABLE
        assert [r.message for r in caplog.records] == [
            "compiling the float kernel failed; summing with NumPy"
        ]
        assert loader.kernel is None

    def test_numba_with_its_jit_disabled_is_not_used(self) -> None:
        """Under NUMBA_DISABLE_JIT the kernel would be a slow Python loop: NumPy sums."""
        import numba

        with mock.patch.object(numba.config, "DISABLE_JIT", True):
            assert KernelLoader().wait() is KernelState.UNAVAILABLE

    def test_small_arrays_do_not_start_loading(self) -> None:
        """Arrays under LOAD_AT numbers sum with NumPy and leave the loader idle; the first
        larger one starts it."""
        loader = KernelLoader()
        with mock.patch.object(binning, "KERNEL", loader):
            small = np.ones(binning.LOAD_AT - 1)
            assert binning.sum_floats(small) == (len(small) << 1074, 0)
            assert loader.state is KernelState.IDLE
            binning.sum_floats(np.ones(binning.LOAD_AT))
            assert loader.state in (KernelState.LOADING, KernelState.READY)
            assert loader.wait() is KernelState.READY
            assert binning.sum_floats(small) == (len(small) << 1074, 0)
