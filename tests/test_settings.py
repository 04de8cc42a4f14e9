"""Tests for app.settings and the URL handling in app.connection: parsing, errors, secrets."""

import dataclasses

import pytest

from app.connection import (
    DEFAULT_REDIS_URL,
    redact,
    redis_settings,
)
from app.errors import SettingsError
from app.keys import DEFAULT_PREFIX
from app.settings import Settings

SECRET = "s3cr3t-pw"


def test_defaults() -> None:
    """Settings() has the documented defaults, and from_env of an empty env gives the same."""
    settings = Settings()
    assert settings.redis_url is None
    assert settings.redis_ca_file is None
    assert settings.key_prefix == DEFAULT_PREFIX
    assert settings.chunk_size == 65_536
    assert settings.max_in_flight == 64
    assert settings.result_ttl_s == 86_400.0
    assert settings.job_timeout_s == 300.0
    assert settings.worker_max_jobs == 32
    assert settings.worker_poll_s == 1.0
    assert Settings.from_env(env={}) == settings


def test_settings_are_frozen() -> None:
    """Settings can't be changed after they are built."""
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.chunk_size = 1  # type: ignore[misc]  # assigning to a frozen field is the point


def test_from_env_reads_every_variable() -> None:
    """from_env parses REDIS_URL and every CHUNKSUM_* variable into its typed field."""
    env = {
        "REDIS_URL": f"redis://user:{SECRET}@example.com:6380/2",
        "CHUNKSUM_REDIS_CA_FILE": "/etc/ssl/ca.pem",
        "CHUNKSUM_KEY_PREFIX": "chunksum-staging",
        "CHUNKSUM_CHUNK_SIZE": "1000",
        "CHUNKSUM_MAX_IN_FLIGHT": "8",
        "CHUNKSUM_RESULT_TTL_S": "60.5",
        "CHUNKSUM_JOB_TIMEOUT_S": "12",
        "CHUNKSUM_WORKER_MAX_JOBS": "3",
        "CHUNKSUM_WORKER_POLL_S": "0.25",
        "CHUNKSUM_WAIT_REPLICAS": "2",
    }
    assert Settings.from_env(env=env) == Settings(
        redis_url=f"redis://user:{SECRET}@example.com:6380/2",
        redis_ca_file="/etc/ssl/ca.pem",
        key_prefix="chunksum-staging",
        chunk_size=1000,
        max_in_flight=8,
        result_ttl_s=60.5,
        job_timeout_s=12.0,
        worker_max_jobs=3,
        worker_poll_s=0.25,
        wait_replicas=2,
    )


def test_from_env_ignores_other_variables() -> None:
    """Variables without the CHUNKSUM_ prefix (other than REDIS_URL) are ignored."""
    env = {"CHUNK_SIZE": "5", "chunksum_chunk_size": "5", "REDIS_HOST": "elsewhere"}
    assert Settings.from_env(env=env) == Settings()


def test_empty_redis_url_means_unset() -> None:
    """An empty REDIS_URL leaves redis_url unset rather than empty."""
    assert Settings.from_env(env={"REDIS_URL": ""}).redis_url is None


@pytest.mark.parametrize("raw", ["none", "None", "0", "", "  "])
def test_result_ttl_can_be_switched_off(raw: str) -> None:
    """CHUNKSUM_RESULT_TTL_S of none, 0 or empty means results never expire (None)."""
    assert Settings.from_env(env={"CHUNKSUM_RESULT_TTL_S": raw}).result_ttl_s is None


