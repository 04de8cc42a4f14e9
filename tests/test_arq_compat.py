"""arq's own worker tests, at the pinned arq 0.28.0, run against chunksum's worker (issue 14).

The tests are arq's, unchanged: this module takes them from arq 0.28.0's sdist as published
on PyPI (``pip download`` into the git-ignored ``.arq-suite/`` at the first collection,
checked against its sha256; arq is MIT-licensed, (c) Samuel Colvin and contributors, and its
code stays out of this repository), keeps those that run a worker, and supplies the
fixtures arq's ``tests/conftest.py`` would. Each test runs twice: against arq's ``Worker``
(the baseline: it must pass) and against :class:`ChunksumWorker`, which differs on purpose in
the ways ``DIFFERENCES`` lists (the README's "Differences from arq's worker").
"""

import asyncio
import functools
import hashlib
import importlib
import importlib.util
import inspect
import shutil
import subprocess
import sys
import tarfile
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import EllipsisType, ModuleType
from typing import Any

import msgpack
import pytest
import redis.exceptions
from arq import worker as arq_worker
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.redis_server import RedisServer
from app.runs import RunStore
from app.settings import Settings
from app.worker.chunksum_worker import ChunksumWorker
from jobs.chunks import RUNS
from tests.harness import ROOT, free_port

ARQ_VERSION = "0.28.0"
SDIST = f"arq-{ARQ_VERSION}.tar.gz"
SDIST_SHA256 = "a458188aefc2d7ee17d136f80d8fa8df1d6eba4ceebdead87e9f172d027dc311"  # PyPI's
SUITE_DIR = ROOT / ".arq-suite"  # git-ignored
# arq's test modules that run workers, and the class each one's tests are collected in
MODULES = {
    "test_worker": "TestArqWorker",
    "test_main": "TestArqMain",
    "test_jobs": "TestArqJobs",
    "test_cron": "TestArqCron",
}
WORKER_FIXTURES = {"worker", "worker_retry"}
BUILDS_WORKER = {"test_no_jobs", "test_handle_sig", "test_handle_no_sig"}  # Worker(...) itself

# The tests that fail against ChunksumWorker, and why (each a deliberate difference; a bug
# would say "bug: ..."); strict, so a test that starts passing is noticed. By class::name.
RIDES_OUTAGES = (
    "deliberate: a Redis connection error or timeout in the worker loop is waited out with "
    "a backoff (ChunksumWorker._poll_iteration); arq's loop raises it and the worker ends"
)
DIFFERENCES: dict[str, str] = {
    "TestArqWorker::test_worker_retry": RIDES_OUTAGES,
    "TestArqWorker::test_worker_crash": RIDES_OUTAGES,
}


def fetch_arq_tests() -> Path:
    """Return the folder of arq's tests from its sdist, fetched with pip the first time."""
    tests = SUITE_DIR / f"arq-{ARQ_VERSION}" / "tests"
    if tests.is_dir():
        return tests
    sdist = SUITE_DIR / SDIST
    if not sdist.exists():
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--no-binary", ":all:", f"arq=={ARQ_VERSION}", "--dest", str(SUITE_DIR)]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise AssertionError(f"{sdist} has sha256 {digest}, not PyPI's {SDIST_SHA256}; delete it")
    prefix = f"arq-{ARQ_VERSION}/tests/"
    with tempfile.TemporaryDirectory(dir=SUITE_DIR) as scratch, tarfile.open(sdist) as tar:
        wanted = {f"{prefix}{name}.py" for name in ("__init__", *MODULES)}
        members = [member for member in tar.getmembers() if member.name in wanted]
        tar.extractall(scratch, members=members, filter="data")
        shutil.move(Path(scratch, prefix), tests)  # whole, or not at all
    return tests


def import_arq_tests(tests: Path) -> dict[str, ModuleType]:
    """Import arq's test modules (as the package ``arq_suite``), by module name."""
    spec = importlib.util.spec_from_file_location(
        "arq_suite", tests / "__init__.py", submodule_search_locations=[str(tests)]
    )
    assert spec is not None
    assert spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules["arq_suite"] = package
    spec.loader.exec_module(package)
    return {name: importlib.import_module(f"arq_suite.{name}") for name in MODULES}


