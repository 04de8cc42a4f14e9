"""How chunksum sums the bench's files (W8, W8f, W9): each way is a row of the table.

A bench file is summed in one or more ways, each a :class:`Variant`: W8 by reference (the
workers read their byte ranges) and as raw bytes (``TextFile(path, shared=False)``: this
process reads blocks of whole lines and ships them through Redis, the workers parse); W8f
by reference; W9's CSV and Parquet columns by reference. Every run's total is checked
against the file's exact reference.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from app.bench.datafiles import COLUMN, FileWorkload
from app.bench.workloads import RUN_TIMEOUT_S, Timing, measure, same
from app.csvfiles import CsvColumn
from app.files import TextFile
from app.parquet import ParquetColumn
from app.sources import Input
from app.submit import Client


def by_reference(workload: FileWorkload) -> Input:
    """Return the file as the workers read it themselves."""
    return TextFile(str(workload.path))


def raw_bytes(workload: FileWorkload) -> Input:
    """Return the file as this process reads it and ships its blocks, unparsed."""
    return TextFile(str(workload.path), shared=False)


def csv_column(workload: FileWorkload) -> Input:
    """Return the CSV file's column COLUMN, read by the workers."""
    return CsvColumn(str(workload.path), COLUMN)


def parquet_column(workload: FileWorkload) -> Input:
    """Return the Parquet file's column COLUMN, read by the workers."""
    return ParquetColumn(str(workload.path), COLUMN)


def exact_total(workload: FileWorkload) -> object:
    """Return the file's exact total (an int, or a float rounded once)."""
    return workload.expected


def decimal_total(workload: FileWorkload) -> object:
    """Return the exact decimal sum of a file of decimal texts (W8f)."""
    return workload.decimal_expected


@dataclass(frozen=True, slots=True, kw_only=True)
class Variant:
    """One way chunksum sums a bench file: its row, and what it submits.

    Args:
        row: its row in the table (and its key in ``--json``).
        file: the name of the bench file it sums (``FileWorkload.name``).
        source: what is submitted for the file.
        options: further keyword options of ``Client.submit``.
        expected: the total it must return.
    """

    row: str
    file: str
    source: Callable[[FileWorkload], Input]
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    expected: Callable[[FileWorkload], object] = exact_total


VARIANTS: Mapping[str, tuple[Variant, ...]] = MappingProxyType(
    {
        "W8": (
            Variant(row="W8", file="W8", source=by_reference),
            Variant(row="W8 raw bytes", file="W8", source=raw_bytes),
        ),
        "W8f": (
            Variant(row="W8f", file="W8f", source=by_reference),
            Variant(
                row="W8f decimal",
                file="W8f",
                source=by_reference,
                options=MappingProxyType({"decimal": True}),
                expected=decimal_total,
            ),
        ),
        "W9": (
            Variant(row="W9 CSV", file="W9 CSV", source=csv_column),
            Variant(row="W9 Parquet", file="W9 Parquet", source=parquet_column),
        ),
    }
)
"""The file workloads' variants, by the workload ``--only`` names."""


async def measure_variant(
    client: Client, variant: Variant, workload: FileWorkload, repeat: int
) -> Timing:
    """Time ``repeat`` runs of ``variant`` on ``workload``, after one run untimed (each
    worker imports its parser, polars or pyarrow, on its first chunk)."""
    expected = variant.expected(workload)

    async def run() -> object:
        source = variant.source(workload)
        result = await client.submit(source, timeout=RUN_TIMEOUT_S, **variant.options)
        return result.total

    await run()
    timing = await measure(run, lambda total: same(total, expected), repeat=repeat)
    return replace(timing, extra={"numbers": workload.count, "file_mb": workload.size_mb})
