"""NumPy ``.npy`` files summed by reference: each worker memory-maps its slice of the array.

The submitter reads the file's header only (dtype, shape, where the data starts) and
enqueues one job per slice of elements; a worker maps just its slice's bytes and sums them
exactly. Slices are of the array's memory, whatever its shape or order: a sum doesn't care.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import InvalidNumberError, SettingsError
from app.exact import ExactSum
from app.files import FileStamp, stamp_of


@dataclass(frozen=True, slots=True)
class NpyFile:
    """A NumPy ``.npy`` file of ints, bools or floats (up to 64 bits), read by the workers.

    The workers must see ``path`` as the submitter does (see :class:`app.files.TextFile`).
    """

    path: str

    def header(self) -> tuple[FileStamp, np.dtype[Any], int, int]:
        """Return the file's stamp, dtype, element count and data offset; raise SettingsError
        if it is not a readable ``.npy`` file of numbers chunksum sums exactly."""
        stamp = stamp_of(self.path)
        try:  # maps nothing yet: reads the header (allow_pickle=False: never unpickles)
            array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise SettingsError(f"{self.path!r} is not a .npy file ({exc})") from exc
        dtype = array.dtype
        if dtype.kind not in "biuf" or (dtype.kind == "f" and dtype.itemsize > 8):
            raise InvalidNumberError(
                f"{self.path!r} holds {dtype} values; chunksum sums bool, int and float "
                "(up to float64) arrays exactly",
                position=0,
            )
        offset = array.offset if isinstance(array, np.memmap) else 0  # empty: nothing mapped
        return stamp, dtype, int(array.size), offset


def load(path: str) -> Any:
    """Map a ``.npy`` file for this process to send its numbers (workers that can't see
    it); check it as :meth:`NpyFile.header` does."""
    NpyFile(path).header()
    return np.load(path, mmap_mode="r", allow_pickle=False)


def sum_slice(
    path: str, dtype: str, offset: int, start: int, stop: int, stamp: FileStamp
) -> tuple[ExactSum, int]:
    """Sum elements ``[start, stop)`` of the array whose data starts at ``offset``; return
    the exact sum and the count. Raise FileInputError if the file is gone or changed."""
    stamp.check(path)
    kind = np.dtype(dtype)
    if start == stop:
        return ExactSum(), 0
    values = np.memmap(
        path, dtype=kind, mode="r", offset=offset + start * kind.itemsize, shape=(stop - start,)
    )
    native = np.asarray(values, dtype=kind.newbyteorder("="))
    if kind.kind == "f":
        return ExactSum.of_floats(native.astype(np.float64, copy=False)), native.size
    if kind.kind == "b":
        return ExactSum.of_ints(native.view(np.uint8)), native.size
    return ExactSum.of_ints(native), native.size
