"""`chunksum bench` on tiny sizes: every workload and baseline runs and its checks pass.

Nothing here asserts a timing: only that the machinery runs and measures right answers.
"""

import asyncio
import json
import math
import shutil
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from arq.connections import ArqRedis
from arq.constants import result_key_prefix
from arq.worker import Worker

from app.bench import datafiles, naive_worker, tuned_worker, workloads
from app.bench.baselines import (
    ARQ_BASELINES,
    ArqBaseline,
    measure_arq,
    measure_floor,
    measure_local,
)
from app.bench.datafiles import (
    FileWorkload,
    Format,
    write_float_workload,
    write_table_workloads,
    write_text_workload,
)
from app.bench.file_runs import VARIANTS, measure_variant
from app.bench.float_sums import float_sum_ns
from app.bench.keys import floor_key
from app.bench.peers import (
    FLOAT_PEERS,
    PEERS,
    PEERS_OF,
    Peer,
    awk_sum,
    measure_peer,
    measure_peers,
    missing,
)
from app.bench.phases import (
    BenchOptions,
    in_order,
    measure_chunksum,
    measure_idle,
    parse_only,
    submit_one,
)
from app.bench.report import Report, render
from app.bench.slow_chunks import submit_slow
from app.bench.stream import write_numbers
from app.bench.workloads import (
    W1_RUNS,
    W1I_IDLE_MAX_S,
    W1I_RUNS,
    Timing,
    build,
    idle_times,
    measure,
)
from app.cli import main
from app.errors import SettingsError
from app.heartbeat import BEAT_S
from app.keys import Keys
from app.redis_server import RedisServer
from app.settings import Settings
from app.submit import Client
from tests.harness import stop_worker

TINY = 0.0001  # W1: 1 number, W3: 1,000 numbers, W5: 10,000 numbers, W8, W8f, W9: 1,000
MACHINE = {"cpu": "CPU", "cores": 2, "python": "3.11", "redis": "7.0"}


@pytest.fixture(params=ARQ_BASELINES, ids=lambda baseline: baseline.key)
async def arq_baseline(
    request: pytest.FixtureRequest, settings: Settings, redis: ArqRedis
) -> AsyncIterator[tuple[ArqBaseline, ArqRedis]]:
    """Run an in-process plain arq worker for an arq baseline (obvious, then hand-tuned),
    configured as its worker settings module configures it; yield the baseline and its pool."""
    baseline: ArqBaseline = request.param
    pool = await baseline.open_pool(settings)
    module = naive_worker if baseline.key == "naive" else tuned_worker
    options = {
        name: getattr(module.WorkerSettings, name)
        for name in ("functions", "queue_name", "job_serializer", "job_deserializer")
        if hasattr(module.WorkerSettings, name)
    }
    worker = Worker(**options, redis_pool=pool, poll_delay=0.01, handle_signals=False)
    task = asyncio.create_task(worker.async_run())
    yield baseline, pool
    await stop_worker(worker, task, Keys(settings.key_prefix))
    await pool.aclose()


async def test_chunksum_sums_every_sized_workload_exactly(client: Client, worker: Worker) -> None:
    """W1-W4, W3list and W6 at a tiny scale give chunksum totals equal to their exact
    references; W1, a few milliseconds long, runs W1_RUNS times per repeat."""
    assert build("W3list", TINY).numbers == np.asarray(build("W3", TINY).numbers).tolist()
    for name in ("W1", "W2", "W3", "W3list", "W4", "W6"):
        timing = await measure_chunksum(client, build(name, TINY), repeat=1)
        assert timing.correct, name
        assert len(timing.times_s) == (W1_RUNS if name == "W1" else 1)
        assert ("float_sum_ns" in timing.extra) == (name == "W4")


def test_w7_counts_idle_commands_over_whole_heartbeats() -> None:
    """W7's idle window at full scale spans a whole number of heartbeats, so the commands it
    counts don't depend on where the beats fall in it."""
    window_s, _, _ = idle_times(1.0)
    assert window_s >= BEAT_S
    assert (window_s / BEAT_S).is_integer()


