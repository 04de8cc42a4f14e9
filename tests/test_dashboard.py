"""The web dashboard's API: its snapshot, metrics, pages of runs, a run's timeline, its run
history, cancelling with a token, and who may look (app.dashboard_access).

The page itself, in Chromium, is tests/test_dashboard_page.py's."""

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
import uvicorn

from app.dashboard import create_app
from app.dashboard_access import COOKIE, MAX_SIGN_IN_BYTES, Access
from app.dashboard_state import REFRESH_S, RUNS_SHOWN, history
from app.errors import RunFailedError, SettingsError
from app.exact import ExactSum
from app.run_status import RunStatus, Status
from app.runs import RunStore
from app.settings import Settings
from app.submit import Client
from app.timeline import Attempt
from tests.harness import eventually, free_port, running_worker

TOKEN = "s3cret-token"  # cancels, and views
READ_TOKEN = "read-only-token"
GUARDED = Access(view_tokens=(READ_TOKEN, TOKEN), cancel_token=TOKEN)


@contextlib.asynccontextmanager
async def served(settings: Settings, access: Access) -> AsyncIterator[str]:
    """Serve the dashboard on a free port until the block exits; yield its URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, access),
        host="127.0.0.1",
        port=port,
        log_level="error",
        timeout_graceful_shutdown=1,  # a page's event stream never ends by itself
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())

    async def started() -> bool:  # uvicorn has no event for this
        return server.started

    await eventually(started, timeout_s=10, what="uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)


@pytest.fixture(
    params=[Access(), Access(cancel_token=TOKEN)], ids=["read-only", "with-cancel-token"]
)
async def dashboard(
    settings: Settings, client: Client, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """Serve an open dashboard on loopback (read-only, then with a cancel token)."""
    async with served(settings, request.param) as url:
        yield url


@pytest.fixture
async def guarded(settings: Settings, client: Client) -> AsyncIterator[str]:
    """Serve a dashboard that needs a token to view."""
    async with served(settings, GUARDED) as url:
        yield url


async def fetch(
    url: str,
    *,
    method: str = "GET",
    token: str | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    first_line_only: bool = False,
) -> tuple[int, str, dict[str, str]]:
    """Return (status, body, headers) of an HTTP request, off the event loop; redirects are
    not followed. With ``first_line_only``, read only the body's first line (an event
    stream never ends)."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    def call() -> tuple[int, str, dict[str, str]]:
        request = urllib.request.Request(url, method=method, headers=sent, data=body)
        opener = urllib.request.build_opener(NoRedirects)
        try:
            with opener.open(request, timeout=10) as reply:
                text = reply.readline() if first_line_only else reply.read()
                return int(reply.status), text.decode(), dict(reply.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(), dict(error.headers)

    return await asyncio.to_thread(call)


async def fresh_state(base: str, run_id: str, token: str | None = None) -> dict[str, Any]:
    """Return /api/state once it shows ``run_id`` ended (bounded: a few refreshes)."""

    async def showing_ended() -> dict[str, Any] | None:
        state: dict[str, Any] = json.loads((await fetch(f"{base}/api/state", token=token))[1])
        runs = {run["run_id"]: run for run in state.get("runs", [])}
        return state if runs.get(run_id, {}).get("status") in ("done", "failed") else None

    return await eventually(  # every 0.1 s: the dashboard refreshes on its own clock
        showing_ended, timeout_s=10 * REFRESH_S, every_s=0.1, what=f"/api/state: {run_id} ended"
    )


async def test_state_and_metrics_show_runs_and_workers(
    dashboard: str, settings: Settings, client: Client
) -> None:
    """After a run, /api/state lists it (its total as chunksum's JSON has it: see
    app.exact.json_total, and its numbers) and the live worker, with throughput as
    [time, chunks/s, numbers/s]; /metrics counts runs by status and live workers."""
    async with running_worker(settings):
        result = await client.submit(range(100), chunks=4, timeout=30)
        state = await fresh_state(dashboard, result.run_id)
        (run,) = state["runs"]
        assert (run["total"], run["done_chunks"], run["chunks"]) == (4950, 4, 4)
        assert (run["done_numbers"], state["runs_total"]) == (100, 1)
        assert len(state["workers"]) == 1
        assert all(len(point) == 3 for point in state["throughput"])
        status, text, _ = await fetch(f"{dashboard}/metrics")
    assert status == 200
    assert 'chunksum_runs{status="done"} 1.0' in text
    assert "chunksum_live_workers 1.0" in text


async def test_cancel_needs_the_configured_token(
    dashboard: str, settings: Settings, client: Client
) -> None:
    """Without a cancel token the dashboard refuses to cancel; with one, only the right
    bearer token cancels a run."""
    submit = asyncio.create_task(client.submit(range(10), chunks=2, timeout=30))  # no worker
    runs = await eventually(lambda: client.recent_runs(1), timeout_s=10, what="the run")
    run_id = runs[0].run_id
    url = f"{dashboard}/api/runs/{run_id}/cancel"
    status, _, _ = await fetch(url, method="POST", token="wrong")
    if status == 403:  # read-only: nothing may cancel
        assert (await fetch(url, method="POST", token=TOKEN))[0] == 403
        assert (await client.status(run_id)).status == "queued"
        await client.cancel(run_id)
    else:
        assert status == 401
        status, body, _ = await fetch(url, method="POST", token=TOKEN)
        assert (status, json.loads(body)["status"]) == (200, "cancelled")
    with pytest.raises(RunFailedError, match="cancelled"):
        await submit


class TestAccessRules:
    def test_loopback_without_tokens_is_open(self) -> None:
        """On 127.0.0.1, ::1 or localhost, with no read token, anyone may view."""
        for host in ("127.0.0.1", "::1", "localhost"):
            access = Access.for_host(Settings(dashboard_token=TOKEN), host, public=False)
            assert not access.guarded
            assert access.cancel_token == TOKEN

    def test_beyond_loopback_without_a_token_refuses_to_start(self) -> None:
        """Bound to 0.0.0.0 (or a host name) with no token, it won't serve, unless public."""
        for host in ("0.0.0.0", "dashboard.internal"):
            with pytest.raises(SettingsError, match="CHUNKSUM_DASHBOARD_READ_TOKEN"):
                Access.for_host(Settings(), host, public=False)
        assert not Access.for_host(Settings(), "0.0.0.0", public=True).guarded

    def test_tokens_that_let_a_viewer_in(self) -> None:
        """Beyond loopback the read token and the cancel token both let a viewer in; a read
        token set guards loopback too; --public opens it regardless."""
        both = Settings(dashboard_token=TOKEN, dashboard_read_token=READ_TOKEN)
        assert Access.for_host(both, "0.0.0.0", public=False).view_tokens == (READ_TOKEN, TOKEN)
        cancel_only = Settings(dashboard_token=TOKEN)
        assert Access.for_host(cancel_only, "0.0.0.0", public=False).view_tokens == (TOKEN,)
        assert Access.for_host(both, "127.0.0.1", public=False).guarded
        assert not Access.for_host(both, "0.0.0.0", public=True).guarded

    def test_tokens_stay_out_of_repr(self) -> None:
        """Neither the settings' nor the access rules' repr shows a token."""
        settings = Settings(dashboard_token=TOKEN, dashboard_read_token=READ_TOKEN)
        access = Access.for_host(settings, "0.0.0.0", public=False)
        for text in (repr(settings), repr(access)):
            assert TOKEN not in text
            assert READ_TOKEN not in text

    def test_read_token_comes_from_the_environment(self) -> None:
        """CHUNKSUM_DASHBOARD_READ_TOKEN sets the read token; empty leaves none."""
        env = {"CHUNKSUM_DASHBOARD_READ_TOKEN": READ_TOKEN}
        assert Settings.from_env(env=env).dashboard_read_token == READ_TOKEN
        empty = {"CHUNKSUM_DASHBOARD_READ_TOKEN": ""}
        assert Settings.from_env(env=empty).dashboard_read_token is None


GUARDED_PATHS = [
    "/",
    "/api/state",
    "/events",
    "/api/runs",
    "/api/runs/{run_id}",
    "/api/runs/{run_id}/timeline",
    "/api/history",
    "/metrics",
    "/static/dashboard.js",
]


async def finished_run(client: Client) -> str:
    """Store a done run of one chunk with a span, by hand; return its id."""
    run_id = "run-with-secret-data"
    async with client.redis.pipeline(transaction=True) as pipe:
        client.runs.add_create(pipe, run_id, chunks=1, sender_lease_s=None)
        client.runs.add_seal(pipe, run_id, chunks=1, count=1)
        await pipe.execute()
    ran = Attempt(worker="secret-host:1:abc", started_s=1.0, job_try=1)
    await client.runs.record(run_id, 0, ExactSum.of(7, 0, 0), count=1, attempt=ran)
    await client.runs.finalise(run_id)
    return run_id


async def test_a_guarded_dashboard_shows_nothing_without_a_token(
    guarded: str, client: Client
) -> None:
    """Without a token, or with a wrong one, the page, the API, the event stream, /metrics
    and the page's files answer 401 and nothing of the runs; the read token opens each."""
    run_id = await finished_run(client)
    for path in (path.format(run_id=run_id) for path in GUARDED_PATHS):
        for token in (None, "wrong"):
            status, body, headers = await fetch(guarded + path, token=token)
            assert status == 401, path
            assert run_id not in body
            assert "secret-host" not in body
            assert headers["www-authenticate"].startswith("Bearer")
        status, _, _ = await fetch(guarded + path, token=READ_TOKEN, first_line_only=True)
        assert status == 200, path


async def test_the_sign_in_form_sets_a_cookie_for_the_page(guarded: str, client: Client) -> None:
    """The page's sign-in form takes the read token and sets a cookie (not the token itself)
    that lets the browser view; a wrong token gets 401 and no cookie."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, headers = await fetch(
        f"{guarded}/sign-in", method="POST", headers=form, body=b"token=wrong"
    )
    assert (status, "set-cookie" in headers) == (401, False)
    status, _, headers = await fetch(
        f"{guarded}/sign-in", method="POST", headers=form, body=f"token={READ_TOKEN}".encode()
    )
    assert (status, headers["location"]) == (303, "/")
    cookie = headers["set-cookie"].split(";")[0]
    assert cookie.startswith(f"{COOKIE}=")
    assert READ_TOKEN not in cookie
    assert "httponly" in headers["set-cookie"].lower()
    assert (await fetch(f"{guarded}/api/state", headers={"Cookie": cookie}))[0] == 200
    assert (await fetch(f"{guarded}/api/state", headers={"Cookie": f"{COOKIE}=forged"}))[0] == 401
    big = b"token=" + b"x" * MAX_SIGN_IN_BYTES
    status, _, headers = await fetch(f"{guarded}/sign-in", method="POST", headers=form, body=big)
    assert (status, "set-cookie" in headers) == (413, False)


async def test_the_read_token_does_not_cancel(guarded: str, client: Client) -> None:
    """Cancelling needs the cancel token as a bearer token: the read token, or the viewing
    cookie, gets 401 and the run carries on."""
    async with client.redis.pipeline(transaction=True) as pipe:
        client.runs.add_create(pipe, "r1", chunks=1, sender_lease_s=None)
        await pipe.execute()
    url = f"{guarded}/api/runs/r1/cancel"
    assert (await fetch(url, method="POST", token=READ_TOKEN))[0] == 401
    assert (await client.runs.read("r1")).status == "queued"
    status, body, _ = await fetch(url, method="POST", token=TOKEN)
    assert (status, json.loads(body)["status"]) == (200, "cancelled")


async def test_metrics_can_be_open_alone(settings: Settings, client: Client) -> None:
    """With --public-metrics, /metrics answers without a token; the rest still needs one."""
    access = Access(view_tokens=(READ_TOKEN,), open_metrics=True)
    async with served(settings, access) as url:
        assert (await fetch(f"{url}/metrics"))[0] == 200
        assert (await fetch(f"{url}/api/state"))[0] == 401


async def test_timeline_endpoint_serves_a_runs_spans(
    dashboard: str, settings: Settings, client: Client
) -> None:
    """GET /api/runs/RUN_ID/timeline lists each chunk's span (chunk, worker, started,
    finished, try, outcome), times in seconds since the epoch, on the worker that ran it."""
    async with running_worker(settings):
        result = await client.submit(range(100), chunks=4, timeout=30)
        (live,) = await client.workers()
    status, body, _ = await fetch(f"{dashboard}/api/runs/{result.run_id}/timeline")
    spans = json.loads(body)
    assert status == 200
    assert sorted(span["chunk"] for span in spans) == [0, 1, 2, 3]
    for span in spans:
        assert {"chunk", "worker", "started", "finished", "try", "outcome"} <= span.keys()
        assert (span["worker"], span["try"], span["outcome"]) == (live.worker_id, 1, "done")
        assert live.started_at - 1 < span["started"] <= span["finished"] < live.last_seen + 5
    status, body, _ = await fetch(f"{dashboard}/api/runs/no-such-run/timeline")
    assert (status, json.loads(body)) == (200, [])


async def test_runs_come_in_pages(dashboard: str, client: Client) -> None:
    """/api/runs?offset=N gives RUNS_SHOWN runs from the N+1th newest, and how many are
    retained; a bad offset gets 400, an unknown run 404."""
    total = 2 * RUNS_SHOWN + 20
    for index in range(total):  # one by one: each a later creation time
        async with client.redis.pipeline(transaction=True) as pipe:
            client.runs.add_create(pipe, f"run-{index:04}", chunks=1, sender_lease_s=None)
            await pipe.execute()
    status, body, _ = await fetch(f"{dashboard}/api/runs?offset={RUNS_SHOWN}")
    page = json.loads(body)
    assert (status, page["total"], page["offset"], page["limit"]) == (
        200,
        total,
        RUNS_SHOWN,
        RUNS_SHOWN,
    )
    newest_first = [f"run-{index:04}" for index in reversed(range(total))]
    assert [run["run_id"] for run in page["runs"]] == newest_first[RUNS_SHOWN : 2 * RUNS_SHOWN]
    assert (await fetch(f"{dashboard}/api/runs?offset=-1"))[0] == 400
    assert (await fetch(f"{dashboard}/api/runs/no-such-run"))[0] == 404
    status, body, _ = await fetch(f"{dashboard}/api/runs/run-0007")
    assert (status, json.loads(body)["status"]) == (200, "queued")


class TestHistory:
    def test_lists_ended_runs_oldest_first_and_errors_newest_first(self) -> None:
        """The run-history columns hold ended runs only, oldest first (duration, numbers);
        the errors, the failed and cancelled runs with their failing chunk and worker."""

        def run(run_id: str, status: Status, created: float, **fields: Any) -> RunStatus:
            finished = None if status.active else created + 2.5
            base = dict(total=None, count=None, chunks=4, done_chunks=4, started_at=None)
            return RunStatus(
                run_id, status, **{**base, **fields}, created_at=created, finished_at=finished
            )

        runs = [  # newest first, as RunStore.recent returns them
            run("c", Status.FAILED, 30.0, error="boom", failed_chunk=3, failed_worker="w1"),
            run("r", Status.RUNNING, 25.0, error=None),
            run("b", Status.CANCELLED, 20.0, error="cancelled", retried_chunks=2),
            run("a", Status.DONE, 10.0, error=None, count=100),
        ]
        found = history(runs)
        assert (found["created"], found["seconds"]) == ([10.0, 20.0, 30.0], [2.5, 2.5, 2.5])
        assert (found["numbers"], found["status"]) == ([100, 0, 0], ["done", "cancelled", "failed"])
        assert [e["run_id"] for e in found["errors"]] == ["c", "b"]
        assert found["errors"][0] | {"finished_at": None} == {
            "run_id": "c",
            "status": "failed",
            "finished_at": None,
            "error": "boom",
            "failed_chunk": 3,
            "failed_worker": "w1",
            "retried_chunks": 0,
        }
        assert (found["errors"][1]["retried_chunks"], found["errors_total"]) == (2, 2)

    async def test_endpoint_serves_the_history_read_at_start(
        self, settings: Settings, client: Client
    ) -> None:
        """/api/history holds the runs retained as the dashboard started, failed ones among
        its errors."""
        run_id = await finished_run(client)
        store = RunStore.for_settings(client.redis, settings)
        async with client.redis.pipeline(transaction=True) as pipe:
            store.add_create(pipe, "failing", chunks=1, sender_lease_s=None)
            await pipe.execute()
        await store.fail_chunk("failing", 0, "chunk 0 failed: boom")
        async with served(settings, Access()) as url:
            found = await eventually(
                lambda: _history_ready(url), timeout_s=10, what="/api/history to be read"
            )
        assert len(found["created"]) == 2
        assert [(e["run_id"], e["error"]) for e in found["errors"]] == [
            ("failing", "chunk 0 failed: boom")
        ]
        assert run_id not in [e["run_id"] for e in found["errors"]]


async def _history_ready(url: str) -> dict[str, Any] | None:
    found: dict[str, Any] = json.loads((await fetch(f"{url}/api/history"))[1])
    return found if found["ready"] else None
