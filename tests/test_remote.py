"""Tests for app.remote and the sum_url_range job: text files by URL (s3://, via fsspec),
read by the workers range by range, against moto's S3 server on a loopback port."""

import asyncio
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.worker import Worker
from hypothesis import given, settings
from hypothesis import strategies as st

from app import remote
from app.cli_inputs import FileOptions, command_line_input
from app.errors import ChunksumError, FileInputError, RunFailedError, SettingsError
from app.files import SCAN_BYTES, TextFile, plan_ranges, read_lines
from app.keys import SUM_URL_JOB, Keys
from app.remote import ObjectStamp, is_url, read_url_lines, stamp_url, sum_url_range
from app.settings import Settings
from app.sources import plan_source
from app.submit import Client
from tests.harness import ROOT, eventually, queue_holds, running_worker

fsspec = pytest.importorskip("fsspec")
s3fs = pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
REGION = "us-east-1"
# every cut of this text: CRLF, blank lines, a line longer than a range, no final newline
TRICKY = b"12\r\n-3\r\n\r\n" + b"7" * 40 + b"\n\n 5 \n0.5\r\n" + b"9" * 30 + b"\n2\n1.25"


@pytest.fixture(scope="module")
def endpoint_url() -> Iterator[str]:
    """Run moto's S3 server on a free loopback port for this module's tests."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(endpoint_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    """Return an S3 filesystem on the moto server and a new bucket on it; this process's
    s3:// URLs reach that server too (fsspec's config, as FSSPEC_S3_* variables set it)."""
    options = {
        "endpoint_url": endpoint_url,
        "key": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "secret": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }
    monkeypatch.setitem(fsspec.config.conf, "s3", options)
    fs = s3fs.S3FileSystem(**options)
    name = f"test-{uuid.uuid4().hex[:12]}"
    fs.mkdir(name)
    yield fs, name
    fs.rm(name, recursive=True)


def put(bucket: tuple[Any, str], key: str, data: bytes) -> str:
    """Store ``data`` as ``key`` in the bucket; return its s3:// URL."""
    fs, name = bucket
    fs.pipe(f"{name}/{key}", data)
    return f"s3://{name}/{key}"


def assert_reads_as_local(url: str, path: Path, chunk_counts: list[int]) -> None:
    """Assert that every range of ``url`` reads the same lines, numbered the same, as the
    local reader reads them from ``path`` (the same bytes)."""
    local_stamp, url_stamp = TextFile(str(path)).stamp(), stamp_url(url)
    for chunks in chunk_counts:
        for cut in plan_ranges(local_stamp.size, chunks=chunks, chunk_bytes=1):
            local, local_first = read_lines(str(path), cut.offset, cut.length, local_stamp)
            remote, remote_first = read_url_lines(url, cut.offset, cut.length, url_stamp)
            assert (remote, remote_first()) == (local, local_first()), (chunks, cut)


class TestUrls:
    """What counts as a URL, and how the command line reads one."""

    @pytest.mark.parametrize(
        ("path", "url"),
        [
            ("s3://bucket/key.txt", True),
            ("gcs://b/k", True),
            ("file:///tmp/n.txt", True),
            ("/tmp/n.txt", False),
            ("n.txt", False),
            ("C:\\data\\n.txt", False),
            ("odd:name.txt", False),
        ],
    )
    def test_a_url_has_a_protocol(self, path: str, url: bool) -> None:
        """A path with ``protocol://`` is a URL; local paths, even with a colon, are not."""
        assert is_url(path) is url

    def test_a_url_carries_no_password(self) -> None:
        """A password in a URL is refused (it would travel in every job), and not repeated."""
        with pytest.raises(SettingsError, match="carries no password") as refused:
            stamp_url("ftp://user:s3cret@example.invalid/n.txt")
        assert "s3cret" not in str(refused.value)

    def test_the_command_line_reads_a_url_by_reference(self) -> None:
        """`submit --file s3://...` needs no --shared: a URL is always read by reference."""
        numbers = command_line_input(None, "s3://b/n.txt", FileOptions(shared=False))
        assert numbers == TextFile("s3://b/n.txt", shared=True)
        with pytest.raises(ChunksumError, match="parquet files by URL are not supported yet"):
            command_line_input(None, "s3://b/t.parquet", FileOptions(column="x"))
        lines = command_line_input(None, "s3://b/t.csv", FileOptions(form="lines"))
        assert lines == TextFile("s3://b/t.csv")


