"""The file workloads' peers: the single-node tools a user would pick instead of chunksum.

Each reads the bench file and sums its numbers (a text file's one column; W9's ``amount``
column), in this process (awk in a child process), timed in the bench's first phase, with no
workers running. polars and DuckDB are optional (``pip install 'chunksum[bench]'``), awk
may be missing: such a peer is skipped, with a note. awk sums in doubles, exactly only
while every partial sum stays below 2**53; float sums but ``math.fsum`` are not exact
either. A Timing's ``correct`` says whether the peer got the exact total.
"""

import asyncio
import importlib
import math
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.bench.datafiles import COLUMN, FileWorkload, Format
from app.bench.workloads import RUN_TIMEOUT_S, Timing, measure, same
from app.errors import ChunksumError

AWK_PROGRAM = '{s+=$1} END {printf "%.0f\\n", s}'
AWK_FLOAT_PROGRAM = '{s+=$1} END {printf "%.17g\\n", s}'


def polars_sum(path: Path) -> object:
    """Sum the file with polars; return what it returns."""
    import polars as pl

    return pl.read_csv(path, has_header=False, new_columns=["x"])["x"].sum()


def duckdb_sum(path: Path) -> object:
    """Sum the file with DuckDB (the path a query parameter, not spliced into the SQL)."""
    import duckdb

    query = "select sum(column0) from read_csv($path, header = false)"
    return duckdb.execute(query, {"path": str(path)}).fetchall()[0][0]


def pyarrow_sum(path: Path) -> object:
    """Sum the file with pyarrow's CSV reader and its compute kernel."""
    from pyarrow import compute, csv

    table = csv.read_csv(path, read_options=csv.ReadOptions(column_names=["x"]))
    return compute.sum(table["x"]).as_py()


def awk_sum(path: Path) -> int:
    """Sum the file with ``awk '{s+=$1} END {printf "%.0f\\n", s}'`` (in doubles)."""
    return int(_awk(AWK_PROGRAM, path))


def awk_float_sum(path: Path) -> float:
    """Sum a file of floats with awk, printing its double total in full (``%.17g``)."""
    return float(_awk(AWK_FLOAT_PROGRAM, path))


