"""The service and event sinks: links to snapshots and clips (only those, only inside the output
folder), and the sinks' delivery counts in /metrics."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette")

import anyio  # noqa: E402
import httpx  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.routing import Route  # noqa: E402

from pipeline.service.files import file_endpoint, output_file  # noqa: E402


@pytest.fixture
def out(tmp_path):
    (tmp_path / "out/snapshots").mkdir(parents=True)
    (tmp_path / "out/clips").mkdir()
    (tmp_path / "out/snapshots/e1.jpg").write_bytes(b"\xff\xd8jpeg")
    (tmp_path / "out/clips/e1.mp4").write_bytes(b"mp4")
    (tmp_path / "out/results.jsonl").write_text("{}\n")
    (tmp_path / "secret.jpg").write_bytes(b"outside")
    (tmp_path / "out/snapshots/link.jpg").symlink_to(tmp_path / "secret.jpg")
    return tmp_path / "out"


def test_only_pictures_and_clips_inside_the_output_folder(out):
    assert output_file(out, "snapshots/e1.jpg") == (out / "snapshots/e1.jpg").resolve()
    assert output_file(out, "clips/e1.mp4") == (out / "clips/e1.mp4").resolve()
    for refused in (
        "results.jsonl",
        "../secret.jpg",
        "snapshots/link.jpg",
        "snapshots/none.jpg",
        "/etc/passwd",
    ):
        assert output_file(out, refused) is None, refused


def _get(app: Starlette, *urls: str) -> list[httpx.Response]:
    async def fetch() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://vigil"
        ) as client:
            return [await client.get(url) for url in urls]

    return anyio.run(fetch)


def test_the_route_serves_them_and_nothing_else(out):
    app = Starlette(routes=[Route("/files/{path:path}", file_endpoint(lambda: out))])
    jpeg, mp4, results, link, up = _get(
        app,
        "/files/snapshots/e1.jpg",
        "/files/clips/e1.mp4",
        "/files/results.jsonl",
        "/files/snapshots/link.jpg",
        "/files/%2e%2e/secret.jpg",
    )
    assert jpeg.status_code == 200 and jpeg.content == b"\xff\xd8jpeg"
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert mp4.headers["content-type"] == "video/mp4"
    assert results.status_code == link.status_code == up.status_code == 404


def test_event_sink_counts_are_served_as_metrics():
    from prometheus_client import CollectorRegistry, generate_latest

    from pipeline.service.metrics import RunCollector
    from pipeline.status import RunStatus, StageStatus

    mqtt = StageStatus("mqtt", "sink.mqtt", True, 10, 10, 0, 0, 0, 0, delivery=(("sent", 7), ("dropped", 3)))
    plain = StageStatus("draw", "render", True, 10, 10, 0, 0, 0, 0)
    registry = CollectorRegistry()
    registry.register(RunCollector(lambda: RunStatus(True, (), (mqtt, plain))))
    text = generate_latest(registry).decode()
    assert 'vigil_event_messages_total{outcome="sent",stage="mqtt"} 7.0' in text
    assert 'vigil_event_messages_total{outcome="dropped",stage="mqtt"} 3.0' in text
    assert 'stage="draw",outcome' not in text and 'outcome="sent",stage="draw"' not in text