async def test_w1i_is_w1_after_the_same_random_idle_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """W1i is W1's submit, each run after the workers idled a random 0-0.5 s: a seeded
    sequence, the same for every contender, outside the timing."""
    w1, w1i = build("W1", 1), build("W1i", 1)
    assert (w1i.numbers, w1i.chunks, w1i.expected) == (w1.numbers, w1.chunks, w1.expected)
    assert (w1i.idle_max_s, w1i.runs_per_repeat, w1.idle_max_s) == (W1I_IDLE_MAX_S, W1I_RUNS, 0)
    idled: list[float] = []

    async def sleep(seconds: float) -> None:
        idled.append(seconds)

    async def run() -> int:
        return 1

    monkeypatch.setattr("app.bench.workloads.asyncio.sleep", sleep)
    for _ in range(2):  # two contenders
        timing = await measure(run, lambda total: total == 1, repeat=5, idle_max_s=0.5)
        assert timing.correct
        assert len(timing.times_s) == 5
    assert idled[:5] == idled[5:]
    assert all(0 <= seconds <= 0.5 for seconds in idled)
    assert len(set(idled)) == 5


def test_the_exact_float_sum_is_timed_compiled_and_with_numpy() -> None:
    """W4's floats are summed chunk by chunk, compiled (numba comes with the test extra) and
    with NumPy alone, each timed in ns a number."""
    extra = float_sum_ns(build("W4", 0.01))
    assert extra["float_sum_compiled"] == 1.0
    assert 0 < extra["float_sum_ns"] < 1_000
    assert 0 < extra["float_sum_numpy_ns"] < 1_000


async def test_slow_chunks_await_their_io_then_sum(client: Client, worker: Worker) -> None:
    """The bench's slow chunks each await io_s before summing, exactly, as sum_chunk does."""
    result = await submit_slow(client, range(40), chunks=4, timeout=30, io_s=0.05)
    assert result.total == sum(range(40))
    assert result.elapsed_s >= 0.05


async def test_local_sums_and_the_redis_floor_check_their_results(
    settings: Settings, redis: ArqRedis
) -> None:
    """numpy.sum is exact on W3's ints but not W4's floats; the floor gets its bytes back."""
    ints, floats = build("W3", TINY), build("W4", TINY)
    assert (await measure_local(ints, repeat=1)).correct
    assert not (await measure_local(floats, repeat=1)).correct
    floor = await measure_floor(settings, ints, repeat=2)
    assert floor.correct
    assert await redis.exists(floor_key(0)) == 0


async def test_the_arq_baselines_are_exact_on_ints_only(
    arq_baseline: tuple[ArqBaseline, ArqRedis],
) -> None:
    """The obvious and the hand-tuned arq code sum W1's and W3's ints exactly, W4's floats
    inexactly (Python's sum, numpy.sum), and leave no results."""
    baseline, pool = arq_baseline
    assert (await measure_arq(pool, baseline.sums, build("W1", 0.01), repeat=1)).correct
    assert (await measure_arq(pool, baseline.sums, build("W3", TINY), repeat=1)).correct
    assert not (await measure_arq(pool, baseline.sums, build("W4", TINY), repeat=1)).correct
    assert await pool.keys(f"{result_key_prefix}*") == []


def test_the_numbers_file_holds_one_number_a_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """W5's file holds 1..N, one per line, across the blocks it is written in."""
    monkeypatch.setattr(workloads, "WRITE_BLOCK", 4)
    path = tmp_path / "numbers.txt"
    write_numbers(path, 10)
    assert path.read_text() == "".join(f"{i}\n" for i in range(1, 11))


async def test_idle_workers_are_counted_then_probed(client: Client, worker: Worker) -> None:
    """W7 counts idle commands per worker and times one-number submits after idleness."""
    options = BenchOptions(workers=1, scale=TINY)
    timing = await measure_idle(client.redis, lambda: submit_one(client), options)
    assert timing.correct
    assert len(timing.times_s) == 3
    extra = timing.extra
    calls = sum(count for name, count in extra.items() if name.startswith("idle_calls."))
    per_s = calls / extra["idle_window_s"]  # one worker
    assert extra["idle_commands_per_s_per_worker"] == pytest.approx(per_s)
    assert "idle_calls.info" not in timing.extra


