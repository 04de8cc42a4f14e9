"""Faults as chunksum reports them: a short, printable account of any exception.

redis-py's errors can be huge: a failed pipeline's message holds every command of the
pipeline with all its arguments, packed chunk bytes included (megabytes of binary, for an
out-of-memory error in the middle of an enqueue). Such text must never reach an exception
message, a log line or a run's stored ``error``. :func:`describe` is the one place that
turns an exception into text: it names a failed pipeline command and its key, never its
arguments, and :func:`bounded` keeps any text to a few hundred printable characters.
"""

import re
import traceback
from types import TracebackType

from redis.exceptions import NoPermissionError, OutOfMemoryError, RedisError, ResponseError

from app.errors import ChunksumError, RedisOutOfMemoryError, RedisUnavailableError

MAX_CHARS = 500  # the longest account of an error that chunksum stores, raises or logs
_HEAD_CHARS = 4 * MAX_CHARS  # how much of a long text is looked at, at most
_PIPELINE = re.compile(r"Command # (\d+) \((.*)\) of pipeline caused error: (.*)", re.DOTALL)
_SCRIPTS = {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"}
_WHITESPACE = re.compile(r"\s+")
_UNPRINTABLE = re.compile("\0+")
_MAX_KEY_CHARS = 120
# how Redis refuses a write over maxmemory; from a Lua script, a ResponseError holding it
_OOM_REPLY = "OOM command not allowed"


def bounded(text: str, limit: int = MAX_CHARS) -> str:
    """Return ``text`` with whitespace runs as one space, unprintable runs as ``?``,
    and cut to ``limit`` characters (an ellipsis and the full length say it was cut)."""
    head = _WHITESPACE.sub(" ", text[:_HEAD_CHARS])
    # printable characters only: not control characters, nor U+FFFD (undecodable bytes)
    head = "".join(c if c.isprintable() and c != "\ufffd" else "\0" for c in head)
    head = _UNPRINTABLE.sub("?", head).strip()
    if len(head) <= limit and len(text) <= _HEAD_CHARS:
        return head
    return f"{head[: limit - 30].rstrip()}… ({len(text):,} chars in all)"


def describe(exc: BaseException) -> str:
    """Return a short, printable account of ``exc``, for messages, logs and stored errors.

    A failed redis-py pipeline is described by its failed command's name and key and the
    server's reply, e.g. ``PSETEX arq:job:1f..:7 (command 3 of a pipeline): command not
    allowed when used memory > 'maxmemory'.``; any other exception by its message (its
    type's name if it has none).
    """
    text = str(exc)
    if match := _PIPELINE.match(text):
        number, command, reply = match.groups()
        text = f"{_command(command)} (command {number} of a pipeline): {_reply(reply)}"
    return bounded(text or type(exc).__name__)


def _command(text: str) -> str:
    """Return a command's name, and its first key unless it is a script's (whose first
    argument is the script itself)."""
    name, _, rest = text.partition(" ")
    name = name.upper()
    if name in _SCRIPTS or not rest:
        return name
    key = rest.partition(" ")[0]
    return f"{name} {bounded(key, _MAX_KEY_CHARS)}"


def _reply(text: str) -> str:
    """Return the server's reply from redis-py's repr of its error's arguments."""
    if match := re.fullmatch(r"\((['\"])(.*)\1,\)", text.strip(), re.DOTALL):
        return match.group(2)
    return text


def format_exception(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> str:
    """Format a traceback for a log, its last line (the message) :func:`describe`\\ d."""
    frames = "".join(traceback.format_tb(tb))
    return f"Traceback (most recent call last):\n{frames}{exc_type.__name__}: {describe(exc)}"


def is_out_of_memory(exc: BaseException) -> bool:
    """Return whether Redis refused a command (or a script's write) over ``maxmemory``."""
    if isinstance(exc, OutOfMemoryError):
        return True
    return isinstance(exc, ResponseError) and _OOM_REPLY in str(exc)


def redis_failure(
    exc: RedisError, *, redis: str, outcome: str, memory: str = "", max_in_flight: int = 0
) -> ChunksumError:
    """Return the chunksum error to raise for a redis-py error, which must not leave the API.

    Args:
        redis: the Redis, as messages name it (its URL, password redacted).
        outcome: what became of the work, e.g. "run 1f.. failed and its jobs were removed".
        memory: Redis's memory figures, for an out-of-memory error ("" if unknown).
        max_in_flight: the submitter's CHUNKSUM_MAX_IN_FLIGHT, for the same.
    """
    if is_out_of_memory(exc):
        return RedisOutOfMemoryError(
            f"Redis at {redis} is out of memory{memory}; {outcome} ({describe(exc)}). Raise "
            "its maxmemory (CONFIG SET maxmemory, or maxmemory in redis.conf), send smaller "
            "chunks (chunk_size=, --chunk-size), or keep fewer in Redis at once "
            f"(CHUNKSUM_MAX_IN_FLIGHT, now {max_in_flight})"
        )
    if isinstance(exc, NoPermissionError):
        advice = "give chunksum's Redis user the README's minimum ACL"
    else:
        advice = "see the Redis server's log"
    return RedisUnavailableError(
        f"Redis at {redis} refused a command; {outcome} ({describe(exc)}). To fix: {advice}"
    )
