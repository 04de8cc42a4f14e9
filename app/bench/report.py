"""`chunksum bench`'s output: a table for people, or every raw number as one JSON object."""

import io
import json
import shutil
import sys
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from app.bench.peers import LABELS, PYTHON
from app.bench.workloads import Timing

Results = dict[str, dict[str, Timing]]
"""Row (workload) -> contender (chunksum, naive, local, floor; a file's peers) -> its timing."""

COMPARED = {
    "W8 raw bytes": ("W8", "polars"),
    "W8f": ("W8", "chunksum"),
    "W8f decimal": ("W8", "chunksum"),
}
"""Rows whose chunksum time is also given as a multiple of another row's contender's."""

BASELINES = {
    "naive": "obvious arq",
    "tuned": "hand-tuned arq",
    "local": "local sum",
    "floor": "Redis floor",
}
PIPED_WIDTH = 160
RATIO_NOTE = (
    "xN after a baseline or a peer: its median over chunksum's (above 1: chunksum is N times "
    "faster); ✗: a wrong or inexact total"
)


@dataclass(frozen=True, slots=True)
class Report:
    """Everything one bench run measured, and on what."""

    machine: dict[str, Any]
    options: dict[str, Any]
    results: Results

    def chunksum_correct(self) -> bool:
        """Tell whether every chunksum result was exactly right."""
        return all(row["chunksum"].correct for row in self.results.values() if "chunksum" in row)

    def to_json(self) -> dict[str, Any]:
        """Return the machine, the options, and every timing, with chunksum's speed-ups."""
        rows = {
            name: {contender: _timing_json(row, contender) for contender in row}
            for name, row in self.results.items()
        }
        return {
            "machine": self.machine,
            "options": self.options,
            "workloads": rows,
            "ratios": ratios(self.results),
        }


def ratios(results: Results) -> dict[str, float]:
    """Return, for each row of COMPARED that ran with what it is compared to, chunksum's
    median over it, keyed ``"W8f / W8 chunksum"``."""
    found = {}
    for name, (other, contender) in COMPARED.items():
        mine, theirs = results.get(name, {}).get("chunksum"), results.get(other, {}).get(contender)
        if mine is not None and theirs is not None:
            found[f"{name} / {other} {contender}"] = mine.median_s / theirs.median_s
    return found


def render(report: Report, *, as_json: bool) -> str:
    """Return the report as JSON, or as a header line and a table."""
    if as_json:
        return json.dumps(report.to_json(), indent=2)
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else PIPED_WIDTH
    text = io.StringIO()
    Console(file=text, width=width).print(_table(report))
    return f"{_header(report)}\n{text.getvalue()}{RATIO_NOTE}"


def _timing_json(row: dict[str, Timing], contender: str) -> dict[str, Any]:
    fields = row[contender].to_json()
    if contender != "chunksum" and "chunksum" in row:
        fields["chunksum_speedup"] = row[contender].median_s / row["chunksum"].median_s
    return fields


def _header(report: Report) -> str:
    machine, options = report.machine, report.options
    return (
        f"chunksum bench: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, "
        f"Redis {machine['redis']}; {options['workers']} workers, repeat {options['repeat']}, "
        f"scale {options['scale']:g}"
    )


def _table(report: Report) -> Table:
    table = Table("workload", "chunksum median (min-max)", *BASELINES.values(), "ok", "notes")
    for name, row in report.results.items():
        chunksum = row.get("chunksum")
        cells = [_baseline_cell(_baseline(row, key), chunksum) for key in BASELINES]
        table.add_row(
            name,
            _spread(chunksum) if chunksum else "",
            *cells,
            _mark(chunksum) if chunksum else "",
            _notes(name, row, report.results),
        )
    return table


def _baseline(row: dict[str, Timing], key: str) -> Timing | None:
    """Return the row's baseline ``key``: a text file's local sum is its Python peer."""
    if key == "local" and key not in row:
        return row.get(PYTHON)
    return row.get(key)


def _baseline_cell(baseline: Timing | None, chunksum: Timing | None) -> str:
    if baseline is None:
        return ""
    text = duration(baseline.median_s)
    if chunksum is not None:
        text += f" x{ratio(baseline.median_s / chunksum.median_s)}"
    return text if baseline.correct else f"{text} ✗"


def _spread(timing: Timing) -> str:
    if len(timing.times_s) == 1:
        return f"{duration(timing.median_s)} (1 run)"
    low, high = min(timing.times_s), max(timing.times_s)
    return f"{duration(timing.median_s)} ({duration(low)}-{duration(high)})"


def _mark(timing: Timing) -> str:
    return "✓" if timing.correct else "✗"