def test_bench_command_runs_workers_of_both_kinds(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """`chunksum bench --json --only W1,W5` reports chunksum and W1's baselines (the obvious
    and the hand-tuned arq code, each on real arq worker processes), all correct, and W5 from
    a generator, from its file by reference and from its file as raw bytes."""
    args = ["--redis-url", redis_server.url, "--workers", "1", "--repeat", "1", "--scale", "1e-4"]
    assert main(["bench", "--json", "--only", "w1,W5", *args]) == 0
    report = json.loads(capsys.readouterr().out)
    row = report["workloads"]["W1"]
    assert {name: row[name]["correct"] for name in row} == {
        "chunksum": True,
        "local": True,
        "naive": True,
        "tuned": True,
        "round_trip": True,  # the Redis round trip, W1's time counted in it
    }
    naive_s, chunksum_s = row["naive"]["median_s"], row["chunksum"]["median_s"]
    assert row["naive"]["chunksum_speedup"] == pytest.approx(naive_s / chunksum_s)
    for source in ("W5 generator", "W5 file", "W5 file raw bytes"):  # each by a child process
        stream = report["workloads"][source]["chunksum"]
        assert stream["correct"]
        assert stream["numbers"] == 10_000
        assert stream["peak_rss_mb"] > 1
        assert stream["redis_growth_mb"] < 10  # 10,000 numbers: about 0.1 MB at the peak
    assert report["options"]["only"] == ["W1", "W5"]


def test_the_table_shows_each_row_with_ratios_and_marks() -> None:
    """The human table has a row per workload, baselines as ratios, and a wrong result's mark."""
    results = {
        "W1": {
            "chunksum": Timing((0.01, 0.02, 0.03), True, {"numbers": 10_000, "chunks": 4}),
            "naive": Timing((0.5,), True),
            "round_trip": Timing((0.0001, 0.0002, 0.0003), True),
        },
        "W7": {
            "chunksum": Timing(
                (0.004,), False, {"idle_gap_s": 1.0, "idle_commands_per_s_per_worker": 1.0}
            )
        },
    }
    options = {"workers": 2, "repeat": 3, "scale": 1.0}
    report = Report(MACHINE, options, results)
    text = render(report, as_json=False)
    assert "CPU, 2 cores" in text
    assert "20 ms (10 ms-30 ms)" in text
    assert "500 ms x25" in text
    assert "100 Redis round trips" in text  # 20 ms over 0.2 ms
    assert "✗" in text
    assert not report.chunksum_correct()


@pytest.mark.parametrize(
    ("compiled", "note"),
    [
        (1.0, "exact float sum 1.6 ns a number (NumPy alone 7.4)"),
        (0.0, "exact float sum 7.4 ns a number (NumPy; numba not installed)"),
    ],
)
def test_w4s_notes_give_its_ratio_to_w3_and_the_float_sums_cost(
    compiled: float, note: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """W4's notes give its time as a multiple of W3's and the exact float sum's ns a number,
    the workers' path and NumPy's; W3list's, its time as a multiple of W3's."""
    monkeypatch.setattr("app.bench.report.PIPED_WIDTH", 400)  # one line per row, for the asserts
    numbers: dict[str, float] = {"numbers": 10**7, "chunks": 100}
    floats = {"float_sum_ns": 1.6, "float_sum_numpy_ns": 7.4, "float_sum_compiled": compiled}
    results = {
        "W3": {"chunksum": Timing((0.2,), True, numbers)},
        "W3list": {"chunksum": Timing((0.3,), True, numbers)},
        "W4": {"chunksum": Timing((0.25,), True, numbers | floats)},
    }
    report = Report(MACHINE, {"workers": 2, "repeat": 1, "scale": 1.0}, results)
    text = render(report, as_json=False)
    assert "1.25x W3's time; " + note in text
    assert "1.50x W3's time" in text  # W3list's, the same numbers from a Python list
    assert json.loads(render(report, as_json=True))["workloads"]["W4"]["chunksum"][
        "float_sum_ns"
    ] == pytest.approx(1.6)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workers": 0}, "--workers and --repeat must be at least 1"),
        ({"scale": 0.0}, "--scale must be in (0, 1000]"),
        ({"only": ("W10",)}, "unknown workloads W10"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], message: str) -> None:
    """Bad --workers, --scale and --only values raise SettingsError naming the option."""
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace("]", r"\]")):
        BenchOptions(**options)  # type: ignore[arg-type]  # the values vary by case


