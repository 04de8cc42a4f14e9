"""The `chunksum` command line: in-process main() calls, real subprocesses, and the Procfile."""

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import psutil  # type: ignore[import-untyped]  # psutil ships no type stubs
import pyarrow as pa
import pytest
from pyarrow import parquet
from redis import Redis

from app.cli import main
from app.keys import Keys
from app.redis_server import RedisServer
from app.settings import ENV_PREFIX, Settings
from app.submit import Client
from tests.harness import (
    ROOT,
    eventually,
    free_port,
    process_env,
    queue_holds,
    run_ids,
    worker_command,
)
from tests.test_dashboard import fetch

SUBPROCESS_TIMEOUT_S = 60
PROCFILE_TIMEOUT_S = 30


def clean_env(**extra: str) -> dict[str, str]:
    """Return this environment without REDIS_URL and CHUNKSUM_* variables, plus ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name != "REDIS_URL" and not name.startswith(ENV_PREFIX)
    }
    return {**env, **extra}


def chunksum(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m app.cli ARGS`` to completion and return its exit status and output."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )


def lines_of(text: str) -> dict[str, str]:
    """Parse ``name  value`` lines, as the result and status commands print them."""
    return dict(line.split(maxsplit=1) for line in text.splitlines() if line.strip())


def marked_processes(marker: str) -> list[str]:
    """Return the command lines of live processes whose TMPDIR or command line holds ``marker``."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "environ", "status"]):
        info: dict[str, Any] = process.info
        if info["pid"] == os.getpid() or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(info["cmdline"] or [])
        if marker in cmdline or (info["environ"] or {}).get("TMPDIR") == marker:
            found.append(cmdline)
    return found


# In-process: main() as the console script calls it, against the session Redis.


@pytest.fixture(scope="module")
def cli_settings(redis_server: RedisServer) -> Settings:
    """Return the settings main() resolves here: the environment's, with the test --redis-url."""
    return replace(Settings.from_env(), redis_url=redis_server.url)