def _awk(program: str, path: Path) -> str:
    try:
        done = subprocess.run(
            ["awk", program, str(path)],
            capture_output=True,
            check=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
    except subprocess.CalledProcessError as exc:
        raise ChunksumError(
            f"awk exited with status {exc.returncode} on {path}: {exc.stderr.strip()}; "
            "run the bench without W8 and W8f, or with another awk on PATH"
        ) from exc
    return done.stdout


def python_sum(path: Path) -> int:
    """Sum the file as ``sum(map(int, open(path)))`` does (closing it)."""
    with path.open(encoding="utf-8") as lines:
        return sum(map(int, lines))


def python_float_sum(path: Path) -> float:
    """Sum a file of floats as ``math.fsum(map(float, open(path)))`` does: exactly."""
    with path.open(encoding="utf-8") as lines:
        return math.fsum(map(float, lines))


def polars_column_sum(path: Path) -> object:
    """Sum column COLUMN of a CSV or Parquet file (by its suffix) with polars' lazy reader,
    which reads that column only."""
    import polars as pl

    scan = pl.scan_parquet if path.suffix == ".parquet" else pl.scan_csv
    return scan(path).select(pl.col(COLUMN).sum()).collect().item()


def duckdb_column_sum(path: Path) -> object:
    """Sum column COLUMN of a CSV or Parquet file (by its suffix) with DuckDB."""
    import duckdb

    reader = "read_parquet" if path.suffix == ".parquet" else "read_csv"
    query = f"select sum({COLUMN}) from {reader}($path)"
    return duckdb.execute(query, {"path": str(path)}).fetchall()[0][0]


def pyarrow_csv_sum(path: Path) -> object:
    """Sum column COLUMN of a CSV file with pyarrow, converting that column only."""
    from pyarrow import compute, csv

    convert = csv.ConvertOptions(include_columns=[COLUMN])
    return compute.sum(csv.read_csv(path, convert_options=convert)[COLUMN]).as_py()


def pyarrow_parquet_sum(path: Path) -> object:
    """Sum column COLUMN of a Parquet file with pyarrow, reading that column only."""
    from pyarrow import compute, parquet

    return compute.sum(parquet.read_table(path, columns=[COLUMN])[COLUMN]).as_py()


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer:
    """A tool that sums a bench file.

    Args:
        name: its key in the results (``results["W8"]["polars"]``) and JSON.
        label: its name in the table.
        module: the package it needs imported, if any.
        program: the program it needs on PATH, if any.
    """

    name: str
    label: str
    total: Callable[[Path], object]
    module: str | None = None
    program: str | None = None


POLARS = Peer(name="polars", label="polars", total=polars_sum, module="polars")
DUCKDB = Peer(name="duckdb", label="DuckDB", total=duckdb_sum, module="duckdb")
PYARROW = Peer(name="pyarrow", label="pyarrow", total=pyarrow_sum, module="pyarrow")
PEERS = (  # W8's: a text file of ints
    POLARS,
    DUCKDB,
    PYARROW,
    Peer(name="awk", label="awk", total=awk_sum, program="awk"),
    Peer(name="python", label="Python", total=python_sum),
)
FLOAT_PEERS = (  # W8f's: the same tools, on floats; Python's one-liner is math.fsum
    POLARS,
    DUCKDB,
    PYARROW,
    Peer(name="awk", label="awk", total=awk_float_sum, program="awk"),
    Peer(name="python", label="Python", total=python_float_sum),
)
CSV_PEERS = (
    Peer(name="polars", label="polars", total=polars_column_sum, module="polars"),
    Peer(name="duckdb", label="DuckDB", total=duckdb_column_sum, module="duckdb"),
    Peer(name="pyarrow", label="pyarrow", total=pyarrow_csv_sum, module="pyarrow"),
)
PARQUET_PEERS = (
    Peer(name="polars", label="polars", total=polars_column_sum, module="polars"),
    Peer(name="duckdb", label="DuckDB", total=duckdb_column_sum, module="duckdb"),
    Peer(name="pyarrow", label="pyarrow", total=pyarrow_parquet_sum, module="pyarrow"),
)
PEERS_OF = {
    Format.INTS: PEERS,
    Format.FLOATS: FLOAT_PEERS,
    Format.CSV: CSV_PEERS,
    Format.PARQUET: PARQUET_PEERS,
}
LABELS = {peer.name: peer.label for peer in PEERS}
PYTHON = "python"  # the peer the table shows as a text file's local sum


def missing(peer: Peer) -> str | None:
    """Return why ``peer`` can't run here, or None if it can.

    Its package is imported here, so that the import isn't timed in its first run.
    """
    if peer.module is not None:
        try:
            importlib.import_module(peer.module)
        except ImportError:
            return f"{peer.module} is not installed (pip install 'chunksum[bench]')"
    if peer.program is not None and shutil.which(peer.program) is None:
        return f"{peer.program} is not on PATH"
    return None


async def measure_peers(
    text: FileWorkload, repeat: int, note: Callable[[str], None]
) -> dict[str, Timing]:
    """Time every peer of ``text``'s format that can run here ``repeat`` times on it; note
    each skipped one."""
    timings: dict[str, Timing] = {}
    for peer in PEERS_OF[text.form]:
        if (reason := missing(peer)) is not None:
            note(f"{text.name} {peer.label}: skipped, {reason}")
            continue
        note(f"{text.name} {peer.label}")
        timings[peer.name] = await measure_peer(peer, text, repeat)
    return timings


async def measure_peer(peer: Peer, text: FileWorkload, repeat: int) -> Timing:
    """Time ``peer`` on ``text`` (in a thread, so as not to block the event loop)."""
    return await measure(
        lambda: asyncio.to_thread(peer.total, text.path),
        lambda total: same(total, text.expected),
        repeat=repeat,
    )