@pytest.mark.parametrize(
    ("var", "raw", "message"),
    [
        ("CHUNKSUM_CHUNK_SIZE", "lots", "is not an integer, e.g. 1000"),
        ("CHUNKSUM_CHUNK_SIZE", "1.5", "is not an integer"),
        ("CHUNKSUM_MAX_IN_FLIGHT", "", "is not an integer"),
        ("CHUNKSUM_WORKER_MAX_JOBS", "ten", "is not an integer"),
        ("CHUNKSUM_JOB_TIMEOUT_S", "5 minutes", "is not a number, e.g. 2.5"),
        ("CHUNKSUM_WORKER_POLL_S", "fast", "is not a number"),
        ("CHUNKSUM_RESULT_TTL_S", "1 day", "is not a number"),
        ("CHUNKSUM_WAIT_REPLICAS", "one", "is not an integer"),
    ],
)
def test_unparsable_values_name_the_variable(var: str, raw: str, message: str) -> None:
    """A value that doesn't parse raises SettingsError naming the variable, value and a fix."""
    with pytest.raises(SettingsError, match=message) as info:
        Settings.from_env(env={var: raw})
    assert f"{var}={raw!r}" in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.parametrize(
    ("var", "raw"),
    [
        ("CHUNKSUM_CHUNK_SIZE", "0"),
        ("CHUNKSUM_CHUNK_SIZE", "-5"),
        ("CHUNKSUM_MAX_IN_FLIGHT", "0"),
        ("CHUNKSUM_WORKER_MAX_JOBS", "-1"),
        ("CHUNKSUM_JOB_TIMEOUT_S", "0"),
        ("CHUNKSUM_JOB_TIMEOUT_S", "-0.5"),
        ("CHUNKSUM_JOB_TIMEOUT_S", "nan"),
        ("CHUNKSUM_JOB_TIMEOUT_S", "inf"),
        ("CHUNKSUM_WORKER_POLL_S", "0.0"),
        ("CHUNKSUM_WORKER_POLL_S", "NaN"),
        ("CHUNKSUM_RESULT_TTL_S", "-1"),
        ("CHUNKSUM_RESULT_TTL_S", "nan"),
        ("CHUNKSUM_RESULT_TTL_S", "infinity"),
    ],
)
def test_out_of_range_values_name_the_variable(var: str, raw: str) -> None:
    """Zero, negative, NaN and infinite values raise SettingsError naming the variable."""
    with pytest.raises(SettingsError, match="must be positive and finite") as info:
        Settings.from_env(env={var: raw})
    assert var in str(info.value)


@pytest.mark.parametrize("raw", ["auto", "none", ""])
def test_wait_replicas_auto(raw: str) -> None:
    """CHUNKSUM_WAIT_REPLICAS of auto, none or empty leaves it to the URL (None)."""
    assert Settings.from_env(env={"CHUNKSUM_WAIT_REPLICAS": raw}).wait_replicas is None


def test_negative_wait_replicas_names_the_variable() -> None:
    """A negative replica count raises SettingsError naming CHUNKSUM_WAIT_REPLICAS."""
    with pytest.raises(SettingsError, match="CHUNKSUM_WAIT_REPLICAS"):
        Settings.from_env(env={"CHUNKSUM_WAIT_REPLICAS": "-1"})


@pytest.mark.parametrize("prefix", ["", "a b", "run*", "x?", "[x]"])
def test_bad_key_prefix_names_the_variable(prefix: str) -> None:
    """An empty key prefix or one with spaces or glob characters names CHUNKSUM_KEY_PREFIX."""
    with pytest.raises(SettingsError, match="CHUNKSUM_KEY_PREFIX") as info:
        Settings.from_env(env={"CHUNKSUM_KEY_PREFIX": prefix})
    assert repr(prefix) in str(info.value)
    assert "e.g. 'chunksum'" in str(info.value)


def test_direct_construction_is_validated() -> None:
    """Bad values passed to Settings() directly raise too, not only those from the env."""
    with pytest.raises(SettingsError, match="max_in_flight"):
        Settings(max_in_flight=0)


def test_redis_url_never_in_repr() -> None:
    """The Redis URL (which may hold a password) is left out of repr()."""
    settings = Settings(redis_url=f"redis://user:{SECRET}@host:6379/0")
    assert SECRET not in repr(settings)
    assert "redis_url" not in repr(settings)
    assert SECRET not in str(settings)