def runs_a_worker(name: str, test: Any) -> bool:
    """Whether an arq test runs a worker: it takes a worker fixture, or builds one itself."""
    return bool(WORKER_FIXTURES & set(inspect.signature(test).parameters)) or name in BUILDS_WORKER


def collect(module: ModuleType, class_name: str) -> type:
    """Return a test class holding ``module``'s tests that run a worker."""
    tests = {
        name: staticmethod(test)
        for name, test in vars(module).items()
        if name.startswith("test_") and inspect.isfunction(test) and runs_a_worker(name, test)
    }
    file_name = module.__name__.rpartition(".")[2]
    return type(class_name, (), {"__doc__": f"arq's tests/{file_name}.py", **tests})


try:
    ARQ_MODULES = import_arq_tests(fetch_arq_tests())
except (OSError, subprocess.SubprocessError) as exc:  # offline, and never fetched
    pytest.skip(f"arq {ARQ_VERSION}'s sdist could not be fetched: {exc}", allow_module_level=True)

TestArqWorker = collect(ARQ_MODULES["test_worker"], MODULES["test_worker"])
TestArqMain = collect(ARQ_MODULES["test_main"], MODULES["test_main"])
TestArqJobs = collect(ARQ_MODULES["test_jobs"], MODULES["test_jobs"])
TestArqCron = collect(ARQ_MODULES["test_cron"], MODULES["test_cron"])


@pytest.fixture(scope="module")
def arq_server() -> Iterator[RedisServer]:
    """Start a Redis of the module's own: arq's tests flush it and use fixed key names."""
    with RedisServer(port=free_port()) as server:
        yield server


@pytest.fixture
def test_redis_settings(arq_server: RedisServer) -> RedisSettings:
    """arq's fixture: RedisSettings for the test Redis."""
    return RedisSettings.from_dsn(arq_server.url)


@pytest.fixture
async def loop() -> asyncio.AbstractEventLoop:
    """arq's fixture: the test's event loop (not running yet in a synchronous test)."""
    return asyncio.get_running_loop()


async def open_redis(settings: RedisSettings, **options: Any) -> ArqRedis:
    """Open an ArqRedis on the test Redis, flushed, as arq's fixtures do."""
    redis_ = ArqRedis(host=settings.host, port=settings.port, encoding="utf-8", **options)
    await redis_.flushall()
    return redis_


@pytest.fixture
async def arq_redis(test_redis_settings: RedisSettings) -> AsyncIterator[ArqRedis]:
    """arq's fixture: a pool on the flushed test Redis."""
    redis_ = await open_redis(test_redis_settings)
    yield redis_
    await redis_.aclose()


@pytest.fixture
async def arq_redis_msgpack(test_redis_settings: RedisSettings) -> AsyncIterator[ArqRedis]:
    """arq's fixture: a pool on the flushed test Redis, serializing jobs with msgpack."""
    redis_ = await open_redis(
        test_redis_settings,
        job_serializer=msgpack.packb,
        job_deserializer=functools.partial(msgpack.unpackb, raw=False),
    )
    yield redis_
    await redis_.aclose()


@pytest.fixture
async def arq_redis_retry(test_redis_settings: RedisSettings) -> AsyncIterator[ArqRedis]:
    """arq's fixture: a pool on the flushed test Redis, retrying connection errors 3 times."""
    redis_ = await open_redis(
        test_redis_settings,
        retry=Retry(backoff=NoBackoff(), retries=3),
        retry_on_timeout=True,
        retry_on_error=[redis.exceptions.ConnectionError],
    )
    yield redis_
    await redis_.aclose()


