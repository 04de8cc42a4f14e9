"""Tests for app.redis_sockets: keepalive, a Unix socket's send buffer, hiredis's packer."""

import pathlib
import socket
from typing import Any

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from app.connection import close, connect
from app.redis_server import RedisServer
from app.redis_sockets import UNIX_SEND_BUFFER_BYTES, HiredisConnection
from app.settings import Settings


async def test_tcp_connections_to_redis_keep_alive(settings: Settings) -> None:
    """Every TCP connection a pool opens probes an idle peer (a connection Redis dropped while
    the network was down fails instead of waiting for ever)."""
    pool = await connect(settings)
    try:
        connection = await pool.connection_pool.get_connection()
        try:
            await connection.connect()
            sock = connection._writer.get_extra_info("socket")  # the socket redis-py opened
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 10
        finally:
            await pool.connection_pool.release(connection)
    finally:
        await close(pool)


@pytest.fixture
def send_buffer_cap() -> int:
    """Return the system's cap on a socket's send buffer (Linux's net.core.wmem_max)."""
    cap = pathlib.Path("/proc/sys/net/core/wmem_max")
    if not cap.exists():
        pytest.skip("the send buffer's cap is read from Linux's /proc")
    return int(cap.read_text())


async def test_unix_socket_connections_send_a_pipeline_at_once(
    redis_server: RedisServer, send_buffer_cap: int
) -> None:
    """A connection on a Unix socket has a send buffer of UNIX_SEND_BUFFER_BYTES (up to the
    system's cap), not the system's default."""
    expected = min(UNIX_SEND_BUFFER_BYTES, send_buffer_cap)
    pool = await connect(Settings(redis_url=f"unix://{redis_server.socket_path}"))
    try:
        connection = await pool.connection_pool.get_connection()
        try:
            await connection.connect()
            sock = connection._reader._transport.get_extra_info("socket")  # redis-py's socket
            assert sock.family == socket.AF_UNIX
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * expected  # Linux
        finally:
            await pool.connection_pool.release(connection)
    finally:
        await close(pool)


class TestHiredisPacking:
    """Commands packed by hiredis are the bytes redis-py's own packer makes."""

    @pytest.mark.parametrize(
        "args",
        [
            ("SET", "key", "value"),
            ("SET", "k", 0.1, "PX", 2**70, b"\x00\xff", "é"),
            ("SET", "k", memoryview(b"abc")),
            ("CLIENT SETINFO", "LIB-NAME", "chunksum"),
            (b"SCRIPT LOAD", "return 1"),
        ],
    )
    def test_the_same_bytes(self, args: tuple[Any, ...]) -> None:
        """hiredis's bytes equal redis-py's for strings, bytes, ints, floats, memoryviews and
        commands of two words."""
        ours = b"".join(HiredisConnection().pack_command(*args))
        theirs = b"".join(bytes(piece) for piece in Connection().pack_command(*args))
        assert ours == theirs

    @pytest.mark.parametrize("bad", [True, None])
    def test_a_bad_argument_raises_redis_pys_error(self, bad: object) -> None:
        """An argument neither packer takes raises redis-py's DataError, naming its type."""
        with pytest.raises(DataError, match=type(bad).__name__):
            HiredisConnection().pack_command("SET", "k", bad)

    async def test_pools_pack_with_hiredis(self, settings: Settings) -> None:
        """A TCP pool that chunksum opens packs its commands with hiredis, and they work."""
        pool = await connect(settings)
        try:
            assert pool.connection_pool.connection_class is HiredisConnection
            key = f"{settings.key_prefix}:packing"
            await pool.set(key, 0.5)
            assert await pool.get(key) == b"0.5"
            await pool.delete(key)
        finally:
            await close(pool)
