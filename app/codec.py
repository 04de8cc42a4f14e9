"""Wire formats: msgpack for arq jobs, and compact chunk payloads of packed numbers.

A chunk travels as a list of *parts*, ``[kind, data]``: ``i1``/``i2``/``i4``/``i8``/``u8``
are little-endian packed integers (the narrowest kind that holds the chunk's values),
``f8`` packed float64, and ``big`` a list of signed little-endian byte strings for ints
beyond 64 bits. Nothing on the wire is ever unpickled: workers decode with msgpack and
NumPy's ``frombuffer`` on a fixed whitelist of dtypes.
"""

import contextlib
import operator
from collections.abc import Sequence
from typing import Any, SupportsIndex, cast

import msgpack
import numpy as np
import numpy.typing as npt

from app.chunking import ListSlice
from app.errors import InvalidNumberError, PayloadError
from app.exact import ExactSum

Part = list[Any]  # [kind, data]: msgpack turns tuples into lists, so lists it is

INT_KINDS: dict[str, np.dtype[Any]] = {
    kind: np.dtype(f"<{kind}") for kind in ("i1", "i2", "i4", "i8", "u8")
}
FLOAT_KIND = "f8"
BIG_KIND = "big"
_FLOAT64 = np.dtype("<f8")
_INT64 = np.iinfo(np.int64)
_SIGNED_RANGES = tuple(  # narrowest first: (kind, min, max)
    (kind, int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    for kind, dtype in INT_KINDS.items()
    if kind != "u8"
)


class Packed:
    """Packed numbers on the wire (a msgpack extension), with a short repr.

    arq logs every job's arguments with repr() before it runs the job: the repr of a
    chunk's raw bytes would cost more than summing them.
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"<{len(self.data)} bytes>"


PACKED_EXT = 1


def dumps(obj: Any) -> bytes:
    """Serialize an arq job or result; objects msgpack can't hold (exceptions) become repr text."""
    packed: bytes = msgpack.packb(obj, default=_to_msgpack)
    return packed


def loads(data: bytes) -> Any:
    """Deserialize msgpack bytes; never runs code, whatever the bytes are."""
    return msgpack.unpackb(data, ext_hook=_from_ext)


def loads_all(data: bytes) -> list[Any]:
    """Deserialize msgpack objects written one after another (a worker's batch of partials,
    one inbox entry: app/lua/record.lua); never runs code."""
    unpacker = msgpack.Unpacker(ext_hook=_from_ext)
    unpacker.feed(data)
    return list(unpacker)


def _to_msgpack(obj: object) -> object:
    if isinstance(obj, Packed):
        return msgpack.ExtType(PACKED_EXT, obj.data)
    return repr(obj)


def _from_ext(code: int, data: bytes) -> object:
    return Packed(data) if code == PACKED_EXT else msgpack.ExtType(code, data)


def encode_chunk(values: Sequence[object] | npt.NDArray[Any], offset: int) -> list[Part]:
    """Pack one chunk's numbers; raise InvalidNumberError naming the first non-number.

    Args:
        offset: position of the chunk's first number in the whole input, for error messages.
    """
    if isinstance(values, np.ndarray):
        return _encode_array(values.ravel(), offset)
    if isinstance(values, range) and all(_fits_int64(v) for v in (values.start, values.stop)):
        return _encode_ints(np.arange(values.start, values.stop, values.step, dtype=np.int64))
    if isinstance(values, ListSlice | list | tuple) and values:
        # ints that fit int64, converted in C without NumPy's type inference: 25 ns an int,
        # where array("q") takes 31 and inference 41. operator.index refuses what fromiter
        # would truncate or parse (a float, a str); fromiter refuses an int over 64 bits
        with contextlib.suppress(TypeError, OverflowError):
            indexable = cast("Sequence[SupportsIndex]", values)  # operator.index checks it
            return _encode_ints(np.fromiter(map(operator.index, indexable), np.int64, len(values)))
        if isinstance(values, ListSlice):
            values = values.copy()  # NumPy reads a list in C, a Sequence an item at a time
    try:
        array = np.asarray(values)
    except (ValueError, TypeError, OverflowError):  # ragged nesting, exotic objects
        array = None
    if array is not None and array.ndim == 1:
        if array.dtype.kind in "iu":
            return _encode_ints(array)
        if array.dtype.kind == "f" and all(type(v) is float for v in values):
            return [[FLOAT_KIND, _packed(array, _FLOAT64)]]
    return _encode_mixed(values, offset)


def sum_parts(parts: object) -> ExactSum:
    """Decode a chunk's parts (untrusted bytes from Redis) and sum them exactly."""
    if not isinstance(parts, list) or not parts:
        raise PayloadError(f"a chunk payload is a non-empty list of parts, got {parts!r:.80}")
    total = ExactSum()
    for part in parts:
        total += _sum_part(part)
    return total


def count_parts(parts: list[Part]) -> int:
    """Return how many numbers ``parts`` hold (parts that :func:`sum_parts` accepted)."""
    count = 0
    for kind, data in parts:
        if kind == BIG_KIND:
            count += len(data)
        else:
            raw = data.data if isinstance(data, Packed) else data
            count += len(raw) // INT_KINDS.get(kind, _FLOAT64).itemsize
    return count


def _sum_part(part: object) -> ExactSum:
    match part:
        case [str() as kind, Packed(data=data) | (bytes() as data)] if kind in INT_KINDS:
            return ExactSum.of_ints(_frombuffer(data, INT_KINDS[kind]))
        case [str() as kind, Packed(data=data) | (bytes() as data)] if kind == FLOAT_KIND:
            return ExactSum.of_floats(_frombuffer(data, _FLOAT64))
        case [str() as kind, list() as items] if kind == BIG_KIND:
            if not all(isinstance(item, bytes) for item in items):
                raise PayloadError("a 'big' part holds byte strings only")
            return ExactSum.of_big_ints([int.from_bytes(i, "little", signed=True) for i in items])
    raise PayloadError(f"unknown chunk part {part!r:.80}; this worker knows {_known_kinds()}")


def _frombuffer(data: bytes, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    if len(data) % dtype.itemsize:
        raise PayloadError(f"{len(data)} bytes is not a whole number of {dtype.str} values")
    return np.frombuffer(data, dtype=dtype)


def _packed(array: npt.NDArray[Any], dtype: np.dtype[Any]) -> Packed:
    return Packed(array.astype(dtype, copy=False).tobytes())


def _fits_int64(value: int) -> bool:
    return bool(_INT64.min <= value <= _INT64.max)


def _known_kinds() -> str:
    return ", ".join([*INT_KINDS, FLOAT_KIND, BIG_KIND])


def _encode_array(array: npt.NDArray[Any], offset: int) -> list[Part]:
    kind = array.dtype.kind
    if kind == "b":
        return _encode_ints(array.astype(np.uint8))
    if kind in "iu":
        return _encode_ints(array)
    if kind == "f" and array.dtype.itemsize <= 8:  # float16/32 widen to float64 exactly
        return [[FLOAT_KIND, _packed(array, _FLOAT64)]]
    if kind == "f":
        raise InvalidNumberError(
            f"{array.dtype} arrays can't be summed exactly as float64; convert them with "
            ".astype(float) if that rounding is acceptable",
            position=offset,
        )
    return _encode_mixed(array.tolist(), offset)


def _encode_ints(array: npt.NDArray[np.integer]) -> list[Part]:
    if not array.size:
        return []
    low, high = int(array.min()), int(array.max())
    for kind, least, most in _SIGNED_RANGES:
        if least <= low and high <= most:
            return [[kind, _packed(array, INT_KINDS[kind])]]
    return [["u8", _packed(array, INT_KINDS["u8"])]]


def _encode_mixed(values: Sequence[object], offset: int) -> list[Part]:
    small: list[int] = []
    big: list[int] = []
    floats: list[float] = []
    for position, value in enumerate(values, offset):
        if isinstance(value, int | np.integer):
            (small if _fits_int64(int(value)) else big).append(int(value))
        elif isinstance(value, float | np.floating) and np.finfo(type(value)).bits <= 64:
            floats.append(float(value))
        else:
            raise InvalidNumberError(
                f"item {position} of the input is {value!r:.60} ({type(value).__name__}), "
                "not an int or a float; pass numbers only, e.g. [1, 2.5, -3]",
                position=position,
            )
    parts = _encode_ints(np.array(small, dtype=np.int64))
    if big:
        sizes = [v.bit_length() // 8 + 1 for v in big]
        parts.append(
            [
                BIG_KIND,
                [v.to_bytes(n, "little", signed=True) for v, n in zip(big, sizes, strict=True)],
            ]
        )
    if floats:
        parts.append([FLOAT_KIND, _packed(np.array(floats), _FLOAT64)])
    return parts