@pytest.fixture(name="create_pool")
async def pool_factory() -> AsyncIterator[Callable[..., Any]]:
    """arq's fixture: ``create_pool``, whose pools are closed after the test."""
    pools: list[ArqRedis] = []

    async def create(settings: RedisSettings, *args: Any, **kwargs: Any) -> ArqRedis:
        pool = await create_pool(settings, *args, **kwargs)
        pools.append(pool)
        return pool

    yield create
    await asyncio.gather(*(pool.aclose() for pool in pools))


@pytest.fixture(params=["arq", "chunksum"])
def worker_kind(request: pytest.FixtureRequest) -> str:
    """Which worker arq's tests run against: arq's own (the baseline), or chunksum's."""
    kind: str = request.param
    name = f"{request.node.cls.__name__}::{request.node.originalname}"
    if kind == "chunksum" and (reason := DIFFERENCES.get(name)):
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))
    return kind


@pytest.fixture
async def make_worker(
    worker_kind: str, test_redis_settings: RedisSettings, arq_server: RedisServer
) -> AsyncIterator[Callable[..., Worker]]:
    """Return what arq's tests call as ``Worker``: arq's, or ChunksumWorker with the ``ctx``
    it needs (chunksum's settings, on a key prefix of the test's own, and its run store)."""
    if worker_kind == "arq":
        yield Worker
        return
    settings = Settings(redis_url=arq_server.url, key_prefix=f"arq-compat-{uuid.uuid4().hex[:8]}")
    runs_redis = ArqRedis(host=test_redis_settings.host, port=test_redis_settings.port)

    def chunksum_worker(*args: Any, ctx: dict[str, Any] | None = None, **kwargs: Any) -> Worker:
        ctx = {
            "settings": settings,
            RUNS: RunStore.for_settings(runs_redis, settings),
            **(ctx or {}),
        }
        return ChunksumWorker(*args, ctx=ctx, **kwargs)

    # arq's create_worker passes on the settings that name Worker's parameters
    chunksum_worker.__signature__ = inspect.signature(Worker)  # type: ignore[attr-defined]  # read by inspect
    yield chunksum_worker
    await runs_redis.aclose()


@pytest.fixture(autouse=True)
def worker_class(make_worker: Callable[..., Worker], monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the ``Worker`` that arq's tests (and arq's ``run_worker``) build the one on test."""
    for module in ARQ_MODULES.values():
        if hasattr(module, "Worker"):
            monkeypatch.setattr(module, "Worker", make_worker)
    monkeypatch.setattr(arq_worker, "Worker", make_worker)


class WorkerFactory:
    """arq's ``worker`` fixture: build workers as arq's tests want them; close the last one."""

    def __init__(self, make_worker: Callable[..., Worker], pool: ArqRedis) -> None:
        self.make_worker = make_worker
        self.pool = pool
        self.created: Worker | None = None

    def __call__(
        self,
        functions: Any = (),
        burst: bool = True,
        poll_delay: float = 0,
        max_jobs: int = 10,
        arq_redis: ArqRedis | EllipsisType | None = ...,  # ...: the fixture's pool
        **kwargs: Any,
    ) -> Worker:
        pool = self.pool if arq_redis is ... else arq_redis
        self.created = self.make_worker(
            functions=functions,
            redis_pool=pool,
            burst=burst,
            poll_delay=poll_delay,
            max_jobs=max_jobs,
            **kwargs,
        )
        return self.created

    async def close(self) -> None:
        """Close the last worker built, as arq's fixture does."""
        if self.created is not None:
            await self.created.close()


@pytest.fixture
async def worker(
    make_worker: Callable[..., Worker], arq_redis: ArqRedis
) -> AsyncIterator[WorkerFactory]:
    """arq's fixture: build a burst worker on ``arq_redis``."""
    factory = WorkerFactory(make_worker, arq_redis)
    yield factory
    await factory.close()


@pytest.fixture
async def worker_retry(
    make_worker: Callable[..., Worker], arq_redis_retry: ArqRedis
) -> AsyncIterator[WorkerFactory]:
    """arq's fixture: build a burst worker on ``arq_redis_retry``."""
    factory = WorkerFactory(make_worker, arq_redis_retry)
    yield factory
    await factory.close()
