"""Connect to Redis from a URL: redis://, rediss:// (TLS), unix://, redis+sentinel://.

A Sentinel URL names the Sentinels and the master's service name, and optionally the
database: ``redis+sentinel://[user:password@]host:26379[,host:26379...]/mymaster[/0]``.
The user and password are the master's (the Sentinels are asked without credentials, as
arq does); every new connection asks the Sentinels where the master is, so clients follow
a failover on their next reconnect.
"""

import asyncio
import logging
import re
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.connection import SSLConnection, UnixDomainSocketConnection, parse_url
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app import codec
from app.errors import RedisUnavailableError, SettingsError
from app.faults import describe, is_out_of_memory
from app.keys import Keys
from app.redis_sockets import tune_sockets
from app.settings import Settings

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
# What a call raises when Redis is unreachable (restarting, network down): wait and retry
LOST_REDIS = (RedisConnectionError, RedisTimeoutError, OSError)
# What a worker waits out, as it waits out an outage: these, if waitable() says so (a
# ResponseError is one when Redis refused a write over maxmemory)
REDIS_FAULTS = (*LOST_REDIS, ResponseError)
_QUERY_PASSWORD = re.compile(r"((?:^|&)password=)[^&]*")
logger = logging.getLogger(__name__)


def redact(url: str) -> str:
    """Return ``url`` with its password replaced by ``***``, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: the text may still hold a password
        return "<unparsable URL>"
    # edit the text rather than urlunsplit(), which turns unix:///path into unix:/path
    head, sep, query = url.partition("?")
    if parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        head = head.replace(parts.netloc, f"{parts.username or ''}:***@{host}", 1)
    # redis-py also reads the password from the query: unix:///redis.sock?password=...
    return head + sep + _QUERY_PASSWORD.sub(r"\1***", query)


def redis_settings(
    settings: Settings, *, conn_retries: int = 5, retry: Retry | None = None
) -> RedisSettings:
    """Translate the settings' Redis URL into arq's ``RedisSettings``.

    redis-py parses the URL, so percent-encoded passwords and query options such as
    ``?ssl_cert_reqs=none`` or ``?ssl_ca_certs=/path/ca.pem`` work as in redis-py.

    Args:
        retry: how redis-py retries a command whose connection broke, and reconnects
            (app.worker.outage_retry); None: a broken connection's error is raised at once.
    """
    url = settings.redis_url or DEFAULT_REDIS_URL
    if is_sentinel(settings):
        found = _sentinel_settings(url, conn_retries=conn_retries)
        return _with_retry(found, retry)
    try:
        opts: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]  # redis-py: untyped
    except ValueError as exc:
        raise SettingsError(
            f"REDIS_URL {redact(url)!r} is not a Redis URL ({exc}); use e.g. "
            "redis://localhost:6379/0, rediss://user:password@host:6380/0 or unix:///path/redis.sock"
        ) from exc
    connection_class = opts.get("connection_class")
    cert_reqs = opts.get("ssl_cert_reqs", "required")
    # a verified certificate must name the host too, unless ?ssl_check_hostname=false
    check_hostname = connection_class is SSLConnection and cert_reqs != "none"
    found = RedisSettings(
        host=opts.get("host", "localhost"),
        port=int(opts.get("port", 6379)),
        unix_socket_path=opts.get("path")
        if connection_class is UnixDomainSocketConnection
        else None,
        database=int(opts.get("db", 0)),
        username=opts.get("username"),
        password=opts.get("password"),
        ssl=connection_class is SSLConnection,
        ssl_ca_certs=settings.redis_ca_file or opts.get("ssl_ca_certs"),
        ssl_cert_reqs=cert_reqs,
        ssl_check_hostname=bool(opts.get("ssl_check_hostname", check_hostname)),
        conn_timeout=5,
        conn_retries=conn_retries,
        conn_retry_delay=1,
    )
    return _with_retry(found, retry)


def _with_retry(found: RedisSettings, retry: Retry | None) -> RedisSettings:
    if retry is not None:
        found.retry = retry
        found.retry_on_error = [RedisConnectionError, RedisTimeoutError, OSError]
    return found


def redis_name(settings: Settings) -> str:
    """Return the settings' Redis as messages and logs name it: its URL, password redacted."""
    return redact(settings.redis_url or DEFAULT_REDIS_URL)


def is_sentinel(settings: Settings) -> bool:
    """Return whether the settings' Redis is a Sentinel-managed master."""
    return (settings.redis_url or "").startswith(SENTINEL_SCHEME + "://")