class TestReadUrlLines:
    """A worker's range of an object: the same lines the local reader reads."""

    def test_s3_ranges_read_as_the_local_file(
        self, bucket: tuple[Any, str], tmp_path: Path
    ) -> None:
        """On S3, ranges read the lines the local reader reads (CRLF, blank lines, ranges
        inside a line, no final newline), numbered alike."""
        path = tmp_path / "n.txt"
        path.write_bytes(TRICKY)
        assert_reads_as_local(put(bucket, "n.txt", TRICKY), path, [1, 2, 3, 5, 8, 13])

    def test_every_cut_reads_as_the_local_file(self, tmp_path: Path) -> None:
        """Through fsspec (file://), every way to cut the tricky text into up to 20 ranges,
        and into ranges of one byte, reads as the local reader reads it."""
        path = tmp_path / "n.txt"
        path.write_bytes(TRICKY)
        assert_reads_as_local(path.as_uri(), path, [*range(1, 21), len(TRICKY)])

    def test_a_line_longer_than_a_scan_is_read_whole(self, tmp_path: Path) -> None:
        """A line longer than SCAN_BYTES, cut anywhere, reads whole, in one range."""
        path = tmp_path / "n.txt"
        path.write_bytes(b"1\n" + b"2" * (SCAN_BYTES * 2 + 5) + b"\n3\n" + b"4" * SCAN_BYTES)
        assert_reads_as_local(path.as_uri(), path, [1, 2, 3, 7])

    @settings(max_examples=40, deadline=None)
    @given(
        lines=st.lists(st.sampled_from(["1", "-22", "", " 3 ", "0.5", "4" * 9]), max_size=30),
        chunks=st.integers(1, 12),
        crlf=st.booleans(),
        last_newline=st.booleans(),
    )
    def test_any_cuts_read_as_the_local_reader(
        self,
        tmp_path_factory: pytest.TempPathFactory,
        lines: list[str],
        chunks: int,
        crlf: bool,
        last_newline: bool,
    ) -> None:
        """Through fsspec (file://), any text cut into any ranges reads as locally."""
        newline = "\r\n" if crlf else "\n"
        path = tmp_path_factory.mktemp("lines") / "n.txt"
        path.write_bytes((newline.join(lines) + (newline if last_newline else "")).encode())
        assert_reads_as_local(path.as_uri(), path, [chunks])

    def test_a_bad_line_is_named_by_its_line_in_the_whole_object(
        self, bucket: tuple[Any, str]
    ) -> None:
        """A line that is not a number, deep in the object, fails naming its line number."""
        url = put(bucket, "bad.txt", b"1\n" * 3000 + b"x9\n" + b"2\n" * 10)
        stamp = stamp_url(url)
        last = plan_ranges(stamp.size, chunks=3, chunk_bytes=1)[-1]  # holds the bad line
        with pytest.raises(FileInputError, match=f"line 3001 of {url} is 'x9'"):
            sum_url_range(url, last.offset, last.length, stamp)


