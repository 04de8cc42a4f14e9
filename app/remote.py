"""Files on fsspec filesystems (``s3://bucket/key``, any URL with a protocol), summed by
reference: the workers read their own byte ranges, as for local files (app.files).

The submitter only stats the object (its size, and its ETag or, where the filesystem has
none, its modification time) and enqueues one job per byte range; it never reads the
data. Each worker opens the object with fsspec and reads its range as Dask's
``read_bytes`` does (``fsspec.utils.read_block``), but with :func:`app.files.read_lines`'
cuts exactly: a range owns the lines that *start* in it (read_block gives a line that starts
right at a cut to the range before), so every range reads what it reads locally. A worker
that finds the object gone or changed (its size, ETag or modification time) fails the run.

The filesystem's options (endpoint, credentials, anonymous access) come from the
environment as fsspec and s3fs read them (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, ``FSSPEC_S3_ANON``...): no credential passes through a
job's arguments, Redis or a message. ``s3://`` needs s3fs: ``pip install 'chunksum[s3]'``.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.errors import FileInputError, SettingsError
from app.exact import ExactSum
from app.files import SCAN_BYTES, sum_block
from app.keys import SUM_URL_JOB
from app.queue import ChunkJob

URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # a protocol, as fsspec reads one
ETAG_FIELDS = ("ETag", "etag")  # s3fs; gcsfs, adlfs
MTIME_FIELDS = ("mtime", "LastModified", "last_modified", "updated", "created")
EXTRAS = {"s3": "s3", "s3a": "s3"}  # protocol -> the chunksum extra that installs its filesystem
COUNT_BYTES = 1 << 20  # read this much at a time to count the lines before a bad one


def is_url(path: str) -> bool:
    """Return whether ``path`` names a file by URL (``s3://...``), not by a local path."""
    return URL.match(path) is not None


@dataclass(frozen=True, slots=True)
class ObjectStamp:
    """What the submitter saw of an object; a worker that sees otherwise fails the run.

    Args:
        etag: the object's ETag, or None where its filesystem gives none.
        mtime: its modification time (as the filesystem reports it), where it has no ETag.
    """

    size: int
    etag: str | None = None
    mtime: str | None = None

    @classmethod
    def of(cls, info: Mapping[str, Any]) -> "ObjectStamp":
        """Return the stamp of an object from its fsspec ``info()``."""
        etag = next((str(info[name]) for name in ETAG_FIELDS if info.get(name)), None)
        mtime = None
        if etag is None:
            mtime = next((str(info[name]) for name in MTIME_FIELDS if info.get(name)), None)
        return cls(int(info["size"]), etag, mtime)

    def check(self, url: str, info: Mapping[str, Any]) -> None:
        """Raise FileInputError if the object, as its fsspec ``info()`` shows it, is not as
        stamped."""
        if ObjectStamp.of(info) != self:
            raise FileInputError(
                f"{url!r} changed after the run was submitted (its size, ETag or "
                "modification time differs); "
                "sum it again once it no longer changes"
            )


def stamp_url(url: str) -> ObjectStamp:
    """Return an object's stamp, as the submitter sees it (its data is not read); raise
    SettingsError if it is missing, unreadable, or not a file."""
    fs, path = filesystem(url)
    try:
        info = fs.info(path)
    except FileNotFoundError as exc:
        raise SettingsError(f"no object at {url!r}; give the URL of a file of numbers") from exc
    except OSError as exc:
        raise SettingsError(
            f"cannot stat {url!r} ({exc}); check the URL and the filesystem's credentials "
            "(e.g. AWS_* environment variables)"
        ) from exc
    if info.get("type") != "file":
        raise SettingsError(f"{url!r} is a {info.get('type')}, not a file; give a file of numbers")
    return ObjectStamp.of(info)


def url_job(url: str, stamp: ObjectStamp, options: Mapping[str, Any]) -> ChunkJob:
    """Return the job that sums each range of the object, with the arguments they share
    (see jobs.files): the URL, the stamp and parsing ``options``, never a credential."""
    shared = {"url": url, "size": stamp.size, "etag": stamp.etag, "mtime": stamp.mtime}
    return ChunkJob(SUM_URL_JOB, {**shared, **options})


def sum_url_range(
    url: str, offset: int, length: int, stamp: ObjectStamp, *, decimal: bool = False
) -> tuple[ExactSum, int]:
    """Read the lines that start in ``[offset, offset + length)`` of the object at ``url``;
    return their exact sum (as decimals, if ``decimal``) and how many numbers they hold.

    Raises:
        FileInputError: the object is gone, changed since ``stamp``, or holds a line that is
            not a number (named by its line number in the whole object).
    """
    block, first_line = read_url_lines(url, offset, length, stamp)
    return sum_block(block, url, first_line, decimal=decimal)


def read_url_lines(
    url: str, offset: int, length: int, stamp: ObjectStamp
) -> tuple[bytes, Callable[[], int]]:
    """Read the whole lines that start in ``[offset, offset + length)``, as
    :func:`app.files.read_lines` reads a local file; return them, and a function that
    returns the number of the first in the object (call it only to name a bad line)."""
    try:
        fs, path = filesystem(url)
    except SettingsError as exc:
        raise FileInputError(f"a worker cannot open {url!r}: {exc}") from exc
    fs.invalidate_cache(path)  # a listing cached by this process could be stale
    try:
        # no read-ahead cache: one ranged GET reads the range and a little past its end
        with _open(url, fs, path) as file:
            # s3fs's file read its ETag as it opened, and reads If-Match it
            stamp.check(url, getattr(file, "details", None) or fs.info(path))
            start, block = _whole_lines(file, offset, length, stamp.size)
    except OSError:
        with _open(url, fs, path):  # gone, or changed while read?
            stamp.check(url, fs.info(path))
        raise  # else a transient failure: the job is tried again
    return block, lambda: _lines_before(url, fs, path, start) + 1


def filesystem(url: str) -> tuple[Any, str]:
    """Return the fsspec filesystem of ``url`` (configured from the environment) and the
    object's path on it; raise SettingsError naming what to install if it isn't installed."""
    parts = urlsplit(url)
    if parts.password is not None:  # it would travel in every job, and show in errors
        bare = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        raise SettingsError(
            f"{bare!r}: a URL carries no password; give credentials in the environment "
            "(e.g. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        )
    protocol = parts.scheme.lower()
    extra = EXTRAS.get(protocol, "s3")
    try:
        from fsspec.core import url_to_fs
    except ImportError as exc:
        raise SettingsError(
            f"{url!r} is a URL, read with fsspec, which is not installed: "
            f"pip install 'chunksum[{extra}]'"
        ) from exc
    try:
        fs, path = url_to_fs(url)
    except ImportError as exc:
        install = f"pip install 'chunksum[{extra}]'" if protocol in EXTRAS else "install it"
        raise SettingsError(f"{protocol}:// needs a filesystem package ({exc}): {install}") from exc
    except ValueError as exc:  # fsspec: "Protocol not known: ..."
        raise SettingsError(f"{url!r}: {exc}; give a local path or e.g. s3://bucket/key") from exc
    return fs, path


def _open(url: str, fs: Any, path: str) -> Any:
    """Open the object to read, unbuffered; raise FileInputError if it is gone or may not
    be read (trying again would fail the same way)."""
    try:
        return fs.open(path, "rb", cache_type="none")
    except FileNotFoundError as exc:
        raise FileInputError(
            f"a worker cannot find {url!r}: it was deleted after the run was submitted"
        ) from exc
    except PermissionError as exc:
        raise FileInputError(
            f"a worker may not read {url!r} ({exc}); give the workers the submitter's access"
        ) from exc


def _whole_lines(file: Any, offset: int, length: int, size: int) -> tuple[int, bytes]:
    """Return where the lines that start in ``[offset, offset + length)`` start, and them.

    One read normally does: from the byte before the range (is it a newline?) to a scan's
    length past its end; a longer line reads on, a scan at a time.
    """
    base = max(offset - 1, 0)
    stop = min(offset + length, size)
    file.seek(base)
    data = bytearray(file.read(stop - base + SCAN_BYTES))

    def line_start(position: int) -> int:
        """Return where the first line after ``position`` starts, or ``size``."""
        searched = position - base
        while (newline := data.find(b"\n", searched)) < 0:
            searched = len(data)
            if base + len(data) >= size or not (more := file.read(SCAN_BYTES)):
                return size
            data.extend(more)
        return base + newline + 1

    start = 0 if offset == 0 else line_start(offset - 1)
    end = stop if stop >= size else line_start(stop - 1)
    return start, bytes(data[start - base : max(end, start) - base])


def _lines_before(url: str, fs: Any, path: str, end: int) -> int:
    """Count the newlines in the object before ``end`` (for a bad line's number)."""
    count = position = 0
    with _open(url, fs, path) as file:
        while position < end and (block := file.read(min(COUNT_BYTES, end - position))):
            count += block.count(b"\n")
            position += len(block)
    return count
