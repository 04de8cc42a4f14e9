"""Settings: a frozen dataclass, read from the environment once, at the edges."""

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from app.errors import SettingsError
from app.keys import DEFAULT_PREFIX

ENV_PREFIX = "CHUNKSUM_"
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything chunksum can be configured with; see the README's configuration table."""

    # None: `chunksum run` starts a private Redis; other commands use DEFAULT_REDIS_URL
    redis_url: str | None = field(default=None, repr=False)
    redis_ca_file: str | None = None
    key_prefix: str = DEFAULT_PREFIX
    chunk_size: int = 65_536
    chunk_bytes: int = 16 << 20  # a file's byte range per chunk, when it is read by reference
    max_in_flight: int = 64
    result_ttl_s: float | None = 86_400.0
    job_timeout_s: float = 300.0
    worker_max_jobs: int = 32
    worker_poll_s: float = 1.0
    lease_s: float = 5.0
    submitter_lease_s: float = 30.0
    outage_s: float = 30.0  # how long a submitter or `wait` rides out an unreachable Redis
    max_chunk_bytes: int = 64 << 20
    # replicas that must have a run's jobs and total before chunksum goes on (Redis WAIT);
    # None: 1 for a Sentinel REDIS_URL, else 0 (see app.replication)
    wait_replicas: int | None = None
    # the bearer token that lets the dashboard cancel runs; None: read-only
    dashboard_token: str | None = field(default=None, repr=False)
    # the token the dashboard asks viewers for (app.dashboard_access); None: none on loopback
    dashboard_read_token: str | None = field(default=None, repr=False)
    # run on a Redis whose maxmemory-policy may evict any key (allkeys-*): see app.eviction
    allow_eviction: bool = False

    def __post_init__(self) -> None:
        for name in (
            "chunk_size",
            "chunk_bytes",
            "max_in_flight",
            "worker_max_jobs",
            "max_chunk_bytes",
        ):
            _check_positive(name, getattr(self, name))
        for name in ("job_timeout_s", "worker_poll_s", "lease_s", "submitter_lease_s", "outage_s"):
            _check_positive(name, getattr(self, name))
        if self.result_ttl_s is not None:
            _check_positive("result_ttl_s", self.result_ttl_s)
        if self.wait_replicas is not None and self.wait_replicas < 0:
            raise SettingsError(
                f"wait_replicas (env {ENV_PREFIX}WAIT_REPLICAS) must be 0 or more, "
                f"got {self.wait_replicas!r}"
            )
        if not self.key_prefix or any(c in self.key_prefix for c in " *?[]"):
            raise SettingsError(
                f"key_prefix (env {ENV_PREFIX}KEY_PREFIX) {self.key_prefix!r} must be non-empty, "
                "without spaces or glob characters; use e.g. 'chunksum' or 'chunksum-staging'"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Settings":
        """Build settings from ``REDIS_URL`` and ``CHUNKSUM_*`` variables; unset keep defaults."""
        values: dict[str, Any] = {}
        if url := env.get("REDIS_URL"):
            values["redis_url"] = url
        for f in fields(cls):
            if f.name == "redis_url":
                continue
            var = ENV_PREFIX + f.name.upper()
            if (raw := env.get(var)) is not None:
                values[f.name] = _parse(var, raw, _PARSERS[f.name])
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """Return the variables that make ``from_env`` rebuild these settings (for subprocesses)."""
        env = {} if self.redis_url is None else {"REDIS_URL": self.redis_url}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "redis_url":
                env[ENV_PREFIX + f.name.upper()] = "" if value is None else str(value)
        return env


def _optional_text(raw: str) -> str | None:
    return raw or None


def _optional_ttl(raw: str) -> float | None:
    return None if raw.strip().lower() in {"", "none", "0"} else float(raw)


def _optional_int(raw: str) -> int | None:
    return None if raw.strip().lower() in {"", "none", "auto"} else int(raw)


_FLAGS = {"1": True, "true": True, "yes": True, "on": True}
_FLAGS |= {"0": False, "false": False, "no": False, "off": False, "": False}


def _flag(raw: str) -> bool:
    try:
        return _FLAGS[raw.strip().lower()]
    except KeyError:
        raise ValueError(f"not a flag: {raw!r}") from None


_PARSERS: dict[str, Callable[[str], Any]] = {
    "redis_ca_file": _optional_text,
    "key_prefix": str,
    "chunk_size": int,
    "chunk_bytes": int,
    "max_in_flight": int,
    "result_ttl_s": _optional_ttl,
    "job_timeout_s": float,
    "worker_max_jobs": int,
    "worker_poll_s": float,
    "lease_s": float,
    "submitter_lease_s": float,
    "outage_s": float,
    "max_chunk_bytes": int,
    "wait_replicas": _optional_int,
    "dashboard_token": _optional_text,
    "dashboard_read_token": _optional_text,
    "allow_eviction": _flag,
}


def _parse(var: str, raw: str, parse: Callable[[str], T]) -> T:
    try:
        return parse(raw)
    except ValueError as exc:
        kind = "an integer, e.g. 1000" if parse in (int, _optional_int) else "a number, e.g. 2.5"
        if parse is _flag:
            kind = "a flag: 1 or 0 (or true/false, yes/no, on/off)"
        raise SettingsError(f"{var}={raw!r} is not {kind}") from exc


def _check_positive(name: str, value: float) -> None:
    if not 0 < value < math.inf:  # also refuses nan, which float() parses from "nan"
        var = ENV_PREFIX + name.upper()
        raise SettingsError(f"{name} (env {var}) must be positive and finite, got {value!r}")
