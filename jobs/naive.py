"""The obvious arq job, for `chunksum bench`'s baseline: sum a pickled list of numbers.

It is what a user writes in ten minutes with arq, and is kept that way on purpose: a
positional list argument (pickled by arq's default serializer) and a plain ``sum``.
"""

from typing import Any


async def naive_sum(ctx: dict[str, Any], numbers: list[int | float]) -> int | float:
    """Return the sum of ``numbers`` (floats rounded at every step, as ``sum`` does)."""
    return sum(numbers)
