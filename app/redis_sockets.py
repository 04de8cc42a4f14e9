"""The connections chunksum's Redis pools open: tuned sockets, and commands packed in C.

arq's ``create_pool`` and ``Worker`` can't pass socket options or a connection class, so
:func:`tune_sockets` changes a pool's afterwards: TCP connections get keepalive, Unix-socket
connections a send buffer that holds a pipeline of chunks, and both pack commands with
hiredis (as redis-py's synchronous client does; its asyncio client packs them in Python).
"""

import socket
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection
from redis.asyncio.connection import UnixDomainSocketConnection as UnixConnection

# TCP keepalive on every TCP connection to Redis. Without it, a read that waits (a worker's
# wake-up subscription, a submitter's BLPOP) on a connection Redis dropped while the network
# was down (its own tcp-keepalive, a restart, a failover) waits for ever: nothing is sent on
# it, so nothing ever fails. Probes after 10 s of silence find such a connection (Redis
# answers them with a reset) or a dead network (no answer in 3 x 5 s); TCP_USER_TIMEOUT
# bounds how long sent data may go unacknowledged. Options the platform lacks are skipped.
KEEPALIVE_OPTIONS = {
    option: value
    for name, value in (
        ("TCP_KEEPIDLE", 10),
        ("TCP_KEEPINTVL", 5),
        ("TCP_KEEPCNT", 3),
        ("TCP_USER_TIMEOUT", 30_000),  # ms
    )
    if (option := getattr(socket, name, None)) is not None
}
# a Unix socket's send buffer: a pipeline's megabyte of chunks (app.submission) and more
UNIX_SEND_BUFFER_BYTES = 4 << 20


async def tune_sockets(redis: Redis) -> None:
    """Tune the connections a pool opens from now on (see the module's docstring).

    The connections it already opened are dropped. A Sentinel pool's connections are left
    as they are. Call it before the pool is shared (no command in flight).
    """
    pool = redis.connection_pool
    if issubclass(pool.connection_class, UnixConnection):  # no keepalive: it reports a dead peer
        pool.connection_class = BufferedUnixConnection
    elif pool.connection_class in (Connection, SSLConnection):
        options = {"socket_keepalive": True, "socket_keepalive_options": KEEPALIVE_OPTIONS}
        pool.connection_kwargs.update(options)
        ssl = pool.connection_class is SSLConnection
        pool.connection_class = HiredisSSLConnection if ssl else HiredisConnection
    await pool.disconnect()
    pool.reset()  # type: ignore[no-untyped-call]  # redis-py: untyped


class HiredisPacking(AbstractConnection):
    """Pack commands with hiredis's C packer: 0.3 µs a command, where redis-py's asyncio
    connections take 2-3 µs in Python (the same bytes)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        """Pack one command; for an argument hiredis refuses, raise redis-py's DataError."""
        if isinstance(args[0], str):  # a command of two words, e.g. 'CLIENT SETINFO'
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # a bool or None: redis-py's own packer names it in its error
            return super().pack_command(*args)


class HiredisConnection(HiredisPacking, Connection):
    """A TCP connection whose commands hiredis packs."""


class HiredisSSLConnection(HiredisPacking, SSLConnection):
    """A TLS connection whose commands hiredis packs."""


class BufferedUnixConnection(HiredisPacking, UnixConnection):
    """A Unix-socket connection whose send buffer holds a pipeline of chunks at once.

    A Unix socket's buffer is the system's default (net.core.wmem_default, 208 KiB on Linux),
    and doesn't grow as TCP's does: the event loop would hand a megabyte pipeline to the
    kernel in pieces, one each time Redis had taken the last and the loop was free, which a
    submitter packing its next chunks isn't. The kernel caps the size at net.core.wmem_max.
    """

    async def _connect(self) -> None:
        await super()._connect()  # type: ignore[no-untyped-call]  # redis-py: untyped
        writer = self._writer  # set by the connect above
        sock = None if writer is None else writer.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, UNIX_SEND_BUFFER_BYTES)