def _sentinel_settings(url: str, *, conn_retries: int) -> RedisSettings:
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    path = [unquote(part) for part in parts.path.split("/") if part]
    example = "redis+sentinel://:password@sentinel1:26379,sentinel2:26379/mymaster/0"
    try:
        sentinels = [_host_port(host) for host in hosts.split(",")]
        if not 1 <= len(path) <= 2 or parts.query:
            raise ValueError("expected /<master name>[/<db>] and no query")
        database = int(path[1]) if len(path) == 2 else 0
    except ValueError as exc:
        raise SettingsError(
            f"REDIS_URL {redact(url)!r} is not a Sentinel URL ({exc}); use e.g. {example}"
        ) from exc
    return RedisSettings(
        host=sentinels,
        sentinel=True,
        sentinel_master=path[0],
        database=database,
        username=unquote(username) or None,
        password=unquote(password) or None,
        conn_timeout=5,
        conn_retries=conn_retries,
        conn_retry_delay=1,
    )


def _host_port(text: str) -> tuple[str, int]:
    """Split "host", "host:port", "[v6 address]" or "[v6 address]:port"."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = text.partition(":")
    if not host:
        raise ValueError(f"a Sentinel address {text!r} has no host")
    return host, int(port) if port else SENTINEL_PORT


async def connect(settings: Settings, *, conn_retries: int = 0) -> ArqRedis:
    """Open an arq pool with chunksum's serializer and queue, or raise RedisUnavailableError."""
    url = redact(settings.redis_url or DEFAULT_REDIS_URL)
    try:
        pool = await create_pool(
            redis_settings(settings, conn_retries=conn_retries),
            job_serializer=codec.dumps,
            job_deserializer=codec.loads,
            default_queue_name=Keys(settings.key_prefix).queue,
        )
    except (RedisError, OSError) as exc:
        if not _is_auth_error(exc):
            raise RedisUnavailableError(
                f"cannot reach Redis at {url} ({describe(exc)}); start Redis or set REDIS_URL, "
                "or use `chunksum run`, which starts a private Redis"
            ) from exc
        raise RedisUnavailableError(
            f"Redis at {url} refused the credentials ({describe(exc)}); check the user and "
            "password in REDIS_URL, e.g. redis://user:password@host:6379/0"
        ) from exc
    await tune_sockets(pool)
    return pool


async def close(redis: Redis) -> None:
    """Close a pool that :func:`connect` opened, with its Sentinel connections if any."""
    await redis.aclose()
    await close_sentinels(redis)


async def close_sentinels(redis: Redis) -> None:
    """Close the connections a Sentinel-managed pool keeps to the Sentinels (its own
    ``aclose()`` leaves them open)."""
    if isinstance(redis.connection_pool, SentinelConnectionPool):
        for sentinel in redis.connection_pool.sentinel_manager.sentinels:
            await sentinel.aclose()


def waitable(exc: BaseException) -> bool:
    """Return whether ``exc`` is a Redis fault to wait out: unreachable, or out of memory."""
    return isinstance(exc, LOST_REDIS) or is_out_of_memory(exc)


def _is_auth_error(exc: BaseException) -> bool:
    # redis-py reports a wrong password on connect as a plain ConnectionError
    words = ("WRONGPASS", "NOAUTH", "invalid username-password", "invalid password")
    return isinstance(exc, AuthenticationError) or any(word in str(exc) for word in words)


class Backoff:
    """Waits between retries while Redis is unreachable (or out of memory): 0.1 s, doubling
    up to 1 s."""

    FIRST_S = 0.1
    MAX_S = 1.0

    def __init__(self, what: str) -> None:
        self.what = what
        self.delay_s = 0.0  # > 0 while failing
        self._since = 0.0  # monotonic time of the series' first failure

    @property
    def failing(self) -> bool:
        """Return whether the last call failed (no success since :meth:`wait`)."""
        return self.delay_s > 0

    def failing_for_s(self) -> float:
        """Return how long Redis has been unreachable in this series (0 if it is not)."""
        return time.monotonic() - self._since if self.failing else 0.0

    async def wait(self, exc: BaseException) -> None:
        """Log the first failure of a series, then wait the next delay."""
        if not self.failing:
            state = "out of memory" if is_out_of_memory(exc) else "unreachable"
            logger.warning(
                "%s: Redis %s (%s); retrying until it is back", self.what, state, describe(exc)
            )
            self._since = time.monotonic()
        self.delay_s = min(max(self.delay_s * 2, self.FIRST_S), self.MAX_S)
        await asyncio.sleep(self.delay_s)

    def reset(self) -> None:
        """Note a success: the next failure starts a new series."""
        if self.failing:
            logger.warning("%s: Redis reachable again", self.what)
            self.delay_s = 0.0
