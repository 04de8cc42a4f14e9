"""`chunksum dashboard`: a live web page of runs, workers, queue depth and throughput.

A Starlette app, served by uvicorn, reading the same Redis state as `chunksum runs`,
`workers` and `health`. One background task refreshes a snapshot every ``REFRESH_S``; the
page receives each snapshot as a server-sent event, so any number of open pages cost Redis
one read per refresh. The page is plain HTML and JavaScript (``dashboard.html``), with no
build step. ``/metrics`` serves the cluster's figures for Prometheus.

Read-only unless a token is configured (``CHUNKSUM_DASHBOARD_TOKEN``): then the page offers
to cancel running runs, sending the token as a bearer token, and the endpoint checks it.
"""

import asyncio
import contextlib
import hmac
import itertools
import json
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import asdict
from importlib import resources
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.connection import LOST_REDIS
from app.errors import ChunksumError
from app.runs import Status
from app.settings import Settings
from app.submit import Client

REFRESH_S = 1.0
RUNS_SHOWN = 50
HISTORY = 300  # snapshots of throughput kept: five minutes at REFRESH_S


class Dashboard:
    """The latest snapshot of the cluster, refreshed in the background, and its history."""

    def __init__(self, settings: Settings, token: str | None) -> None:
        self.settings = settings
        self.token = token
        self.snapshot: dict[str, Any] = {"ready": False}
        self.history: deque[tuple[float, int]] = deque(maxlen=HISTORY)  # (time, chunks done)
        self.changed = asyncio.Condition()
        self.client = Client(settings)
        self.registry = CollectorRegistry()
        self._runs = Gauge(
            "chunksum_runs", "Runs retained, by status", ["status"], registry=self.registry
        )
        self._depth = Gauge(
            "chunksum_queue_depth", "Chunk jobs queued or running", registry=self.registry
        )
        self._workers = Gauge(
            "chunksum_live_workers", "Workers with a fresh heartbeat", registry=self.registry
        )

    async def refresh(self) -> None:
        """Read the cluster's state once and tell the open pages."""
        runs = await self.client.recent_runs(RUNS_SHOWN)
        workers = await self.client.workers()
        depth = await self.client.queue_depth()
        now = time.time()
        # chunks recorded, from the runs themselves (heartbeats lag by up to a beat)
        self.history.append((now, sum(run.done_chunks for run in runs)))
        self.snapshot = {
            "ready": True,
            "time": now,
            "queue_depth": depth,
            "runs": [run.to_json() for run in runs],
            "workers": [asdict(worker) for worker in workers],
            "throughput": _rates(self.history),
            "can_cancel": self.token is not None,
        }
        for status in Status:
            self._runs.labels(status).set(sum(run.status == status for run in runs))
        self._depth.set(depth)
        self._workers.set(len(workers))
        async with self.changed:
            self.changed.notify_all()

    async def run(self, stopping: asyncio.Event) -> None:
        """Refresh every REFRESH_S until ``stopping`` is set; ride out Redis outages."""
        while not stopping.is_set():
            with contextlib.suppress(*LOST_REDIS, ChunksumError):  # shown as stale meanwhile
                await self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), REFRESH_S)

    def authorised(self, request: Request) -> bool:
        """Tell whether a request carries the configured bearer token."""
        given = request.headers.get("authorization", "")
        expected = f"Bearer {self.token}"
        return self.token is not None and hmac.compare_digest(given.encode(), expected.encode())

    async def page(self, request: Request) -> HTMLResponse:
        """The page (dashboard.html)."""
        html = resources.files("app").joinpath("dashboard.html").read_text(encoding="utf-8")
        return HTMLResponse(html)

    async def state(self, request: Request) -> JSONResponse:
        """The latest snapshot, as JSON."""
        return JSONResponse(self.snapshot)

    async def events(self, request: Request) -> StreamingResponse:
        """Each new snapshot, as a server-sent event."""

        async def stream() -> AsyncIterator[str]:
            yield f"data: {json.dumps(self.snapshot)}\n\n"
            while True:
                async with self.changed:
                    await self.changed.wait()
                yield f"data: {json.dumps(self.snapshot)}\n\n"

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    async def cancel(self, request: Request) -> JSONResponse:
        """Cancel a run, if the dashboard has a token and the request carries it."""
        if self.token is None:
            error = "cancelling is off: start the dashboard with CHUNKSUM_DASHBOARD_TOKEN set"
            return JSONResponse({"error": error}, status_code=403)
        if not self.authorised(request):
            return JSONResponse({"error": "a valid bearer token is needed"}, status_code=401)
        run = await self.client.cancel(request.path_params["run_id"])
        await self.refresh()
        return JSONResponse(run.to_json())

    async def metrics(self, request: Request) -> Response:
        """The cluster's figures, for Prometheus."""
        return Response(generate_latest(self.registry), media_type="text/plain; version=0.0.4")


def create_app(settings: Settings, *, token: str | None = None) -> Starlette:
    """Return the dashboard's ASGI app for the deployment ``settings`` name."""
    board = Dashboard(settings, token)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with board.client:
            stopping = asyncio.Event()
            refresher = asyncio.create_task(board.run(stopping), name="chunksum-dashboard")
            try:
                yield
            finally:  # not cancelled mid-command: that would strand a Redis connection
                stopping.set()
                await refresher

    routes = [
        Route("/", board.page),
        Route("/api/state", board.state),
        Route("/events", board.events),
        Route("/api/runs/{run_id}/cancel", board.cancel, methods=["POST"]),
        Route("/metrics", board.metrics),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _rates(history: deque[tuple[float, int]]) -> list[list[float]]:
    """Return [time, chunks/s] between consecutive snapshots (0, not < 0, as old runs leave
    the window)."""
    return [
        [t1, max(done1 - done0, 0) / (t1 - t0)]
        for (t0, done0), (t1, done1) in itertools.pairwise(history)
        if t1 > t0
    ]


def serve(settings: Settings, *, host: str, port: int) -> None:
    """Serve the dashboard on ``host``:``port`` until interrupted (`chunksum dashboard`)."""
    import uvicorn  # imported here: the app alone (tests) needs no server

    mode = "cancelling allowed with the token" if settings.dashboard_token else "read-only"
    print(f"chunksum dashboard on http://{host}:{port}/ ({mode})", file=sys.stderr)
    app = create_app(settings, token=settings.dashboard_token)
    uvicorn.run(app, host=host, port=port, log_level="warning")