class TestStamp:
    """The submitter stats an object; a worker that finds it otherwise fails the run."""

    def test_an_s3_object_is_stamped_by_size_and_etag(self, bucket: tuple[Any, str]) -> None:
        """An S3 object's stamp is its size and ETag; a local file's (file://) its mtime."""
        stamp = stamp_url(put(bucket, "n.txt", b"1\n2\n"))
        assert (stamp.size, stamp.mtime) == (4, None)
        assert stamp.etag

    def test_a_file_url_is_stamped_by_mtime(self, tmp_path: Path) -> None:
        """A filesystem without ETags (file://) is stamped by its modification time."""
        path = tmp_path / "n.txt"
        path.write_bytes(b"1\n")
        stamp = stamp_url(path.as_uri())
        assert (stamp.size, stamp.etag) == (2, None)
        assert stamp.mtime

    def test_a_changed_object_is_refused(self, bucket: tuple[Any, str]) -> None:
        """An object rewritten with the same size has a new ETag: the worker refuses it."""
        url = put(bucket, "n.txt", b"1\n2\n")
        stamp = stamp_url(url)
        put(bucket, "n.txt", b"3\n4\n")
        with pytest.raises(FileInputError, match="changed after the run was submitted"):
            sum_url_range(url, 0, stamp.size, stamp)

    def test_a_deleted_object_is_refused(self, bucket: tuple[Any, str]) -> None:
        """A worker that can't find the object fails, naming it."""
        url = put(bucket, "n.txt", b"1\n")
        stamp = stamp_url(url)
        bucket[0].rm(url)
        with pytest.raises(FileInputError, match=r"cannot find .* deleted after"):
            sum_url_range(url, 0, stamp.size, stamp)

    def test_the_submitter_refuses_what_is_not_an_object(self, bucket: tuple[Any, str]) -> None:
        """A missing key, or a prefix that is a directory, fails at submit (SettingsError)."""
        _, name = bucket
        with pytest.raises(SettingsError, match=f"no object at 's3://{name}/gone.txt'"):
            stamp_url(f"s3://{name}/gone.txt")
        put(bucket, "dir/n.txt", b"1\n")
        with pytest.raises(SettingsError, match="is a directory, not a file"):
            stamp_url(f"s3://{name}/dir")

    def test_a_missing_filesystem_says_what_to_install(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without s3fs, an s3:// URL fails naming the extra; an unknown protocol fails too."""
        from fsspec.registry import _registry  # fsspec's loaded filesystems

        monkeypatch.setitem(sys.modules, "s3fs", None)  # as if not installed
        monkeypatch.delitem(_registry, "s3", raising=False)
        with pytest.raises(SettingsError, match=r"pip install 'chunksum\[s3\]'"):
            stamp_url("s3://b/n.txt")
        with pytest.raises(SettingsError, match="gcs:// needs a filesystem package"):
            stamp_url("gcs://b/n.txt")  # gcsfs is not installed either
        with pytest.raises(SettingsError, match="Protocol not known: nosuch"):
            stamp_url("nosuch://b/n.txt")
        with pytest.raises(FileInputError, match=r"a worker cannot open .*chunksum\[s3\]"):
            read_url_lines("s3://b/n.txt", 0, 1, ObjectStamp(1, "e"))
        monkeypatch.setitem(sys.modules, "fsspec.core", None)  # fsspec itself missing
        with pytest.raises(SettingsError, match=r"fsspec, which is not installed: pip"):
            stamp_url("s3://b/n.txt")


class FlakyFilesystem:
    """An fsspec filesystem's stand-in that holds one object (``data``, ETag ``etag``) and
    fails as told: ``info`` with ``info_error``, ``open`` with ``open_error``, a read with
    ``read_error`` (after which the object has ``data_after`` and ``etag_after``)."""

    def __init__(self, data: bytes, **failures: Any) -> None:
        self.data, self.etag = data, "e1"
        self.failures = failures

    def invalidate_cache(self, path: str) -> None:
        """Forget nothing: there is no cache."""

    def info(self, path: str) -> dict[str, Any]:
        """Return the object's size and ETag, or raise ``info_error``."""
        if error := self.failures.get("info_error"):
            raise error
        return {"size": len(self.data), "ETag": self.etag, "type": "file"}

    def open(self, path: str, mode: str, **options: Any) -> io.BytesIO:
        """Open the object to read, or raise ``open_error``."""
        if error := self.failures.get("open_error"):
            raise error
        if error := self.failures.pop("read_error", None):
            self.data = self.failures.get("data_after", self.data)
            self.etag = self.failures.get("etag_after", self.etag)
            return FailingFile(error)
        return io.BytesIO(self.data)


class FailingFile(io.BytesIO):
    """A file whose reads raise ``error``."""

    def __init__(self, error: OSError) -> None:
        super().__init__()
        self.error = error

    def read(self, size: int | None = -1) -> bytes:
        """Raise the error."""
        raise self.error


class TestFailures:
    """What a worker's failure means: the run fails (FileInputError), or the job is retried."""

    def use(self, monkeypatch: pytest.MonkeyPatch, fs: FlakyFilesystem) -> ObjectStamp:
        """Serve every URL from ``fs``; return its object's stamp as the submitter saw it."""
        monkeypatch.setattr(remote, "filesystem", lambda url: (fs, url))
        return stamp_url("flaky://b/n.txt")

    def test_a_read_that_fails_is_tried_again(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A read that fails while the object is unchanged raises its OSError: transient."""
        stamp = self.use(monkeypatch, FlakyFilesystem(b"1\n", read_error=ConnectionError("x")))
        with pytest.raises(ConnectionError):
            sum_url_range("flaky://b/n.txt", 0, 2, stamp)
        assert sum_url_range("flaky://b/n.txt", 0, 2, stamp)[1] == 1

    def test_an_object_changed_while_read_fails_the_run(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A read that fails as the object changes (s3fs's If-Match) fails the run."""
        fs = FlakyFilesystem(b"1\n", read_error=OSError("precondition"), etag_after="e2")
        stamp = self.use(monkeypatch, fs)
        with pytest.raises(FileInputError, match="changed after the run was submitted"):
            sum_url_range("flaky://b/n.txt", 0, 2, stamp)

    def test_access_refused_fails(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Access refused fails the run, and at submit an unreadable object names the URL."""
        stamp = self.use(monkeypatch, fs := FlakyFilesystem(b"1\n"))
        fs.failures["open_error"] = PermissionError("Access Denied")
        with pytest.raises(FileInputError, match=r"may not read 'flaky://b/n\.txt'"):
            sum_url_range("flaky://b/n.txt", 0, 2, stamp)
        fs.failures["info_error"] = PermissionError("Access Denied")
        with pytest.raises(SettingsError, match=r"cannot stat 'flaky://b/n\.txt' .*credentials"):
            stamp_url("flaky://b/n.txt")


async def test_workers_sum_an_object_by_reference(
    client: Client, worker: Worker, bucket: tuple[Any, str], settings: Settings
) -> None:
    """submit(TextFile("s3://...")) sums on the workers, range by range: the exact total
    and count; the jobs carry the URL and its stamp, no credential."""
    numbers = [i * 7919 - 2**40 for i in range(5000)] + [2**70]
    url = put(bucket, "numbers.txt", "\n".join(map(str, numbers)).encode())
    source = plan_source(TextFile(url), chunks=9, chunk_size=None, settings=settings)
    assert source.job.name == SUM_URL_JOB
    assert set(source.job.kwargs) == {"url", "size", "etag", "mtime"}
    result = await client.submit(TextFile(url), chunks=9, timeout=30)
    assert (result.total, result.count, result.chunks) == (sum(numbers), len(numbers), 9)
    ledger = put(bucket, "ledger.txt", b"0.10\n0.20\n" * 500)
    summed = await client.submit(TextFile(ledger), chunks=3, decimal=True, timeout=30)
    assert (summed.total, summed.count) == (Decimal("150.00"), 1000)


async def test_a_missing_object_fails_at_submit(client: Client, bucket: tuple[Any, str]) -> None:
    """A URL with no object behind it fails before any job is enqueued."""
    with pytest.raises(SettingsError, match="no object at"):
        await client.submit(TextFile(f"s3://{bucket[1]}/gone.txt"))
    assert await client.queue_depth() == 0


async def test_an_object_changed_after_submit_fails_the_run(
    client: Client, settings: Settings, redis: ArqRedis, bucket: tuple[Any, str]
) -> None:
    """An object rewritten between submit and the workers' reads fails the run, saying so,
    and leaves nothing queued."""
    url = put(bucket, "n.txt", b"1\n" * 1000)
    submitted = asyncio.create_task(client.submit(TextFile(url), chunks=4, timeout=30))
    await eventually(lambda: queue_holds(redis, Keys(settings.key_prefix), 4), what="4 jobs")
    put(bucket, "n.txt", b"2\n" * 1000)
    async with running_worker(settings):
        with pytest.raises(RunFailedError, match="changed after the run was submitted"):
            await submitted
    assert await client.queue_depth() == 0


@pytest.mark.timeout(90)
def test_run_sums_an_object_with_worker_processes(
    bucket: tuple[Any, str], endpoint_url: str
) -> None:
    """`chunksum run --file s3://...` sums on real worker processes, configured by the
    AWS_* environment variables alone: the exact total of every range."""
    numbers = [i * 104729 - 2**45 for i in range(20_000)] + [2**80]
    url = put(bucket, "numbers.txt", "\n".join(map(str, numbers)).encode() + b"\n")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "FSSPEC_", "CHUNKSUM_")) and name != "REDIS_URL"
    }
    env |= CREDENTIALS | {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",  # never look past loopback for credentials
    }
    command = ["run", "--file", url, "--chunks", "7", "--workers", "2", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", *command],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert (int(printed["total"]), printed["count"], printed["chunks"]) == (
        sum(numbers),
        len(numbers),
        7,
    )
