"""`chunksum dashboard`: a live web page of runs, their task streams, workers and throughput.

A Starlette app, served by uvicorn, reading the same Redis state as `chunksum runs`,
`workers` and `health` (app.dashboard_state keeps a snapshot of it, refreshed in the
background). The page is plain HTML and JavaScript (``dashboard.html``) with its charting
library vendored (``static/``: uPlot), so it needs no build step and no internet.

Endpoints: ``/`` the page; ``/events`` each new snapshot, as server-sent events;
``/api/state`` the latest snapshot; ``/api/runs?offset=N`` a page of runs, newest first;
``/api/runs/RUN_ID`` one run; ``/api/runs/RUN_ID/timeline`` its task stream (app.timeline);
``/api/history`` the retained runs' durations, numbers and errors; ``POST
/api/runs/RUN_ID/cancel`` (the cancel token as a bearer token); ``/metrics`` for Prometheus.
Who may see them is app.dashboard_access's.
"""

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from importlib import resources

from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.dashboard_access import METRICS_PATH, SIGN_IN_PATH, Access, RequireViewer
from app.dashboard_state import RUNS_SHOWN, DashboardState
from app.errors import RunNotFoundError
from app.settings import Settings
from app.submit import Client

STATIC = {  # the page's scripts and style sheet (static/), by name: their media types
    "dashboard.js": "text/javascript; charset=utf-8",
    "taskstream.js": "text/javascript; charset=utf-8",
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
}


class Dashboard:
    """The dashboard's request handlers, over one deployment's state."""

    def __init__(self, settings: Settings, access: Access) -> None:
        self.access = access
        self.client = Client(settings)
        self.state = DashboardState(self.client, can_cancel=access.cancel_token is not None)

    async def page(self, request: Request) -> HTMLResponse:
        """The page (dashboard.html)."""
        html = resources.files("app").joinpath("dashboard.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def static(self, request: Request) -> Response:
        """One of the page's files (static/): its scripts, and uPlot's script and style."""
        name = request.path_params["name"]
        if name not in STATIC:
            return JSONResponse({"error": f"no static file {name!r}"}, status_code=404)
        body = resources.files("app").joinpath("static", name).read_bytes()
        headers = {"Cache-Control": "no-cache"}
        return Response(body, media_type=STATIC[name], headers=headers)

    async def snapshot(self, request: Request) -> JSONResponse:
        """The latest snapshot, as JSON."""
        return JSONResponse(self.state.snapshot)

    async def events(self, request: Request) -> StreamingResponse:
        """Each new snapshot, as a server-sent event."""

        async def stream() -> AsyncIterator[str]:
            yield f"data: {json.dumps(self.state.snapshot)}\n\n"
            while True:
                async with self.state.changed:
                    await self.state.changed.wait()
                yield f"data: {json.dumps(self.state.snapshot)}\n\n"

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    async def runs(self, request: Request) -> JSONResponse:
        """A page of RUNS_SHOWN runs, newest first, from ``?offset=`` (default 0)."""
        offset = request.query_params.get("offset", "0")
        if not offset.isdigit():
            return JSONResponse({"error": f"offset {offset!r} is not a count"}, status_code=400)
        runs = await self.client.runs.recent(RUNS_SHOWN, offset=int(offset))
        total = await self.client.runs.count()
        page = {"runs": [run.to_json() for run in runs], "total": total, "offset": int(offset)}
        return JSONResponse({**page, "limit": RUNS_SHOWN})

    async def run(self, request: Request) -> JSONResponse:
        """One run, as `chunksum status --json` shows it."""
        try:
            run = await self.client.runs.read(request.path_params["run_id"])
        except RunNotFoundError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse(run.to_json())

    async def timeline(self, request: Request) -> JSONResponse:
        """A run's task stream: its chunks' spans, as the timeline kept them."""
        spans = await self.client.runs.timeline(request.path_params["run_id"])
        return JSONResponse([span.to_json() for span in spans])

    async def history(self, request: Request) -> JSONResponse:
        """The retained runs' durations, numbers and errors (refreshed every 10 s)."""
        return JSONResponse(self.state.history)

    async def cancel(self, request: Request) -> JSONResponse:
        """Cancel a run, if the dashboard has a cancel token and the request carries it."""
        if self.access.cancel_token is None:
            error = "cancelling is off: start the dashboard with CHUNKSUM_DASHBOARD_TOKEN set"
            return JSONResponse({"error": error}, status_code=403)
        if not self.access.may_cancel(request):
            error = "the cancel token (CHUNKSUM_DASHBOARD_TOKEN) is needed as a bearer token"
            return JSONResponse({"error": error}, status_code=401)
        run = await self.client.cancel(request.path_params["run_id"])
        await self.state.refresh()
        return JSONResponse(run.to_json())

    async def metrics(self, request: Request) -> Response:
        """The cluster's figures, for Prometheus."""
        body = generate_latest(self.state.registry)
        return Response(body, media_type="text/plain; version=0.0.4")


def create_app(settings: Settings, access: Access) -> Starlette:
    """Return the dashboard's ASGI app for the deployment ``settings`` name."""
    board = Dashboard(settings, access)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with board.client:
            stopping = asyncio.Event()
            refresher = asyncio.create_task(board.state.run(stopping), name="chunksum-dashboard")
            try:
                yield
            finally:  # not cancelled mid-command: that would strand a Redis connection
                stopping.set()
                await refresher

    routes = [
        Route("/", board.page),
        Route("/static/{name}", board.static),
        Route("/api/state", board.snapshot),
        Route("/events", board.events),
        Route("/api/runs", board.runs),
        Route("/api/runs/{run_id}", board.run),
        Route("/api/runs/{run_id}/timeline", board.timeline),
        Route("/api/history", board.history),
        Route("/api/runs/{run_id}/cancel", board.cancel, methods=["POST"]),
        Route(METRICS_PATH, board.metrics),
        Route(SIGN_IN_PATH, access.sign_in, methods=["POST"]),
    ]
    middleware = [Middleware(RequireViewer, access=access)]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


def serve(
    settings: Settings, *, host: str, port: int, public: bool = False, public_metrics: bool = False
) -> None:
    """Serve the dashboard on ``host``:``port`` until interrupted (`chunksum dashboard`);
    raise SettingsError if ``host`` is beyond loopback with no token to ask viewers for."""
    import uvicorn  # imported here: the app alone (tests) needs no server

    access = Access.for_host(settings, host, public=public, public_metrics=public_metrics)
    viewing = "viewing needs a token" if access.guarded else "anyone who reaches it may view"
    cancelling = "cancelling with the cancel token" if settings.dashboard_token else "read-only"
    print(f"chunksum dashboard on http://{host}:{port}/ ({viewing}; {cancelling})", file=sys.stderr)
    app = create_app(settings, access)
    # open pages' event streams never end by themselves: don't wait on them for ever to stop
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)
