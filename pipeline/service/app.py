"""The HTTP API and web page of `vigil serve` (Starlette routes over a running `Runner`).

Nothing here is on the frame path: routes read `Runner.status()` snapshots and the newest
frame of a source; blocking calls (opening a stream, waiting for a removed source to flush,
JPEG encoding) run in worker threads so the event loop keeps answering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import anyio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from pipeline.config import SourceConfig, source_from_dict
from pipeline.errors import ConfigError, SourceError, VigilError
from pipeline.runner import Runner
from pipeline.service.auth import TokenAuth
from pipeline.service.files import file_endpoint
from pipeline.service.metrics import build_registry
from pipeline.service.state import EventBuffer, FrameStore, ResultTap
from pipeline.status import SourceStatus

API_FIELDS = (
    "id",
    "uri",
    "state",
    "fps",
    "frames",
    "drops",
    "last_frame_age_s",
    "reconnects",
    "kind",
    "error",
)
NO_CACHE = {"Cache-Control": "no-store"}


@dataclass
class Service:
    """A running pipeline and what the service keeps beside it."""

    runner: Runner
    tap: ResultTap = field(default_factory=lambda: ResultTap(FrameStore(), EventBuffer()))
    live_fps: float = 10.0  # cap of each MJPEG live view
    closing: bool = False  # set on shutdown: live views end so the server can stop


def create_app(service: Service, token: str | None = None) -> Starlette:
    """The ASGI app; `token` protects every route but /healthz."""
    api = _Api(service)
    routes = [
        Route("/", api.index),
        Route("/healthz", api.healthz),
        Route("/api/streams", api.list_streams, methods=["GET"]),
        Route("/api/streams", api.add_stream, methods=["POST"]),
        Route("/api/streams/{id}", api.remove_stream, methods=["DELETE"]),
        Route("/api/streams/{id}/snapshot.jpg", api.snapshot),
        Route("/api/streams/{id}/live", api.live),
        Route("/api/events", api.list_events),
        Route("/metrics", api.metrics),
        Route(
            "/files/{path:path}", file_endpoint(lambda: service.runner.output_dir)
        ),  # event snapshots, clips
    ]
    app = Starlette(routes=routes)
    if token is not None:
        app.add_middleware(TokenAuth, token=token)
    return app


class _Api:
    """The route handlers, over one service."""

    def __init__(self, service: Service) -> None:
        self.service, self.runner = service, service.runner
        self.frames, self.events = service.tap.frames, service.tap.events
        self.registry, self.latency = build_registry(service.runner.status)
        service.tap.observers.append(self.latency)

    async def index(self, _: Request) -> Response:
        page = resources.files("pipeline.service").joinpath("static/index.html").read_text(encoding="utf-8")
        return HTMLResponse(page, headers=NO_CACHE)

    async def healthz(self, _: Request) -> Response:
        problems = self.runner.status().problems()
        if problems:
            return JSONResponse({"status": "unhealthy", "reasons": problems}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def list_streams(self, _: Request) -> Response:
        return JSONResponse([_api_row(s) for s in self.runner.status().sources], headers=NO_CACHE)

    async def add_stream(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(422, "the body must be JSON: {id, uri, every?, resize?, realtime?, loop?}")
        cfg = _source_config(body)
        if isinstance(cfg, str):
            return _error(422, cfg)
        try:
            await anyio.to_thread.run_sync(self.runner.add_source, cfg)
        except ConfigError as exc:
            return _error(409 if "in use" in str(exc) else 503, str(exc))
        except SourceError as exc:
            return _error(422, str(exc))
        row = next((_api_row(s) for s in self.runner.status().sources if s.id == cfg.id), {"id": cfg.id})
        return JSONResponse(row, status_code=201)

    async def remove_stream(self, request: Request) -> Response:
        sid = request.path_params["id"]
        try:
            end = await anyio.to_thread.run_sync(self.runner.remove_source, sid)
        except ConfigError as exc:
            return _error(404, str(exc))
        except VigilError as exc:
            return _error(500, str(exc))
        return JSONResponse({"id": sid, "end": end})

    async def snapshot(self, request: Request) -> Response:
        got = await anyio.to_thread.run_sync(self.frames.jpeg, request.path_params["id"])
        if got is None:
            return _error(404, f"no frame from {request.path_params['id']!r} yet")
        return Response(got[1], media_type="image/jpeg", headers={**NO_CACHE, "X-Frame-Seq": str(got[0])})

    async def live(self, request: Request) -> Response:
        sid = request.path_params["id"]
        if sid not in self.runner.source_ids():
            return _error(404, f"no running source {sid!r}")
        try:
            fps = min(float(request.query_params.get("fps", self.service.live_fps)), self.service.live_fps)
        except ValueError:
            return _error(422, "fps: must be a number")
        return StreamingResponse(
            _mjpeg(self.service, sid, 1.0 / max(fps, 0.1)),
            media_type="multipart/x-mixed-replace; boundary=frame",
            headers=NO_CACHE,
        )

    async def list_events(self, request: Request) -> Response:
        try:
            since = int(request.query_params.get("since", 0))
        except ValueError:
            return _error(422, "since: must be an integer")
        return JSONResponse({"last": self.events.last, "events": self.events.since(since)}, headers=NO_CACHE)

    async def metrics(self, _: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def _api_row(status: SourceStatus) -> dict[str, Any]:
    return {k: v for k, v in status.to_dict().items() if k in API_FIELDS}


async def _mjpeg(service: Service, sid: str, period: float) -> Any:
    """Newest frames of `sid` as multipart parts, at most one per `period`; a frame already
    sent is never sent again, and a slow client simply gets fewer frames."""
    frames, last = service.tap.frames, None
    while not service.closing:
        seq = frames.seq(sid)
        if seq is not None and seq != last:
            got = await anyio.to_thread.run_sync(frames.jpeg, sid)
            if got is not None:
                last, data = got
                head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(data)
                yield head + data + b"\r\n"
        elif sid not in service.runner.source_ids():
            return  # the source ended and its last frame was sent
        await anyio.sleep(period)


def _source_config(body: Any) -> SourceConfig | str:
    """A validated source, or its problems in the pipeline file's one-line messages."""
    if (
        isinstance(body, dict) and "id" not in body
    ):  # a file's lone source may default to cam0; an API call may not
        return "id: is required"
    try:
        return source_from_dict(body)
    except ConfigError as exc:
        return str(exc)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
