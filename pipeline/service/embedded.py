"""The service started from Python (tests, benchmarks, notebooks): the runner in a background
thread instead of the main one, the HTTP server beside it, both stopped by `stop()`."""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

from pipeline.config import PipelineConfig
from pipeline.runner import Runner
from pipeline.service.app import Service, create_app
from pipeline.service.server import BackgroundServer, free_port
from pipeline.summary import RunResult


class EmbeddedService:
    """`with EmbeddedService(config, out) as svc: httpx.get(svc.url + "/api/streams")`."""

    def __init__(
        self,
        config: PipelineConfig,
        output_dir: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        token: str | None = None,
        live_fps: float = 10.0,
    ) -> None:
        self.service = Service(Runner(config, output_dir, quiet=True, keep_open=True), live_fps=live_fps)
        self.runner = self.service.runner
        self.runner.on_result = self.service.tap
        self.server = BackgroundServer(create_app(self.service, token), host, port or free_port(host))
        self.result: RunResult | None = None
        self._thread = threading.Thread(target=self._run, name="vigil-service-run", daemon=True)

    @property
    def url(self) -> str:
        return self.server.url

    def _run(self) -> None:
        self.result = self.runner.run()

    def start(self) -> EmbeddedService:
        self._thread.start()
        self.server.start()
        return self

    def stop(self) -> RunResult | None:
        """Drain the pipeline (sources end, sinks close), then stop the server."""
        self.runner.request_stop()
        self._thread.join(timeout=60)
        self.service.closing = True
        self.server.stop()
        return self.result

    def __enter__(self) -> EmbeddedService:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
