"""The web dashboard: its API, its metrics, cancelling with a token, and the page in Chromium."""

import asyncio
import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from app.bench.slow_chunks import submit_slow
from app.dashboard import REFRESH_S, create_app
from app.errors import RunFailedError
from app.settings import Settings
from app.submit import Client
from tests.harness import eventually, free_port, running_worker

TOKEN = "s3cret-token"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(params=[None, TOKEN], ids=["read-only", "with-token"])
async def dashboard(settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Serve the dashboard (without, then with a token) on a free port; yield its URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, token=request.param), host="127.0.0.1", port=port, log_level="error"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())

    async def started() -> bool:  # uvicorn has no event for this
        return server.started

    await eventually(started, timeout_s=10, what="uvicorn to start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(serving, 10)


async def fetch(url: str, *, method: str = "GET", token: str | None = None) -> tuple[int, str]:
    """Return (status, body) of an HTTP request, off the event loop."""

    def call() -> tuple[int, str]:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        request = urllib.request.Request(url, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return int(reply.status), reply.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    return await asyncio.to_thread(call)


async def fresh_state(base: str, run_id: str) -> dict[str, Any]:
    """Return /api/state once it shows ``run_id`` done (bounded: a few refreshes)."""

    async def showing_done() -> dict[str, Any] | None:
        state: dict[str, Any] = json.loads((await fetch(f"{base}/api/state"))[1])
        runs = {run["run_id"]: run for run in state.get("runs", [])}
        return state if runs.get(run_id, {}).get("status") == "done" else None

    return await eventually(  # every 0.1 s: the dashboard refreshes on its own clock
        showing_done, timeout_s=10 * REFRESH_S, every_s=0.1, what=f"/api/state: {run_id} done"
    )


async def test_state_and_metrics_show_runs_and_workers(
    dashboard: str, settings: Settings, client: Client
) -> None:
    """After a run, /api/state lists it (its total as chunksum's JSON has it: see
    app.exact.json_total) and the live worker, and /metrics
    counts runs by status and live workers."""
    async with running_worker(settings):
        result = await client.submit(range(100), chunks=4, timeout=30)
        state = await fresh_state(dashboard, result.run_id)
        (run,) = state["runs"]
        assert (run["total"], run["done_chunks"], run["chunks"]) == (4950, 4, 4)
        assert len(state["workers"]) == 1
        status, text = await fetch(f"{dashboard}/metrics")
    assert status == 200
    assert 'chunksum_runs{status="done"} 1.0' in text
    assert "chunksum_live_workers 1.0" in text


async def test_cancel_needs_the_configured_token(
    dashboard: str, settings: Settings, client: Client
) -> None:
    """Without a token the dashboard refuses to cancel; with one, only the right bearer token
    cancels a run."""
    submit = asyncio.create_task(client.submit(range(10), chunks=2, timeout=30))  # no worker
    runs = await eventually(lambda: client.recent_runs(1), timeout_s=10, what="the run")
    run_id = runs[0].run_id
    url = f"{dashboard}/api/runs/{run_id}/cancel"
    status, _ = await fetch(url, method="POST", token="wrong")
    if status == 403:  # read-only: nothing may cancel
        assert (await fetch(url, method="POST", token=TOKEN))[0] == 403
        assert (await client.status(run_id)).status == "queued"
        await client.cancel(run_id)
    else:
        assert status == 401
        status, body = await fetch(url, method="POST", token=TOKEN)
        assert (status, json.loads(body)["status"]) == (200, "cancelled")
    with pytest.raises(RunFailedError, match="cancelled"):
        await submit


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here: apt-get install chromium")
@pytest.mark.timeout(90)
async def test_page_shows_a_run_reach_100_percent_with_its_total(
    dashboard: str, settings: Settings, client: Client, tmp_path: Path
) -> None:
    """In headless Chromium, the page shows a new run, its progress reaching 100%, and the
    total that the run stored."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            await page.goto(dashboard)
            async with running_worker(replace(settings, worker_max_jobs=2)):
                result = await submit_slow(client, range(1, 10_001), chunks=8, io_s=0.3, timeout=30)
                row = page.locator(f'tr[data-run-id="{result.run_id}"]')
                await row.locator(".percent", has_text="100%").wait_for(timeout=30_000)
                assert await row.locator(".total").inner_text() == "50005000"
                assert await page.locator("#nworkers").inner_text() == "1"
            # the README's picture: CHUNKSUM_SCREENSHOT=docs/dashboard.png pytest -k page
            shot = os.environ.get("CHUNKSUM_SCREENSHOT") or str(tmp_path / "dashboard.png")
            await page.screenshot(path=shot, full_page=True)
        finally:
            await browser.close()