@pytest.fixture(scope="module")
def cli_worker(cli_settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """Run one real `chunksum worker` with those settings for this module's tests."""
    process = subprocess.Popen(
        worker_command(),
        env=process_env(cli_settings),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_main(*args: str, settings: Settings) -> int:
    """Call main() with ``args`` and the test Redis URL."""
    assert settings.redis_url is not None
    return main([*args, "--redis-url", settings.redis_url])


@pytest.mark.usefixtures("cli_worker")
def test_submit_prints_the_total(
    cli_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`submit --range 1 100 --chunks 3` prints the run id, total 5050 and the counts."""
    args = ("submit", "--range", "1", "100", "--chunks", "3", "--timeout", "30", "--quiet")
    assert run_main(*args, settings=cli_settings) == 0
    out, err = capsys.readouterr()
    printed = lines_of(out)
    assert list(printed) == ["run_id", "total", "count"]
    assert printed["total"] == "5050"
    assert printed["count"].startswith("100 numbers in 3 chunks, ")
    assert len(printed["run_id"]) == 32
    assert err == ""


@pytest.mark.usefixtures("cli_worker")
def test_submit_json_then_status_and_result(
    cli_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`submit --json` prints parseable JSON; `status` and `result` then report that run."""
    args = ("submit", "--range", "1", "100", "--chunks", "3", "--timeout", "30", "--json")
    started = time.perf_counter()
    assert run_main(*args, settings=cli_settings) == 0
    wall_s = time.perf_counter() - started
    submitted = json.loads(capsys.readouterr().out)
    assert (submitted["total"], submitted["count"], submitted["chunks"]) == (5050, 100, 3)
    assert 0 < submitted["elapsed_s"] <= wall_s  # timed within the call
    run_id = submitted["run_id"]

    assert run_main("status", run_id, settings=cli_settings) == 0
    status = lines_of(capsys.readouterr().out)
    assert (status["run_id"], status["status"], status["total"]) == (run_id, "done", "5050")
    assert (status["count"], status["chunks"], status["done_chunks"]) == ("100", "3", "3")
    assert "error" not in status

    assert run_main("status", run_id, "--json", settings=cli_settings) == 0
    fields = json.loads(capsys.readouterr().out)
    assert fields["status"] == "done"
    assert (fields["total"], fields["count"], fields["chunks"], fields["done_chunks"]) == (
        5050,
        100,
        3,
        3,
    )
    assert fields["finished_at"] >= fields["created_at"]
    assert fields["error"] is None

    assert run_main("result", run_id, settings=cli_settings) == 0
    assert capsys.readouterr().out == "5050\n"


@pytest.mark.usefixtures("cli_worker")
def test_submit_file_gives_the_exact_total(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`submit --file` sums ints and floats, skipping blank lines, exactly (not 1.0 as sum())."""
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("100000000000000000000\n\n0.5\n  -100000000000000000000  \n\n1\n")
    args = ("submit", "--file", str(numbers), "--timeout", "30", "--json")
    assert run_main(*args, settings=cli_settings) == 0
    submitted = json.loads(capsys.readouterr().out)
    assert (submitted["total"], submitted["count"]) == (1.5, 4)


@pytest.mark.usefixtures("cli_worker")
def test_decimal_sums_decimal_text_exactly(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`submit --file --decimal`: 0.1 + 0.2 is 0.3, printed so, and a string in JSON."""
    numbers = tmp_path / "ledger.txt"
    numbers.write_text("0.1\n0.2\n")
    args = ("submit", "--file", str(numbers), "--decimal", "--timeout", "30")
    assert run_main(*args, "--quiet", settings=cli_settings) == 0
    assert lines_of(capsys.readouterr().out)["total"] == "0.3"
    assert run_main(*args, "--json", settings=cli_settings) == 0
    assert json.loads(capsys.readouterr().out)["total"] == "0.3"


@pytest.mark.usefixtures("cli_worker")
def test_huge_int_total_is_printed_in_full(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A total of over 4300 digits prints in full, and as a JSON string, not a traceback."""
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("9" * 5000 + "\n1\n")
    expected = "1" + "0" * 5000
    args = ("submit", "--file", str(numbers), "--timeout", "30", "--quiet")
    assert run_main(*args, settings=cli_settings) == 0
    assert lines_of(capsys.readouterr().out)["total"] == expected
    assert run_main(*args, "--json", settings=cli_settings) == 0
    submitted = json.loads(capsys.readouterr().out)
    assert submitted["total"] == expected
    assert run_main("result", submitted["run_id"], settings=cli_settings) == 0
    assert capsys.readouterr().out == expected + "\n"


def test_result_of_an_unknown_run_fails(
    cli_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`result` and `status` of an unknown id exit 1, naming the id on stderr."""
    for command in ("result", "status"):
        assert run_main(command, "no-such-run", settings=cli_settings) == 1
        out, err = capsys.readouterr()
        assert out == ""
        assert err.startswith("chunksum: error: no run 'no-such-run' under key prefix")


@pytest.mark.parametrize(
    "args", [("submit", "--range", "1", "3"), ("status", "abc"), ("result", "abc")]
)
def test_unreachable_redis_fails_clearly(
    args: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    """A --redis-url nothing listens on exits 1 with 'cannot reach Redis' and the URL."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert main([*args, "--redis-url", url]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"chunksum: error: cannot reach Redis at {url}")


@pytest.mark.usefixtures("cli_worker")
def test_bad_line_in_a_file_fails_with_its_line_number(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file with a non-number exits 1, naming the file and line number on stderr."""
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("1\n\n2.5\nseven\n4\n")
    assert run_main("submit", "--file", str(numbers), "--quiet", settings=cli_settings) == 1
    err = capsys.readouterr().err
    assert f"line 4 of {numbers} is 'seven', not a number" in err


@pytest.mark.usefixtures("cli_worker")
def test_binary_file_fails_with_its_line_number(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that isn't UTF-8 text exits 1 with a line number, not a traceback."""
    numbers = tmp_path / "numbers.bin"
    numbers.write_bytes(b"1\n\xff\xfe\x00\x01\n")
    assert run_main("submit", "--file", str(numbers), "--quiet", settings=cli_settings) == 1
    assert f"line 2 of {numbers} is " in capsys.readouterr().err


def test_missing_file_fails_clearly(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --file that doesn't exist exits 1 naming it, not with a traceback."""
    missing = tmp_path / "missing.txt"
    assert run_main("submit", "--file", str(missing), settings=cli_settings) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"chunksum: error: cannot read '{missing}' (No such file")


def test_a_format_for_stdin_fails_clearly(
    cli_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--file - --format csv` exits 1: stdin is read as lines, a CSV needs --file PATH."""
    args = ("submit", "--file", "-", "--format", "csv", "--column", "a")
    assert run_main(*args, settings=cli_settings) == 1
    assert "--format csv reads a file: give --file PATH" in capsys.readouterr().err


def test_zero_chunks_fails_clearly(
    cli_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--chunks 0` exits 1 saying chunks must be positive."""
    args = ("submit", "--range", "1", "10", "--chunks", "0")
    assert run_main(*args, settings=cli_settings) == 1
    assert "chunks must be a positive int, got 0" in capsys.readouterr().err


def test_chunks_and_chunk_size_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    """Argparse rejects --chunks together with --chunk-size (exit status 2)."""
    with pytest.raises(SystemExit) as caught:
        main(["submit", "--range", "1", "10", "--chunks", "2", "--chunk-size", "5"])
    assert caught.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


# Real subprocesses: `chunksum run` as the README shows it.


@pytest.fixture
def private_tmp() -> Iterator[str]:
    """Return a short temp dir (Unix socket paths are limited to about 100 bytes)."""
    with tempfile.TemporaryDirectory(prefix="chunksum-cli-") as path:
        yield path


@pytest.mark.timeout(90)
def test_run_starts_and_stops_its_own_redis_and_workers(private_tmp: str) -> None:
    """The README's `run` without REDIS_URL sums on a private Redis, then leaves no process."""
    # TMPDIR puts the private Redis's socket dir here, and marks the run's processes
    env = clean_env(TMPDIR=private_tmp)
    done = chunksum("run", "--range", "1", "10000", "--chunks", "4", "--workers", "2", env=env)
    assert done.returncode == 0, done.stderr
    printed = lines_of(done.stdout)
    assert printed["total"] == "50005000"
    assert printed["count"].startswith("10000 numbers in 4 chunks, ")
    assert marked_processes(private_tmp) == []
    assert os.listdir(private_tmp) == []  # the socket dir is removed too


@pytest.mark.timeout(90)
def test_run_sums_numbers_piped_on_stdin() -> None:
    """Numbers piped to `run --workers 1` are read from stdin and summed exactly."""
    done = chunksum("run", "--workers", "1", env=clean_env(), stdin="1\n2.5\n-3\n")
    assert done.returncode == 0, done.stderr
    assert lines_of(done.stdout)["total"] == "0.5"


@pytest.mark.timeout(90)
def test_run_with_a_redis_url_uses_that_redis(settings: Settings) -> None:
    """`run --redis-url URL --workers 1` sums on that Redis, leaving the run hash there."""
    assert settings.redis_url is not None
    env = clean_env(**{k: v for k, v in settings.to_env().items() if k != "REDIS_URL"})
    args = ("run", "--range", "1", "100", "--redis-url", settings.redis_url, "--workers", "1")
    done = chunksum(*args, "--json", env=env)
    assert done.returncode == 0, done.stderr
    submitted = json.loads(done.stdout)
    assert submitted["total"] == 5050
    run_id = submitted["run_id"]
    with Redis.from_url(settings.redis_url) as redis:
        stored = cast(dict[bytes, bytes], redis.hgetall(Keys(settings.key_prefix).run(run_id)))
    assert (stored[b"status"], stored[b"total"]) == (b"done", b"5050")


# The Procfile: its worker command must find the code and the queue the client uses.


def procfile_command(process: str) -> list[str]:
    """Return the Procfile's command for ``process`` (worker, web), split into arguments."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            return shlex.split(command)
    raise AssertionError(f"the Procfile has no {process}: line")


@pytest.fixture
def procfile_worker() -> list[str]:
    """Return the Procfile's `worker:` command, split into arguments."""
    return procfile_command("worker")


@pytest.mark.timeout(60)
async def test_procfile_web_needs_a_token_to_view(settings: Settings) -> None:
    """The Procfile's web command (bound to 0.0.0.0) won't start without a token to ask
    viewers for; with CHUNKSUM_DASHBOARD_READ_TOKEN it answers 401 without it, 200 with it."""
    port = free_port()
    command = [arg.replace("${PORT:-8000}", str(port)) for arg in procfile_command("web")]
    assert command[:2] == ["chunksum", "dashboard"]
    env = clean_env(**settings.to_env())
    refused = await asyncio.to_thread(chunksum, *command[1:], env=env)
    assert refused.returncode == 1
    assert "CHUNKSUM_DASHBOARD_READ_TOKEN" in refused.stderr
    env["CHUNKSUM_DASHBOARD_READ_TOKEN"] = "procfile-token"
    web = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", *command[1:], env=env, cwd=ROOT
    )
    try:
        url = f"http://127.0.0.1:{port}/api/state"

        async def answering() -> int | None:
            try:
                return (await fetch(url))[0]
            except urllib.error.URLError:  # not listening yet
                return None

        assert await eventually(answering, timeout_s=20, what="the web process") == 401
        assert (await fetch(url, token="procfile-token"))[0] == 200
    finally:
        web.terminate()
        await asyncio.wait_for(web.wait(), 15)


@pytest.mark.timeout(90)
async def test_procfile_worker_runs_submitted_jobs(
    settings: Settings, client: Client, procfile_worker: list[str]
) -> None:
    """The Procfile's worker command, with --burst, sums a submitted run and exits 0."""
    env = process_env(settings)
    # a deployment runs the command with its environment's scripts on PATH
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    executable = shutil.which(procfile_worker[0], path=env["PATH"])
    assert executable is not None, f"{procfile_worker[0]} is not on PATH"
    # start the burst worker once there is work: the submitter publishes after enqueueing
    wake = client.redis.pubsub()
    await wake.subscribe(client.keys.wake_channel)
    try:
        submitted = asyncio.create_task(client.submit(range(1, 10_001), chunks=4, timeout=30))
        async with asyncio.timeout(10):
            while await wake.get_message(ignore_subscribe_messages=True, timeout=None) is None:
                pass  # the subscription's confirmation
    finally:
        await wake.aclose()  # type: ignore[no-untyped-call]  # redis-py: unannotated
    worker = await asyncio.create_subprocess_exec(
        executable,
        *procfile_worker[1:],
        "--burst",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(PROCFILE_TIMEOUT_S):
            result = await submitted
            output, _ = await worker.communicate()
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    assert (result.total, result.count, result.chunks) == (50_005_000, 10_000, 4)
    assert worker.returncode == 0, output.decode()


@pytest.mark.usefixtures("cli_worker")
def test_wait_and_cancel_of_a_finished_run(
    cli_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`wait` prints a finished run's total; `cancel` of it says it had already ended."""
    args = ("submit", "--range", "1", "10", "--timeout", "30", "--json")
    assert run_main(*args, settings=cli_settings) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    assert run_main("wait", run_id, "--timeout", "5", settings=cli_settings) == 0
    assert capsys.readouterr().out == "55\n"
    assert run_main("cancel", run_id, settings=cli_settings) == 0
    assert capsys.readouterr().out == f"run {run_id} had already ended: done\n"


@pytest.mark.timeout(60)
async def test_ctrl_c_on_submit_cancels_the_run(settings: Settings, client: Client) -> None:
    """SIGINT (Ctrl-C) to `chunksum submit` with no workers: exit 130, run cancelled, its
    queued chunks removed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "app.cli", "submit", "--range", "1", "1000", "--chunks", "4", "-q"),
        env=process_env(settings),
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await eventually(
            lambda: queue_holds(client.redis, client.keys, 4),
            timeout_s=20,
            what="its 4 jobs queued",
        )
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    finally:  # a failure here must not leave the process, and its pipes, to later tests
        if process.returncode is None:
            process.kill()
            await process.communicate()
    assert process.returncode == 130, err.decode()
    assert "interrupted; the run was cancelled" in err.decode()
    (run_id,) = await run_ids(client.redis, client.keys)
    run = await client.status(run_id)
    assert (run.status, run.total) == ("cancelled", None)
    assert await client.redis.zcard(client.keys.queue) == 0


@pytest.mark.usefixtures("cli_worker")
def test_submit_shared_file_is_read_by_the_workers(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`submit --file PATH --shared` has the workers read the file in byte ranges
    (--chunk-bytes), exactly, counting its numbers."""
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("".join(f"{i}\n" for i in range(-500, 2000)) + f"{2**70}\n")
    args = ("submit", "--file", str(numbers), "--shared", "--chunk-bytes", "1000", "--json")
    assert run_main(*args, "--timeout", "30", settings=cli_settings) == 0
    submitted = json.loads(capsys.readouterr().out)
    expected = sum(range(-500, 2000)) + 2**70
    assert (submitted["total"], submitted["count"]) == (str(expected), 2501)
    assert submitted["chunks"] == -(-numbers.stat().st_size // 1000)


@pytest.mark.usefixtures("cli_worker")
def test_npy_files_are_summed_shared_or_sent(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A .npy --file is an array: the workers map it (--shared) or this process sends its
    numbers; --format lines reads the same file as text, and fails naming a line."""
    path = tmp_path / "numbers.npy"
    np.save(path, np.arange(-(2**40), -(2**40) + 5000, dtype=np.int64))
    expected = sum(range(-(2**40), -(2**40) + 5000))
    for shared in (("--shared",), ()):
        args = ("submit", "--file", str(path), *shared, "--json", "--timeout", "30")
        assert run_main(*args, settings=cli_settings) == 0
        submitted = json.loads(capsys.readouterr().out)
        assert (submitted["total"], submitted["count"]) == (expected, 5000)
    args = ("submit", "--file", str(path), "--format", "lines", "--quiet", "--timeout", "30")
    assert run_main(*args, settings=cli_settings) == 1
    assert re.search(rf"line \d+ of {re.escape(str(path))} is ", capsys.readouterr().err)


@pytest.mark.usefixtures("cli_worker")
def test_parquet_column_by_reference_or_sent(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A .parquet --file sums its --column: read by the workers with --shared, else sent by
    this process; without --column it fails, saying to name one."""
    path = tmp_path / "t.parquet"
    values = list(range(-3000, 7000))
    parquet.write_table(pa.table({"x": values}), path, row_group_size=1000)
    for shared in (("--shared",), ()):
        args = ("submit", "--file", str(path), "--column", "x", *shared, "--json")
        assert run_main(*args, "--timeout", "30", settings=cli_settings) == 0
        submitted = json.loads(capsys.readouterr().out)
        assert (submitted["total"], submitted["count"]) == (sum(values), len(values))
    assert run_main("submit", "--file", str(path), settings=cli_settings) == 1
    assert "is a Parquet file: name its --column" in capsys.readouterr().err


@pytest.mark.usefixtures("cli_worker")
def test_csv_column_by_reference_or_raw(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`submit --file x.csv --column NAME --shared` sums the column on the workers; without
    --shared this process ships the rows, unparsed, and the total is the same."""
    path = tmp_path / "t.csv"
    path.write_text("id,amount\n" + "".join(f"{i},{i * 3}\n" for i in range(1000)))
    args = ("submit", "--file", str(path), "--column", "amount", "--json", "--timeout", "30")
    for shared in (("--shared",), ()):
        assert run_main(*args, *shared, settings=cli_settings) == 0
        submitted = json.loads(capsys.readouterr().out)
        assert (submitted["total"], submitted["count"]) == (3 * sum(range(1000)), 1000)
