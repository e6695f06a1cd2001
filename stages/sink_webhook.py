"""`sink.webhook`: one HTTP POST (httpx) per event of the event model, retried with backoff.

The body is the event's JSON (`stages.event_model`); the event id goes in an idempotency-key
header (the same on every retry, so a receiver can ignore repeats) and, with `secret_file`, an
HMAC-SHA256 of the body in a signature header (`sha256=<hex>`). 5xx answers, 408/429, timeouts
and connection errors are retried with growing delays; other 4xx answers are not. Posts wait in
a bounded outbox (`stages.event_outbox`), so a slow receiver never stalls the pipeline.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field

from pipeline.errors import ConfigError
from pipeline.frame import Frame
from pipeline.stage import Options, Stage, StageContext, register
from stages.event_model import out_event_records
from stages.event_outbox import Outbox, backoff_delay
from stages.secret_file import read_secret

_RETRY_STATUS = {408, 425, 429}


class WebhookSinkOptions(Options):
    """Options of `sink.webhook`. The secret is read from a file and never logged."""

    url: str = Field(..., pattern=r"^https?://", description="where to POST each event (http or https)")
    headers: dict[str, str] = Field({}, description="extra request headers")
    types: list[str] | None = Field(None, description="post only events of these types (default: all)")
    timeout_s: float = Field(5.0, gt=0, description="seconds to wait for each answer")
    max_retries: int = Field(5, ge=0, description="retries of one event before it counts as failed")
    retry_base_s: float = Field(0.5, gt=0, description="first retry delay in s (doubles each time)")
    retry_max_s: float = Field(30.0, gt=0, description="longest retry delay in s")
    secret_file: str | None = Field(None, description="file holding the HMAC key (first line)")
    signature_header: str = Field("X-Vigil-Signature", description="header of the HMAC-SHA256 signature")
    idempotency_header: str = Field("Idempotency-Key", description="header carrying the event id")
    queue_size: int = Field(1000, ge=1, description="events the outbox holds before it drops")
    close_timeout_s: float = Field(
        10.0, ge=0, description="at the end, wait this long to send what is queued"
    )


def signature(key: bytes, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of body>`, as GitHub-style receivers check it."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def should_retry(status: int) -> bool:
    """Whether an HTTP status is worth another try (server errors, timeouts, rate limits)."""
    return status >= 500 or status in _RETRY_STATUS


@dataclass(frozen=True)
class _Post:
    id: str
    body: bytes


@register("sink.webhook")
class WebhookSink(Stage[WebhookSinkOptions]):
    """POST each event to a URL (see the module doc). Frames pass through unchanged.

    Summary (and `vigil_event_messages` in served metrics): delivery = queued, sent, dropped
    (outbox full or left at the end), failed (refused or out of retries), retries.
    """

    stateful = True

    def __init__(self, options: WebhookSinkOptions, context: StageContext) -> None:
        super().__init__(options, context)
        self._client: Any = None
        self._outbox: Outbox[_Post] | None = None
        self._key: bytes | None = None
        self.retries = 0

    def setup(self) -> None:
        if self._client is not None:
            return
        try:
            import httpx
        except ImportError:
            raise ConfigError("sink.webhook needs httpx: pip install 'vigil-analytics[events]'") from None
        o = self.options
        if o.secret_file is not None:
            self._key = read_secret(o.secret_file, "sink.webhook secret_file").encode()
        self._client = httpx.Client(timeout=o.timeout_s, headers=o.headers)
        target = urlsplit(o.url)
        where = f"{target.scheme}://{target.hostname}:{target.port or ''}"  # no path: it may hold a token
        self._outbox = Outbox(f"{self.id} (webhook {where})", self._deliver, o.queue_size)
        self.log.info("posting events to %s", where)

    def _headers(self, post: _Post) -> dict[str, str]:
        headers = {"Content-Type": "application/json", self.options.idempotency_header: post.id}
        if self._key is not None:
            headers[self.options.signature_header] = signature(self._key, post.body)
        return headers

    def _deliver(self, post: _Post, stopping: threading.Event) -> bool:
        """In the outbox thread: POST until a 2xx, a final refusal or the retries run out."""
        import httpx

        o = self.options
        for attempt in range(o.max_retries + 1):
            if attempt:
                self.retries += 1
                if stopping.wait(backoff_delay(attempt - 1, o.retry_base_s, o.retry_max_s, jitter=0.1)):
                    return False
            try:
                answer = self._client.post(o.url, content=post.body, headers=self._headers(post))
            except httpx.TransportError as exc:  # timeouts, refused or reset connections
                self.log.debug("webhook %s: %s", post.id, type(exc).__name__)
                continue
            if answer.is_success:
                return True
            if not should_retry(answer.status_code):
                self.log.warning("webhook refused event %s: HTTP %d", post.id, answer.status_code)
                return False
        self.log.warning("webhook gave up on event %s after %d tries", post.id, o.max_retries + 1)
        return False

    def process(self, frame: Frame) -> Frame:
        if self._outbox is None:
            self.setup()
        assert self._outbox is not None
        for record in out_event_records(frame, self.options.types):
            self._outbox.put(_Post(record["id"], json.dumps(record).encode()))
        self.context.report["delivery"] = self._report()
        return frame

    def _report(self) -> dict[str, Any]:
        stats = self._outbox.stats.as_dict() if self._outbox else {}
        return {**stats, "retries": self.retries}

    def close(self) -> None:
        if self._outbox is not None:
            self._outbox.close(self.options.close_timeout_s)
            self.context.report["delivery"] = self._report()
        if self._client is not None:
            self._client.close()
        self._client = None
        self._outbox = None