def _notes(name: str, row: dict[str, Timing], results: Results) -> str:
    chunksum = row.get("chunksum")
    if chunksum is None:
        return ""
    extra, median_s = chunksum.extra, chunksum.median_s
    if name.startswith("W5"):
        return (
            f"{rate(extra['numbers_per_s'])} numbers/s, submitter RSS "
            f"{extra['peak_rss_mb']:.0f} MB, Redis +{extra['redis_growth_mb']:.1f} MB"
        )
    if name == "W6":
        serial_s = extra["serial_loop_s"]
        return f"a serial loop takes {duration(serial_s)}: x{ratio(serial_s / median_s)}"
    if name == "W7":
        return _idle_notes(row)
    if "file_mb" in extra:
        return _file_notes(name, row, results)
    return _rate_notes(name, row, results)


def _rate_notes(name: str, row: dict[str, Timing], results: Results) -> str:
    """Return a sized workload's rates, and what else its row measured."""
    extra, median_s = row["chunksum"].extra, row["chunksum"].median_s
    numbers, chunks = rate(extra["numbers"] / median_s), rate(extra["chunks"] / median_s)
    rates = f"{numbers} numbers/s, {chunks} chunks/s"
    if (trip := row.get("round_trip")) is not None:
        trip_s = trip.median_s
        rates += f"; {median_s / trip_s:.0f} Redis round trips of {duration(trip_s)}"
    if idle_max_s := extra.get("idle_max_s"):
        rates += f"; each after the workers idled a random 0-{duration(idle_max_s)}"
    if name in ("W3list", "W4"):
        if "chunksum" in results.get("W3", {}):
            rates += f"; {median_s / results['W3']['chunksum'].median_s:.2f}x W3's time"
        if "float_sum_ns" in extra:
            rates += "; " + _float_sum_note(extra)
    return rates


def _float_sum_note(extra: dict[str, float]) -> str:
    """Return the exact float sum's ns a number: the workers' path, then NumPy's alone."""
    numpy_ns = extra["float_sum_numpy_ns"]
    if not extra["float_sum_compiled"]:
        return f"exact float sum {numpy_ns:.1f} ns a number (NumPy; numba not installed)"
    return f"exact float sum {extra['float_sum_ns']:.1f} ns a number (NumPy alone {numpy_ns:.1f})"


def _idle_notes(row: dict[str, Timing]) -> str:
    per_worker = "idle_commands_per_s_per_worker"
    text = (
        f"1-number submit after {duration(row['chunksum'].extra['idle_gap_s'])} idle; "
        f"Redis commands/s per idle worker: {row['chunksum'].extra[per_worker]:.1f}"
    )
    others = [
        f"{BASELINES[key]}: {row[key].extra[per_worker]:.1f}"
        for key in ("naive", "tuned")
        if key in row
    ]
    return f"{text} ({'; '.join(others)})" if others else text


def _file_notes(name: str, row: dict[str, Timing], results: Results) -> str:
    """Return a file row's notes: its peers', and its time as a multiple of another row's."""
    text = _peer_notes(row)
    if name in COMPARED:
        other, contender = COMPARED[name]
        key = f"{name} / {other} {contender}"
        if (value := ratios(results).get(key)) is not None:
            whose = LABELS.get(contender, contender)
            text += f"; {value:.2f}x the time of {whose} in {other}"
    return text


def _peer_notes(row: dict[str, Timing]) -> str:
    """Return a file row's rate and file size, then each peer's median and ratio (Python's is
    a column)."""
    chunksum = row["chunksum"]
    numbers, file_mb = chunksum.extra["numbers"], chunksum.extra["file_mb"]
    size = f"{file_mb:,.0f}" if file_mb >= 10 else f"{file_mb:.2g}"
    text = f"{rate(numbers / chunksum.median_s)} numbers/s from a {size} MB file"
    peers = [
        f"{LABELS[name]} {_baseline_cell(timing, chunksum)}"
        for name, timing in row.items()
        if name in LABELS and name != PYTHON
    ]
    return f"{text}; {', '.join(peers)}" if peers else text


def duration(seconds: float) -> str:
    """Return a duration with a unit that suits it: 0.42 ms, 7.1 ms, 1.23 s."""
    if seconds < 0.01:
        return f"{seconds * 1000:.2f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def ratio(value: float) -> str:
    """Return a ratio with two significant digits, or none after the point from 10 up."""
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def rate(per_s: float) -> str:
    """Return a rate per second: 279, 12.3 k, 65.1 M."""
    if per_s >= 1e6:
        return f"{per_s / 1e6:.1f} M"
    if per_s >= 1e4:
        return f"{per_s / 1e3:.1f} k"
    return f"{per_s:.0f}"
