"""Exact sums of float64 arrays as integers: binned by exponent, compiled or with NumPy.

A finite float64 is an integer multiple of 2**-1074 (:data:`FLOAT_BASE`). Its signed
mantissa, split in two halves, is added to a bin by exponent field; the bins are then
combined into one Python int, the exact sum in units of 2**-1074.

Two paths give the same bits: a numba kernel (app.float_kernel, about 1.6 ns a number on
one core) when numba is installed (``pip install 'chunksum[fast]'``), and NumPy (about
7.5 ns). numba costs about 0.4 s to import and load from its cache (0.8 s on a cold
compile), and workers start often, so the kernel loads in a background thread, started by
the first array of at least :data:`LOAD_AT` numbers; until it is ready, NumPy sums.
"""

import enum
import importlib
import logging
import threading
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from app.errors import ChunksumError

logger = logging.getLogger(__name__)

FLOAT_BASE = -1074  # bin e holds multiples of 2**(e - 1075) == 2**(e - 1) * 2**FLOAT_BASE
# IEEE specials seen (the bits of app.exact's flags)
NAN = 2
POS_INF = 4
NEG_INF = 8
# Arrays this large start loading the kernel: smaller ones take NumPy under 0.5 ms, while
# loading costs 0.4-0.8 s of CPU, better not spent by a run of a few small chunks.
LOAD_AT = 1 << 16
LOAD_TIMEOUT_S = 60.0

_FIELDS = 2048
_BLOCK = 1 << 32  # numbers per set of int64 bins: halves under 2**27 can't overflow them
_NUMPY_BLOCK = 1 << 14  # small enough that NumPy's temporaries stay in the CPU cache
_LOW26 = (1 << 26) - 1
_LOW32 = (1 << 32) - 1
_FRACTION = (1 << 52) - 1
_SPECIAL = 0x7FF  # the exponent field of NaN and the infinities

Kernel = Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], int]


class KernelState(enum.StrEnum):
    """Where loading the compiled kernel stands."""

    IDLE = "idle"
    LOADING = "loading"
    READY = "ready"
    UNAVAILABLE = "unavailable"  # numba is not installed, or compiling failed


class KernelLoader:
    """Load app.float_kernel once, in a background thread, and hand out its kernel."""

    def __init__(self, module: str = "app.float_kernel") -> None:
        self.module = module
        self.state = KernelState.IDLE
        self.kernel: Kernel | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()

    def start(self) -> None:
        """Start loading, unless already started."""
        with self._lock:
            if self.state is not KernelState.IDLE:
                return
            self.state = KernelState.LOADING
        # not a daemon: exiting waits for the compile, which then leaves numba's cache written
        threading.Thread(target=self._load, name="chunksum-float-kernel").start()

    def wait(self, timeout_s: float = LOAD_TIMEOUT_S) -> KernelState:
        """Start loading if needed, wait until it ends or ``timeout_s`` passes; return the state."""
        self.start()
        self._done.wait(timeout_s)
        return self.state

    def _load(self) -> None:
        try:
            kernel = importlib.import_module(self.module).bin_bits
            import numba

            # NUMBA_DISABLE_JIT=1 makes the kernel a Python loop, far slower than NumPy
            if numba.config.DISABLE_JIT:  # type: ignore[attr-defined]  # set at run time
                raise ImportError("numba's JIT is disabled (NUMBA_DISABLE_JIT)")
        except ImportError as exc:
            logger.debug("summing floats with NumPy: %s", exc)
            self.state = KernelState.UNAVAILABLE
        except Exception:  # a numba or LLVM failure: NumPy still gives the same sums
            logger.warning("compiling the float kernel failed; summing with NumPy", exc_info=True)
            self.state = KernelState.UNAVAILABLE
        else:
            self.kernel = kernel
            self.state = KernelState.READY
        finally:
            self._done.set()


KERNEL = KernelLoader()


def sum_floats(values: npt.NDArray[np.float64]) -> tuple[int, int]:
    """Return the exact sum of the finite values in units of 2**FLOAT_BASE, and the specials
    seen (:data:`NAN`, :data:`POS_INF`, :data:`NEG_INF`): compiled when ready, else NumPy."""
    if values.size >= LOAD_AT:
        KERNEL.start()
    if KERNEL.kernel is not None:
        return _sum_blocks(values, KERNEL.kernel)
    return numpy_sum(values)


def compiled_sum(values: npt.NDArray[np.float64]) -> tuple[int, int]:
    """Return :func:`sum_floats`' result from the compiled kernel, loading it if needed;
    raise ChunksumError if it can't be loaded."""
    if KERNEL.wait() is not KernelState.READY or KERNEL.kernel is None:
        raise ChunksumError(
            f"the compiled float kernel is {KERNEL.state}; install numba with "
            "`pip install 'chunksum[fast]'` (and leave NUMBA_DISABLE_JIT unset)"
        )
    return _sum_blocks(values, KERNEL.kernel)


