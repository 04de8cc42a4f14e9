"""The exact float sum's cost on one core: ns a number of W4's floats, as a worker sums them.

Measured in the bench's own process, between W4's runs (the workers idle), chunk by chunk
as the workers get them: the compiled kernel (app.float_kernel) when numba is installed,
and NumPy alone, in the same run. Each is the fastest of a few passes, since the bench's
two cores are shared with Redis and the idle workers.
"""

import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from app import binning
from app.bench.workloads import Workload, bounds

PASSES = 3


def float_sum_ns(workload: Workload) -> dict[str, float]:
    """Return ns a number of the exact sum of W4's floats, cut in its chunks.

    ``float_sum_ns`` is the path workers take (compiled if numba is installed, else NumPy;
    ``float_sum_compiled`` says which: 1 or 0), ``float_sum_numpy_ns`` NumPy's alone.
    """
    floats = np.asarray(workload.numbers, dtype=np.float64)
    parts = [floats[start:stop] for start, stop in bounds(floats.size, workload.chunks)]
    numpy_ns = _ns_a_number(parts, binning.numpy_sum)
    compiled = binning.KERNEL.wait() is binning.KernelState.READY
    worker_ns = _ns_a_number(parts, binning.compiled_sum) if compiled else numpy_ns
    return {
        "float_sum_ns": worker_ns,
        "float_sum_numpy_ns": numpy_ns,
        "float_sum_compiled": float(compiled),
    }


def _ns_a_number(
    parts: list[npt.NDArray[np.float64]],
    sum_floats: Callable[[npt.NDArray[np.float64]], tuple[int, int]],
) -> float:
    """Return the fastest of PASSES passes over ``parts``, in ns a number."""
    count = sum(part.size for part in parts)
    best_s = float("inf")
    for _ in range(PASSES):
        started = time.perf_counter()
        for part in parts:
            sum_floats(part)
        best_s = min(best_s, time.perf_counter() - started)
    return best_s / max(count, 1) * 1e9