@pytest.mark.timeout(120)
def test_scaling_measures_both_kinds_and_plots(
    settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`bench --scaling` times CPU- and I/O-bound chunks and a file by reference for each
    worker count, exactly, and draws the curves."""
    assert settings.redis_url is not None
    plot = tmp_path / "scaling.png"
    args = ["bench", "--scaling", "--counts", "1,2", "--repeat", "1", "--scale", "0.01"]
    assert main([*args, "--json", "--plot", str(plot), "--redis-url", settings.redis_url]) == 0
    points = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert sorted((p["kind"], p["workers"]) for p in points) == [
        ("cpu", 1),
        ("cpu", 2),
        ("file", 1),
        ("file", 2),
        ("io", 1),
        ("io", 2),
    ]
    assert all(p["chunks_per_s"] > 0 for p in points)
    assert plot.read_bytes().startswith(b"\x89PNG")


@pytest.fixture
def text(tmp_path: Path) -> FileWorkload:
    """Write W8's file at the tiny scale: 1,000 numbers."""
    return write_text_workload(tmp_path / "w8.txt", TINY)


class TestW8:
    """W8, a text file of integers: the file, its peers, chunksum on it, and its table row."""

    def test_the_file_holds_w3s_numbers_one_a_line(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """W8's file holds W3's random int64s, one per line across blocks, and its reference
        (numpy block sums) is Python's exact sum of them."""
        monkeypatch.setattr(workloads, "WRITE_BLOCK", 300)
        monkeypatch.setattr(datafiles, "EXACT_BLOCK", 256)
        text = write_text_workload(tmp_path / "w8.txt", TINY)
        numbers = build("W3", TINY).numbers
        assert isinstance(numbers, np.ndarray)
        assert text.count == len(numbers) == 1_000
        assert text.path.read_text() == "".join(f"{n}\n" for n in numbers.tolist())
        assert text.expected == sum(numbers.tolist())
        assert type(text.expected) is int

    @pytest.mark.parametrize("peer", PEERS, ids=lambda peer: peer.name)
    async def test_each_installed_peer_sums_the_file_exactly(
        self, peer: Peer, text: FileWorkload
    ) -> None:
        """polars, DuckDB, pyarrow, awk and Python's one-liner each return W8's exact total
        (awk's partial sums stay below 2**53 here, where its doubles are exact)."""
        if (reason := missing(peer)) is not None:
            pytest.skip(reason)
        timing = await measure_peer(peer, text, repeat=2)
        assert len(timing.times_s) == 2
        assert timing.correct

    async def test_awks_doubles_are_marked_inexact(self, tmp_path: Path) -> None:
        """Past 2**53 awk's double total is wrong, and its Timing says so rather than failing."""
        if shutil.which("awk") is None:
            pytest.skip("awk is not on PATH")
        path = tmp_path / "big.txt"
        path.write_text(f"{2**53}\n1\n")
        assert awk_sum(path) == 2**53
        awk = next(peer for peer in PEERS if peer.name == "awk")
        workload = FileWorkload("W8", path, Format.INTS, 2, 2**53 + 1)
        timing = await measure_peer(awk, workload, repeat=1)
        assert not timing.correct

    async def test_a_missing_peer_is_skipped_with_a_note(
        self, text: FileWorkload, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A peer whose package is not installed is skipped, and a progress note says why."""
        absent = Peer(name="absent", label="Absent", total=awk_sum, module="no_such_module_x")
        python = next(peer for peer in PEERS if peer.name == "python")
        monkeypatch.setitem(PEERS_OF, Format.INTS, (absent, python))
        notes: list[str] = []
        timings = await measure_peers(text, 1, notes.append)
        assert list(timings) == ["python"]
        assert notes[0] == (
            "W8 Absent: skipped, no_such_module_x is not installed (pip install 'chunksum[bench]')"
        )

    async def test_chunksum_sums_the_file_exactly(
        self, client: Client, worker: Worker, text: FileWorkload
    ) -> None:
        """chunksum returns W8's exact total, each repeat, by reference (TextFile(path)) and
        as raw bytes (TextFile(path, shared=False))."""
        rows = [variant.row for variant in VARIANTS["W8"]]
        assert rows == ["W8", "W8 raw bytes"]
        for variant in VARIANTS["W8"]:
            timing = await measure_variant(client, variant, text, repeat=2)
            assert timing.correct, variant.row
            assert len(timing.times_s) == 2
            assert timing.extra["numbers"] == 1_000

    def test_the_table_shows_the_peers_as_ratios(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """W8's row shows Python's one-liner as its local sum and the other peers' medians
        and ratios in its notes; the JSON has every peer under its own name."""
        monkeypatch.setattr(
            "app.bench.report.PIPED_WIDTH", 400
        )  # one line per row, for the asserts
        row = {
            "polars": Timing((0.2,), True),
            "duckdb": Timing((0.1,), True),
            "awk": Timing((4.0,), False),
            "python": Timing((2.0,), True),
            "chunksum": Timing((0.4,), True, {"numbers": 10_000_000, "file_mb": 134.2}),
        }
        results = Report(MACHINE, {"workers": 2, "repeat": 1, "scale": 1.0}, {"W8": row})
        line = next(line for line in render(results, as_json=False).splitlines() if "W8" in line)
        assert "2.00 s x5" in line
        assert "25.0 M numbers/s from a 134 MB file; " in line
        assert "polars 200 ms x0.5, DuckDB 100 ms x0.25, awk 4.00 s x10 ✗" in line
        workloads = json.loads(render(results, as_json=True))["workloads"]
        assert set(workloads["W8"]) == set(row)
        assert workloads["W8"]["polars"]["chunksum_speedup"] == pytest.approx(0.5)

    def test_other_rows_are_compared_to_w8s(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """W8 raw bytes' time is given as a multiple of polars' in W8, and W8f's as one of
        W8's chunksum time, in the notes and in the JSON's ratios."""
        monkeypatch.setattr("app.bench.report.PIPED_WIDTH", 400)
        extra = {"numbers": 10_000_000, "file_mb": 134.2}
        results = {
            "W8": {"polars": Timing((0.2,), True), "chunksum": Timing((0.4,), True, extra)},
            "W8 raw bytes": {"chunksum": Timing((0.5,), True, extra)},
            "W8f": {"chunksum": Timing((0.6,), True, extra)},
        }
        report = Report(MACHINE, {"workers": 2, "repeat": 1, "scale": 1.0}, results)
        lines = render(report, as_json=False).splitlines()
        raw = next(line for line in lines if "W8 raw bytes" in line)
        assert "2.50x the time of polars in W8" in raw
        floats = next(line for line in lines if "W8f" in line)
        assert "1.50x the time of chunksum in W8" in floats
        ratios = json.loads(render(report, as_json=True))["ratios"]
        assert ratios == {
            "W8 raw bytes / W8 polars": pytest.approx(2.5),
            "W8f / W8 chunksum": pytest.approx(1.5),
        }

    def test_rows_come_in_workload_order(self) -> None:
        """W8's row, made in the first phase, still comes after W5's and W7's; rows of one
        workload keep their order."""
        timing = Timing((1.0,), True)
        rows = ["W8", "W9 CSV", "W8f", "W1", "W5 generator", "W5 file", "W7", "W8 raw bytes"]
        ordered = in_order({name: {"chunksum": timing} for name in rows})
        assert list(ordered) == [
            "W1",
            "W5 generator",
            "W5 file",
            "W7",
            "W8",
            "W8 raw bytes",
            "W8f",
            "W9 CSV",
        ]

    @pytest.mark.timeout(60)
    def test_bench_only_the_files_runs_the_peers_then_chunksum(
        self, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`chunksum bench --json --only W8,w8f,W9` reports every file row, chunksum and
        every installed peer of its format, chunksum's totals exact."""
        args = ["--redis-url", redis_server.url, "--workers", "1", "--repeat", "1"]
        assert main(["bench", "--json", "--only", "W8,w8f,W9", *args, "--scale", "1e-4"]) == 0
        report = json.loads(capsys.readouterr().out)
        rows = report["workloads"]
        assert list(rows) == ["W8", "W8 raw bytes", "W8f", "W8f decimal", "W9 CSV", "W9 Parquet"]
        for name, form in [("W8", Format.INTS), ("W8f", Format.FLOATS), ("W9 CSV", Format.CSV)]:
            installed = {peer.name for peer in PEERS_OF[form] if missing(peer) is None}
            assert set(rows[name]) == {"chunksum", *installed}, name
        assert all(row["chunksum"]["correct"] for row in rows.values())
        assert all(rows["W8"][name]["correct"] for name in rows["W8"])  # ints: every peer exact
        assert set(report["ratios"]) == {
            "W8 raw bytes / W8 polars",
            "W8f / W8 chunksum",
            "W8f decimal / W8 chunksum",
        }


def test_only_names_workloads_in_any_case() -> None:
    """--only takes W8f as w8f or W8F, and leaves unknown names for BenchOptions to refuse."""
    assert parse_only("w8f, W9,w1") == ("W8f", "W9", "W1")
    with pytest.raises(SettingsError, match="unknown workloads W10"):
        BenchOptions(only=parse_only("W10"))


class TestW8f:
    """W8f, decimal floats by reference: the file, its exact references, and its peers."""

    def test_the_file_holds_decimal_texts_and_their_exact_sums(self, tmp_path: Path) -> None:
        """Each line is a decimal with three places; the reference is math.fsum of the floats
        the lines parse to, and the decimal reference is the lines' exact decimal sum."""
        floats = write_float_workload(tmp_path / "w8f.txt", TINY)
        lines = floats.path.read_text().splitlines()
        assert len(lines) == floats.count == 1_000
        assert all(len(line.split(".")[1]) == 3 for line in lines)
        assert any(line.startswith("-") for line in lines)
        assert floats.expected == math.fsum(float(line) for line in lines)
        assert floats.decimal_expected == sum(Decimal(line) for line in lines)
        assert floats.form == Format.FLOATS

    async def test_chunksum_and_pythons_fsum_sum_it_exactly(
        self, client: Client, worker: Worker, tmp_path: Path
    ) -> None:
        """chunksum (by reference) and math.fsum return W8f's exact total, and chunksum's
        decimal sum its exact decimal total; the other float peers run and report whether
        theirs was exact."""
        floats = write_float_workload(tmp_path / "w8f.txt", TINY)
        as_floats, as_decimals = VARIANTS["W8f"]
        assert (await measure_variant(client, as_floats, floats, repeat=1)).correct
        assert (await measure_variant(client, as_decimals, floats, repeat=1)).correct
        timings = await measure_peers(floats, 1, lambda note: None)
        assert timings["python"].correct
        installed = {peer.name for peer in FLOAT_PEERS if missing(peer) is None}
        assert set(timings) == installed


class TestW9:
    """W9, a 4-column table: a CSV column and a Parquet column, by reference."""

    def test_the_table_is_written_as_csv_and_parquet(self, tmp_path: Path) -> None:
        """Both files hold the same four columns; amount's exact sum is the reference; the
        Parquet file has ten row groups at any scale."""
        import polars as pl
        from pyarrow import parquet

        csv, table = write_table_workloads(tmp_path, TINY)
        assert csv.path.read_text().splitlines()[0] == "id,day,category,amount"
        frame = pl.read_csv(csv.path)
        assert frame.columns == ["id", "day", "category", "amount"]
        assert csv.expected == table.expected == sum(frame["amount"].to_list())
        assert csv.count == table.count == frame.height == 1_000
        assert parquet.ParquetFile(table.path).metadata.num_row_groups == 10
        assert pl.read_parquet(table.path)["amount"].to_list() == frame["amount"].to_list()

    async def test_chunksum_and_the_peers_sum_the_column_exactly(
        self, client: Client, worker: Worker, tmp_path: Path
    ) -> None:
        """CsvColumn and ParquetColumn give amount's exact sum, as every installed peer does."""
        files = {file.name: file for file in write_table_workloads(tmp_path, TINY)}
        for variant in VARIANTS["W9"]:
            file = files[variant.file]
            assert (await measure_variant(client, variant, file, repeat=1)).correct, variant.row
            timings = await measure_peers(file, 1, lambda note: None)
            assert timings
            assert all(timing.correct for timing in timings.values()), variant.row