def test_bad_redis_url_error_hides_the_password() -> None:
    """A REDIS_URL that redis-py rejects raises SettingsError without the password in it."""
    with pytest.raises(SettingsError, match="is not a Redis URL") as info:
        redis_settings(Settings(redis_url=f"http://user:{SECRET}@host:6379/0"))
    assert SECRET not in str(info.value)
    assert "redis://localhost:6379/0" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis//localhost",
        "localhost:6379",
        "redis://host:port/0",
        "redis://[::1",
        f"redis://user:{SECRET}@[::1/0",
    ],
)
def test_bad_redis_urls_raise_settings_error(url: str) -> None:
    """Malformed URLs (scheme, port, db, brackets) raise SettingsError, not a bare ValueError."""
    with pytest.raises(SettingsError, match="REDIS_URL") as info:
        redis_settings(Settings(redis_url=url))
    assert isinstance(info.value.__cause__, ValueError)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"redis://user:{SECRET}@host:6379/0", "redis://user:***@host:6379/0"),
        (f"redis://:{SECRET}@host", "redis://:***@host"),
        (
            f"rediss://u:{SECRET}@h:6380/1?ssl_cert_reqs=none",
            "rediss://u:***@h:6380/1?ssl_cert_reqs=none",
        ),
        ("redis://user:p%40ss@host/0", "redis://user:***@host/0"),
        ("redis://user:p@ss@host/0", "redis://user:***@host/0"),
        (
            f"unix:///tmp/redis.sock?db=2&password={SECRET}",
            "unix:///tmp/redis.sock?db=2&password=***",
        ),
        (f"unix://:{SECRET}@/tmp/redis.sock", "unix://:***@/tmp/redis.sock"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("redis://user@host:6379/0", "redis://user@host:6379/0"),
        (f"redis://u:{SECRET}@[::1", "<unparsable URL>"),
    ],
)
def test_redact_hides_passwords(url: str, expected: str) -> None:
    """redact replaces the password (in the netloc or the query) with *** and keeps the rest."""
    assert redact(url) == expected


def test_sentinel_url_names_sentinels_master_and_db() -> None:
    """redis+sentinel:// gives arq the Sentinels (default port 26379, IPv6 in brackets), the
    master's name, the database and the master's percent-decoded credentials."""
    url = f"redis+sentinel://alice:p%40{SECRET}@s1:26380,[::1]:5000,s3/mymaster/2"
    rs = redis_settings(Settings(redis_url=url))
    assert rs.sentinel is True
    assert rs.host == [("s1", 26380), ("::1", 5000), ("s3", 26379)]
    assert (rs.sentinel_master, rs.database) == ("mymaster", 2)
    assert (rs.username, rs.password) == ("alice", f"p@{SECRET}")
    assert redact(url) == "redis+sentinel://alice:***@s1:26380,[::1]:5000,s3/mymaster/2"


def test_sentinel_url_without_credentials_or_db() -> None:
    """The credentials and the database are optional (database 0)."""
    rs = redis_settings(Settings(redis_url="redis+sentinel://sentinel/service"))
    assert (rs.host, rs.sentinel_master, rs.database) == ([("sentinel", 26379)], "service", 0)
    assert (rs.username, rs.password) == (None, None)


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://s1:26379",  # no master name
        "redis+sentinel://s1:26379/",
        "redis+sentinel://s1:port/mymaster",
        "redis+sentinel://s1,,s2/mymaster",
        "redis+sentinel://s1/mymaster/zero",
        "redis+sentinel://s1/mymaster/0/extra",
        f"redis+sentinel://:{SECRET}@s1/mymaster?ssl=true",
    ],
)
def test_bad_sentinel_urls_raise_settings_error(url: str) -> None:
    """A Sentinel URL without a master name, or with a bad port, db or query, raises
    SettingsError with an example, and never shows the password."""
    with pytest.raises(SettingsError, match="is not a Sentinel URL") as info:
        redis_settings(Settings(redis_url=url))
    assert "redis+sentinel://:password@sentinel1:26379" in str(info.value)
    assert SECRET not in str(info.value)


def test_default_url_when_unset() -> None:
    """With no REDIS_URL, redis_settings points at the default local Redis."""
    rs = redis_settings(Settings())
    assert DEFAULT_REDIS_URL == "redis://localhost:6379/0"
    assert (rs.host, rs.port, rs.database, rs.ssl, rs.password) == (
        "localhost",
        6379,
        0,
        False,
        None,
    )


