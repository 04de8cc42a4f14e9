"""The compiled float64 binning kernel (numba): imported only by app.binning, in a thread.

Importing this module imports numba (about 0.2 s) and compiles the kernel, or loads it
from numba's cache in ``__pycache__`` (about 0.2 s more; a cold compile takes about 0.6 s),
so nothing imports it at start-up: app.binning loads it in the background and sums with
NumPy until it is ready.
"""

import numpy as np
import numpy.typing as npt
from numba import njit, types

from app.binning import NAN, NEG_INF, POS_INF

_FRACTION = (1 << 52) - 1
_LOW26 = (1 << 26) - 1
_SPECIAL = 0x7FF  # the exponent field of NaN and the infinities
_STRIP = 1024  # numbers decoded at a time: two int64 buffers of 8 KiB, in the L1 cache


@njit(inline="always")
def _decoded(word: np.int64) -> tuple[np.int64, np.int64]:  # pragma: no cover  # numba's
    """Return a finite float64's bin (its exponent field, at least 1) and signed mantissa."""
    field = (word >> 52) & _SPECIAL
    mantissa = (word & _FRACTION) | (np.int64(field != 0) << 52)  # the implicit bit
    sign = word >> 63  # 0, or -1 (all ones) for a negative value
    return max(field, np.int64(1)), (mantissa ^ sign) - sign


@njit(cache=True, nogil=True)
def _bin_each(  # pragma: no cover  # numba compiles the body: coverage never sees it run
    bits: npt.NDArray[np.int64], bins: npt.NDArray[np.int64]
) -> int:
    """Do :func:`bin_bits`' work one number at a time, leaving NaN and infinities out."""
    flags = 0
    for i in range(bits.size):
        word = bits[i]
        if (word >> 52) & _SPECIAL == _SPECIAL:
            if word & _FRACTION:
                flags |= NAN
            elif word < 0:
                flags |= NEG_INF
            else:
                flags |= POS_INF
            continue
        field, mantissa = _decoded(word)
        bins[field, 0] += mantissa >> 26
        bins[field, 1] += mantissa & _LOW26
    return flags


# One signature, compiled at import (so the cache load happens in the loading thread, not on
# the first chunk): app.binning always passes a read-only C-contiguous int64 view.
_SIGNATURE = types.int64(
    types.Array(types.int64, 1, "C", readonly=True), types.Array(types.int64, 2, "C")
)


@njit(_SIGNATURE, cache=True, nogil=True)
def bin_bits(  # pragma: no cover  # numba compiles the body: coverage never sees it run
    bits: npt.NDArray[np.int64], bins: npt.NDArray[np.int64]
) -> int:
    """Add float64s (as their bits) to ``bins[field]``, the signed mantissa split in two.

    The same arithmetic as app.binning's NumPy path: a finite float64 with exponent field e
    (at least 1: subnormals share e == 1 with the smallest normals) and signed mantissa m is
    ``m * 2**(e - 1075)``; ``bins[e, 0]`` gains ``m >> 26`` and ``bins[e, 1]`` gains
    ``m & (2**26 - 1)``. Each is under 2**27 in magnitude, so bins can't overflow within
    2**36 numbers. NaN and infinities are left out and reported in the returned flags
    (app.binning's NAN, POS_INF and NEG_INF).

    Numbers go a strip at a time in two passes: one decodes the strip's fields and mantissas
    with no branch (the compiler vectorises it), one adds them to the bins. One loop doing
    both took 2.5-3.9 ns a number on a 2-core Xeon VM, the two passes 1.5-1.6 ns. A strip
    that holds a NaN or an infinity is binned by :func:`_bin_each`, which sorts them out.
    """
    fields = np.empty(_STRIP, np.int64)
    mantissas = np.empty(_STRIP, np.int64)
    flags = 0
    for start in range(0, bits.size, _STRIP):
        count = min(_STRIP, bits.size - start)
        special = False
        for j in range(count):
            word = bits[start + j]
            special |= (word >> 52) & _SPECIAL == _SPECIAL
            fields[j], mantissas[j] = _decoded(word)
        if special:
            flags |= _bin_each(bits[start : start + count], bins)
            continue
        for j in range(count):
            bins[fields[j], 0] += mantissas[j] >> 26
            bins[fields[j], 1] += mantissas[j] & _LOW26
    return flags
