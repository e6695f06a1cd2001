"""`sink.webhook` against a local HTTP server that fails first: every event arrives exactly once."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from event_frames import event, frame

from pipeline.stage import StageContext
from stages.sink_webhook import WebhookSink, WebhookSinkOptions, should_retry, signature


class _Receiver(BaseHTTPRequestHandler):
    """First try of each event: 500; second try of every third event: too slow (the client times
    out after the server took it); then 200. Keeps what it took once per idempotency key."""

    attempts: Counter[str]
    accepted: dict[str, list[tuple[bytes, str]]]
    lock: threading.Lock

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        key = self.headers["Idempotency-Key"]
        with self.lock:
            self.attempts[key] += 1
            attempt = self.attempts[key]
        if attempt == 1:
            self.send_response(500)
            self.end_headers()
            return
        with self.lock:
            self.accepted.setdefault(key, []).append((body, self.headers.get("X-Vigil-Signature", "")))
        if attempt == 2 and int(key.removeprefix("w")) % 3 == 0:
            time.sleep(0.6)  # longer than the client's timeout
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver():
    handler = type(
        "Receiver", (_Receiver,), {"attempts": Counter(), "accepted": {}, "lock": threading.Lock()}
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def test_retry_rules_and_signature():
    assert should_retry(500) and should_retry(503) and should_retry(429) and not should_retry(404)
    import hashlib
    import hmac

    assert signature(b"k", b"{}") == "sha256=" + hmac.new(b"k", b"{}", hashlib.sha256).hexdigest()
    assert signature(b"k", b"{}") != signature(b"other", b"{}")


def test_every_event_arrives_once_by_idempotency_key(receiver, tmp_path):
    server, handler = receiver
    secret = tmp_path / "key"
    secret.write_text("s3cret\n")
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    options = WebhookSinkOptions(
        url=url, timeout_s=0.3, retry_base_s=0.02, retry_max_s=0.1, secret_file=str(secret), max_retries=4
    )
    sink = WebhookSink(options, StageContext("hook", output_dir=tmp_path))
    sink.setup()
    ids = [f"w{i}" for i in range(12)]
    for i in range(0, 12, 2):
        sink.process(frame(i, events=(event(ids[i], i / 10), event(ids[i + 1], i / 10))))
    sink.close()
    report = sink.context.report["delivery"]
    assert report["sent"] == 12 and report["failed"] == 0 and report["dropped"] == 0
    assert report["retries"] >= 12 + 4  # one per 500, one more per timeout
    assert sorted(handler.accepted) == sorted(ids)
    for key, takes in handler.accepted.items():
        body, sig = takes[0]
        assert json.loads(body)["id"] == key
        assert sig == signature(b"s3cret", body)
        assert all(b == body for b, _ in takes)  # a retry sends the same body: the key makes it once
    # each event was refused once (500) and, every third one, timed out once more; a loaded machine
    # may time out more often, which only adds retries (the key still makes each event arrive once)
    slow = [k for k in ids if int(k[1:]) % 3 == 0]
    assert all(handler.attempts[k] >= 3 for k in slow) and all(handler.attempts[k] >= 2 for k in ids)


def test_a_refusal_is_not_retried(tmp_path):
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0),
        type(
            "Refuser",
            (BaseHTTPRequestHandler,),
            {
                "do_POST": lambda self: (self.send_response(403), self.end_headers()),
                "log_message": lambda self, *a: None,
            },
        ),
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        options = WebhookSinkOptions(url=f"http://127.0.0.1:{server.server_address[1]}/", retry_base_s=0.01)
        sink = WebhookSink(options, StageContext("hook", output_dir=tmp_path))
        sink.setup()
        sink.process(frame(0, events=(event("r1", 0.0),)))
        sink.close()
    finally:
        server.shutdown()
        server.server_close()
    assert sink.context.report["delivery"] == {
        "queued": 1,
        "sent": 0,
        "dropped": 0,
        "failed": 1,
        "retries": 0,
    }