def test_redis_url_translates_host_port_db_and_credentials() -> None:
    """redis:// gives host, port, database, user and a percent-decoded password."""
    rs = redis_settings(Settings(redis_url="redis://alice:p%40ss%3Aw0rd@cache.example.com:6390/5"))
    assert (rs.host, rs.port, rs.database) == ("cache.example.com", 6390, 5)
    assert (rs.username, rs.password) == ("alice", "p@ss:w0rd")
    assert rs.ssl is False
    assert rs.unix_socket_path is None


def test_conn_retries_are_passed_on() -> None:
    """redis_settings passes conn_retries through to arq."""
    assert redis_settings(Settings(), conn_retries=0).conn_retries == 0
    assert redis_settings(Settings()).conn_retries == 5


def test_rediss_url_enables_tls() -> None:
    """rediss:// turns TLS on and requires certificates by default."""
    rs = redis_settings(Settings(redis_url="rediss://:pw@secure.example.com:6380/1"))
    assert rs.ssl is True
    assert (rs.host, rs.port, rs.database, rs.password) == ("secure.example.com", 6380, 1, "pw")
    assert rs.ssl_cert_reqs == "required"
    assert rs.ssl_ca_certs is None


def test_rediss_url_query_options() -> None:
    """?ssl_cert_reqs=none and ?ssl_ca_certs= from the URL reach arq's settings."""
    rs = redis_settings(
        Settings(redis_url="rediss://host:6380/0?ssl_cert_reqs=none&ssl_ca_certs=/x/ca.pem")
    )
    assert rs.ssl is True
    assert rs.ssl_cert_reqs == "none"
    assert rs.ssl_ca_certs == "/x/ca.pem"


def test_ca_file_setting_wins_over_url() -> None:
    """CHUNKSUM_REDIS_CA_FILE sets the CA bundle, overriding one in the URL."""
    env = {
        "REDIS_URL": "rediss://host:6380/0?ssl_ca_certs=/url/ca.pem",
        "CHUNKSUM_REDIS_CA_FILE": "/env/ca.pem",
    }
    assert redis_settings(Settings.from_env(env=env)).ssl_ca_certs == "/env/ca.pem"
    assert (
        redis_settings(Settings(redis_url="rediss://h", redis_ca_file="/a.pem")).ssl_ca_certs
        == "/a.pem"
    )


def test_unix_socket_url() -> None:
    """unix:// gives a socket path, a database and a password from the query."""
    rs = redis_settings(Settings(redis_url=f"unix:///run/redis/redis.sock?db=3&password={SECRET}"))
    assert rs.unix_socket_path == "/run/redis/redis.sock"
    assert rs.database == 3
    assert rs.password == SECRET
    assert rs.ssl is False


def test_plain_url_has_no_socket_path() -> None:
    """A redis:// URL with a path (the db) is not mistaken for a socket path."""
    rs = redis_settings(Settings(redis_url="redis://host/4"))
    assert rs.unix_socket_path is None
    assert rs.database == 4


@pytest.mark.parametrize(
    ("raw", "allowed"), [("1", True), ("true", True), ("0", False), ("", False)]
)
def test_allow_eviction_is_a_flag(raw: str, allowed: bool) -> None:
    """CHUNKSUM_ALLOW_EVICTION reads 1/true as on and 0/empty as off (the default)."""
    assert Settings.from_env(env={"CHUNKSUM_ALLOW_EVICTION": raw}).allow_eviction is allowed
    assert Settings().allow_eviction is False


def test_allow_eviction_refuses_other_values() -> None:
    """A CHUNKSUM_ALLOW_EVICTION that is not a flag names the variable and the valid values."""
    with pytest.raises(
        SettingsError, match="CHUNKSUM_ALLOW_EVICTION='maybe' is not a flag: 1 or 0"
    ):
        Settings.from_env(env={"CHUNKSUM_ALLOW_EVICTION": "maybe"})
    assert Settings.from_env(env=Settings(allow_eviction=True).to_env()).allow_eviction is True