def numpy_sum(values: npt.NDArray[np.float64]) -> tuple[int, int]:
    """Return :func:`sum_floats`' result computed with NumPy alone."""
    return _sum_blocks(values, _numpy_bins)


def _sum_blocks(values: npt.NDArray[np.float64], kernel: Kernel) -> tuple[int, int]:
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.int64)
    if bits.flags.writeable:
        # a read-only view: the kernel is compiled for read-only arrays alone (chunks
        # decoded from bytes are read-only), so that one compile serves every array
        bits = bits.view()
        bits.flags.writeable = False
    total, specials = 0, 0
    for start in range(0, bits.size, _BLOCK):
        bins = np.zeros((_FIELDS, 2), dtype=np.int64)
        specials |= kernel(bits[start : start + _BLOCK], bins)
        total += _combine(bins)
    return total, specials


def _combine(bins: npt.NDArray[np.int64]) -> int:
    """Return the bins' exact total in units of 2**FLOAT_BASE, with vectorised carries.

    Field e's high half stands at bit e + 25 and its low half at bit e - 1. Each is cut in
    32-bit pieces added to 32-bit limbs; a limb gains at most 4 pieces a field from at most
    2047 fields, each under 2**32, so bincount's float64 sums stay exact (under 2**45).
    (A Python loop of shifts and adds over ~200 fields took 250 us a chunk; this, 40 us.)
    """
    fields = np.flatnonzero(bins[:, 0] | bins[:, 1])
    values = bins[fields].ravel()
    positions = (fields - 1).repeat(2) + np.tile(np.array([26, 0]), fields.size)
    shifts = positions & 31
    low, high = (values & _LOW32) << shifts, (values >> 32) << shifts  # under 2**63, 2**58
    limb = positions >> 5
    index = np.concatenate([limb, limb + 1, limb + 1, limb + 2])
    pieces = np.concatenate([low & _LOW32, low >> 32, high & _LOW32, high >> 32])
    limbs = np.bincount(index, weights=pieces).astype(np.int64)
    return _unsigned(np.maximum(limbs, 0)) - _unsigned(np.maximum(-limbs, 0))


def _unsigned(limbs: npt.NDArray[np.int64]) -> int:
    """Return sum(limbs[k] * 2**(32 * k)) for non-negative limbs."""
    total, shift = 0, 0
    while limbs.any():
        total += int.from_bytes((limbs & _LOW32).astype("<u4").tobytes(), "little") << shift
        limbs = limbs >> 32
        shift += 32
    return total


def _numpy_bins(bits: npt.NDArray[np.int64], bins: npt.NDArray[np.int64]) -> int:
    """Do the compiled kernel's work with NumPy, a block at a time; return the specials."""
    specials = 0
    for i in range(0, bits.size, _NUMPY_BLOCK):
        specials |= _bin_block(bits[i : i + _NUMPY_BLOCK], bins)
    return specials


def _bin_block(bits: npt.NDArray[np.int64], bins: npt.NDArray[np.int64]) -> int:
    """Add finite floats' signed mantissas, split in 27-bit halves, to bins by exponent field;
    return the specials seen.

    A float64 with biased exponent field e and fraction f is (f + 2**52) * 2**(e - 1075)
    (for e == 0, a subnormal: f * 2**(1 - 1075)). A block's per-bin sums of values below
    2**27 in magnitude stay below 2**41, exact in bincount's float64 weights.
    """
    fields = (bits >> 52) & _SPECIAL
    specials = 0
    if (fields == _SPECIAL).any():
        specials = _specials(bits[fields == _SPECIAL])
        bits, fields = bits[fields != _SPECIAL], fields[fields != _SPECIAL]
    mantissas = (bits & _FRACTION) | (np.minimum(fields, 1) << 52)  # the implicit bit
    signs = bits >> 63  # 0, or -1 (all ones) for a negative value
    mantissas = (mantissas ^ signs) - signs  # negated where negative, with no branch
    fields = np.maximum(fields, 1)
    for half, weight in enumerate((mantissas >> 26, mantissas & _LOW26)):
        bins[:, half] += np.bincount(fields, weights=weight, minlength=_FIELDS).astype(np.int64)
    return specials


def _specials(bits: npt.NDArray[np.int64]) -> int:
    """Return the flags of NaNs and infinities, given as bits."""
    fractions, negative = bits & _FRACTION, bits < 0
    infinite = fractions == 0
    nan = NAN if not infinite.all() else 0
    return (
        nan
        | (POS_INF if (infinite & ~negative).any() else 0)
        | (NEG_INF if (infinite & negative).any() else 0)
    )
