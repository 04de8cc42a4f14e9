"""Connect to Redis from a URL: redis://, rediss:// (TLS), unix://, with user and password."""

import logging
from urllib.parse import urlsplit, urlunsplit

from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.connection import SSLConnection, UnixDomainSocketConnection, parse_url
from redis.exceptions import AuthenticationError, RedisError

from app import codec
from app.errors import RedisUnavailableError, SettingsError
from app.keys import Keys
from app.settings import Settings

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
logger = logging.getLogger(__name__)


def redact(url: str) -> str:
    """Return ``url`` with its password replaced by ``***``, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def redis_settings(settings: Settings, *, conn_retries: int = 5) -> RedisSettings:
    """Translate the settings' Redis URL into arq's ``RedisSettings``.

    redis-py parses the URL, so percent-encoded passwords and query options such as
    ``?ssl_cert_reqs=none`` or ``?ssl_ca_certs=/path/ca.pem`` work as in redis-py.
    """
    url = settings.redis_url or DEFAULT_REDIS_URL
    try:
        opts = parse_url(url)
    except ValueError as exc:
        raise SettingsError(
            f"REDIS_URL {redact(url)!r} is not a Redis URL ({exc}); use e.g. "
            "redis://localhost:6379/0, rediss://user:password@host:6380/0 or unix:///path/redis.sock"
        ) from exc
    connection_class = opts.get("connection_class")
    return RedisSettings(
        host=opts.get("host", "localhost"),
        port=int(opts.get("port", 6379)),
        unix_socket_path=opts.get("path") if connection_class is UnixDomainSocketConnection else None,
        database=int(opts.get("db", 0)),
        username=opts.get("username"),
        password=opts.get("password"),
        ssl=connection_class is SSLConnection,
        ssl_ca_certs=settings.redis_ca_file or opts.get("ssl_ca_certs"),
        ssl_cert_reqs=opts.get("ssl_cert_reqs", "required"),
        ssl_check_hostname=bool(opts.get("ssl_check_hostname", False)),
        conn_timeout=5,
        conn_retries=conn_retries,
        conn_retry_delay=1,
    )


async def connect(settings: Settings, *, conn_retries: int = 0) -> ArqRedis:
    """Open an arq pool with chunksum's serializer and queue, or raise RedisUnavailableError."""
    url = redact(settings.redis_url or DEFAULT_REDIS_URL)
    try:
        return await create_pool(
            redis_settings(settings, conn_retries=conn_retries),
            job_serializer=codec.dumps,
            job_deserializer=codec.loads,
            default_queue_name=Keys(settings.key_prefix).queue,
        )
    except AuthenticationError as exc:
        raise RedisUnavailableError(
            f"Redis at {url} refused the credentials ({exc}); check the user and password "
            "in REDIS_URL, e.g. redis://user:password@host:6379/0"
        ) from exc
    except (RedisError, OSError) as exc:
        raise RedisUnavailableError(
            f"cannot reach Redis at {url} ({exc}); start Redis or set REDIS_URL, "
            "or use `chunksum run`, which starts a private Redis"
        ) from exc

