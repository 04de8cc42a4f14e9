"""The dashboard page in headless Chromium: live progress, a run's task stream, a failed
run's error, signing in, and how fast it stays with 10,000 runs and a 10,000-chunk run.

Pictures for the README: ``CHUNKSUM_SCREENSHOTS=docs pytest tests/test_dashboard_page.py``
writes docs/dashboard.png (the overview) and docs/task-stream.png. The scale test prints the
page's timings (``-s`` shows them).
"""

import asyncio
import os
import shutil
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from app import codec
from app.bench.slow_chunks import submit_slow
from app.dashboard_access import Access
from app.errors import RunFailedError
from app.exact import ExactSum
from app.runs import RunStore
from app.settings import Settings
from app.submit import Client
from app.timeline import Attempt
from tests.harness import running_worker
from tests.test_dashboard import GUARDED, READ_TOKEN, TOKEN, served
from tests.test_worker import failing_sum_parts

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here: apt-get install chromium"
)
Page = Any  # playwright's Page: imported with playwright, inside the fixture


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Launch headless Chromium (the system's: playwright downloads nothing)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


async def open_page(browser: Any, url: str) -> Page:
    """Open ``url`` in a wide page that fails the test on any script error."""
    page = await browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.script_errors = errors
    await page.goto(url)
    return page


def screenshot_to(tmp_path: Path, name: str) -> str:
    """Return where to save a picture: CHUNKSUM_SCREENSHOTS's folder (docs/), else tmp."""
    folder = os.environ.get("CHUNKSUM_SCREENSHOTS")
    return str(Path(folder) / name if folder else tmp_path / name)


@pytest.mark.timeout(90)
async def test_page_shows_a_run_reach_100_percent_with_its_total(
    browser: Any, settings: Settings, client: Client
) -> None:
    """The page shows a new run, its progress reaching 100%, and the total that the run
    stored, with the live worker; the throughput chart has axes."""
    async with served(settings, Access()) as url:
        page = await open_page(browser, url)
        async with running_worker(replace(settings, worker_max_jobs=2)):
            result = await submit_slow(client, range(1, 10_001), chunks=8, io_s=0.3, timeout=30)
            row = page.locator(f'tr[data-run-id="{result.run_id}"]')
            await row.locator(".percent", has_text="100%").wait_for(timeout=30_000)
            assert await row.locator(".total").inner_text() == "50005000"
            assert await page.locator("#nworkers").inner_text() == "1"
        axes = page.locator("#throughput .u-axis")
        assert await axes.count() == 3  # time, chunks/s, numbers/s
        assert page.script_errors == []


@pytest.mark.timeout(90)
async def test_task_stream_of_a_20_chunk_run_on_2_workers(
    browser: Any, settings: Settings, client: Client, tmp_path: Path
) -> None:
    """Signed in with the read token, a finished 20-chunk run's task stream shows 20 bars on
    two rows, one per worker, and hovering a bar names its chunk, worker and try."""
    async with served(settings, GUARDED) as url:
        page = await open_page(browser, url)
        assert "needs a token" in await page.locator("body").inner_text()  # no data shown
        await page.fill("input[name=token]", READ_TOKEN)
        await page.click("button")
        await page.locator("#nworkers").wait_for()
        assert page.script_errors == [
            "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
        ]
        page.script_errors.clear()  # that was the sign-in page's: nothing else may fail
        two = replace(settings, worker_max_jobs=2)
        async with running_worker(two), running_worker(two):
            for size in (2_000, 50_000, 10_000):  # some history for the charts
                await client.submit(range(size), chunks=4, timeout=30)
            result = await submit_slow(client, range(20_000), chunks=20, io_s=0.2, timeout=30)
            workers = {worker.worker_id for worker in await client.workers()}
            assert len(workers) == 2
            await page.locator(
                f'tr[data-run-id="{result.run_id}"] .percent', has_text="100%"
            ).wait_for()
            await page.click(f'tr[data-run-id="{result.run_id}"]')
            stream = page.locator("#stream")
            await page.wait_for_function("document.getElementById('stream').dataset.bars === '20'")
            assert await stream.get_attribute("data-rows") == "2"
            per_row = await stream.get_attribute("data-bars-per-row")
            assert per_row is not None
            assert sorted(int(n) for n in per_row.split(",")) != [0, 20]
            assert sum(int(n) for n in per_row.split(",")) == 20
            await hover_first_bar(page)
            tip = await page.locator("#tip").inner_text()
            assert tip.startswith("chunk ")
            assert "numbers: 1,000" in tip
            assert any(worker in tip for worker in workers)
            assert "try: 1" in tip
            await page.locator("#detail").screenshot(
                path=screenshot_to(tmp_path, "task-stream.png")
            )
        assert page.script_errors == []


async def hover_first_bar(page: Page) -> None:
    """Move the mouse onto the middle of the task stream's first bar."""
    await page.locator("#stream").scroll_into_view_if_needed()
    box = await page.locator("#stream").bounding_box()
    bar = await page.evaluate(
        "() => { const b = TaskStream.bars()[0]; return [b.x + b.w / 2, b.y + b.h / 2]; }"
    )
    await page.mouse.move(box["x"] + bar[0], box["y"] + bar[1])


@pytest.mark.timeout(90)
async def test_a_failed_run_shows_its_error(
    browser: Any,
    settings: Settings,
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A run whose chunk keeps raising shows, among the errors, its message, failing chunk,
    worker and retries; its task stream shows the three retried tries and the failed one."""
    async with served(settings, Access(cancel_token=TOKEN)) as url:
        page = await open_page(browser, url)
        async with running_worker(settings):
            for size in (5_000, 20_000, 80_000):  # some history for the overview
                await client.submit(range(size), chunks=8, timeout=30)
            (worker,) = await client.workers()
            monkeypatch.setattr("jobs.chunks.RETRY_BASE_S", 0.01)
            monkeypatch.setattr(codec, "sum_parts", failing_sum_parts(100))
            with pytest.raises(RunFailedError) as caught:
                await client.submit(range(100), chunks=1, timeout=20)
            await check_the_failed_run(page, caught.value.run_id, worker.worker_id)
            await page.wait_for_function(
                "document.getElementById('history-note').textContent.startsWith('4 ended')"
            )
            await page.screenshot(path=screenshot_to(tmp_path, "dashboard.png"), full_page=True)
        assert page.script_errors == []


async def check_the_failed_run(page: Page, run_id: str, worker_id: str) -> None:
    """Check that the page lists a run failed on its chunk 0 with its error, and draws its
    three retried tries and the failed one."""
    row = page.locator(f'#errors tr[data-run-id="{run_id}"]')
    await row.wait_for()
    assert "RuntimeError: boom 4" in await row.locator(".error").inner_text()
    assert await row.locator(".failing-chunk").inner_text() == "0"
    assert worker_id in await row.inner_text()
    await row.click()
    await page.wait_for_function("document.getElementById('stream').dataset.bars === '4'")
    facts = await page.locator("#facts").inner_text()
    assert "failing chunk" in facts
    assert "chunks retried\n3" in facts


async def seed_runs(store: RunStore, runs: int) -> None:
    """Store ``runs`` finished runs of one chunk, by hand, in pipelines of 1,000."""
    for start in range(0, runs, 1_000):
        async with store.redis.pipeline(transaction=False) as pipe:
            for index in range(start, min(start + 1_000, runs)):
                store.add_create(pipe, f"old-{index:05}", chunks=1, sender_lease_s=None)
            await pipe.execute()
        await asyncio.gather(
            *(
                store.finish(f"old-{index:05}", ExactSum.of(index, 0, 0), count=1, chunks=1)
                for index in range(start, min(start + 1_000, runs))
            )
        )


async def seed_big_run(store: RunStore, chunks: int) -> str:
    """Store a run of ``chunks`` chunks recorded by hand, one after another, as if by four
    workers running four chunks at a time, finished; return its id."""
    run_id = "big-run"
    async with store.redis.pipeline(transaction=True) as pipe:
        store.add_create(pipe, run_id, chunks=chunks, sender_lease_s=None)
        store.add_seal(pipe, run_id, chunks=chunks, count=chunks * 100)
        await pipe.execute()
    lasted_s = 0.0
    for index in range(chunks):
        # the chunks kept (every other: see stride) fall on each of the four workers
        worker = f"host-{index // 2 % 4}:{100 + index // 2 % 4}:abc"
        started_s = time.time() - min(lasted_s, 0.02)
        ran = Attempt(worker, started_s, 1)
        began = time.perf_counter()
        await store.record(run_id, index, ExactSum.of(1, 0, 0), count=100, attempt=ran)
        lasted_s = 4 * (time.perf_counter() - began)
    await store.finalise(run_id)
    return run_id


@pytest.mark.timeout(180)
async def test_page_stays_responsive_with_10000_runs_and_a_10000_chunk_run(
    browser: Any, settings: Settings, client: Client
) -> None:
    """With 10,000 runs retained and a 10,000-chunk run, the page loads, pages through the
    runs, draws the run history and the big run's 10,000 bars; the timings are printed (not
    asserted: the machine is shared)."""
    store = client.runs
    await seed_runs(store, 10_000)
    big = await seed_big_run(store, 10_000)
    began = time.perf_counter()
    history_runs = await client.recent_runs(10_000)
    read_ms = 1000 * (time.perf_counter() - began)
    assert len(history_runs) == 10_000
    async with served(settings, Access()) as url:
        began = time.perf_counter()
        page = await open_page(browser, url)
        await page.locator("#runs tr").nth(49).wait_for()
        await page.wait_for_function("document.getElementById('history-note').textContent !== ''")
        load_ms = 1000 * (time.perf_counter() - began)
        assert "10,001" in await page.locator("#page-note").inner_text()
        began = time.perf_counter()
        await page.click("#older")
        await page.locator("#page-note", has_text="runs 51\N{EN DASH}100").wait_for()
        page_ms = 1000 * (time.perf_counter() - began)
        began = time.perf_counter()
        await page.click("#newer")
        await page.click(f'tr[data-run-id="{big}"]')
        await page.wait_for_function("document.getElementById('stream').dataset.bars === '5000'")
        stream_ms = 1000 * (time.perf_counter() - began)
        assert await page.locator("#stream").get_attribute("data-rows") == "4"
        assert "every 2th chunk" in await page.locator("#stream-note").inner_text()
        await page.wait_for_function("performance.getEntriesByName('chunksum render').length >= 5")
        timings = await page.evaluate(
            "() => Object.fromEntries(['chunksum render', 'chunksum history', "
            "'chunksum task stream'].map((n) => "
            "[n, performance.getEntriesByName(n).map((e) => e.duration)]))"
        )
        assert page.script_errors == []
    renders = timings["chunksum render"]
    print(
        f"\ndashboard with 10,000 runs and a 10,000-chunk run: reading the 10,000 runs "
        f"{read_ms:.0f} ms (server, every 10 s); page load to runs and history shown "
        f"{load_ms:.0f} ms; next page {page_ms:.0f} ms; task stream click to drawn "
        f"{stream_ms:.0f} ms (drawing {max(timings['chunksum task stream']):.1f} ms); "
        f"update (a snapshot rendered) median {statistics.median(renders):.1f} ms, "
        f"max {max(renders):.1f} ms over {len(renders)}; history chart "
        f"{max(timings['chunksum history']):.1f} ms"
    )
