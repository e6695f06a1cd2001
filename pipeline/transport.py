"""ZeroMQ links between stages: PUSH/PULL, multipart, zero-copy.

Two policies:
- `lossless`: bounded queue (high-water marks), the sender blocks when it is full
  (backpressure), every message arrives, in order.
- `latest`: the sender never blocks (a full queue drops the frame), and the receiver drains
  everything waiting and keeps only the newest frame *per source* (so one busy camera does
  not starve the others). Drops are counted. Stream start/end messages are never dropped.

PUB/SUB and CONFLATE would lose multipart parts, so `latest` is done here in the receiver.
Between threads (inproc) a message is not encoded at all: the sender parks it under a key,
the link carries the 8-byte key (so high-water marks, blocking and drops work as for any
link) and the receiver takes the message back (`wire.handoff`: read-only views, as decoded).
Each socket belongs to the thread that created it; every wait polls with a timeout so a stop
request is noticed within `POLL_MS`.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import struct
import tempfile
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Literal

import zmq

from pipeline.curve import CurveKeys
from pipeline.frame import Frame
from pipeline.wire import Envelope, InvalidMessage, Message, StreamEnd, decode, encode, handoff

Policy = Literal["lossless", "latest"]
Transport = Literal["inproc", "ipc", "tcp"]
POLL_MS = 100
log = logging.getLogger("vigil.transport")
# Messages without this process family's token are dropped: a tcp link may be reachable by
# other local processes, and a forged end-of-stream must not end a camera's stream.
_token = secrets.token_hex(16)
_curve: CurveKeys | None = None  # CURVE keys for tcp links (secure_tcp)
_counter = itertools.count()
# Messages in flight on inproc links, by receiver address then key (dict operations are atomic
# under the GIL). A receiver drops its address's entries when it closes: what was still queued.
_parked: dict[str, dict[int, Envelope]] = {}
_keys = itertools.count()
_KEY = struct.Struct("<q")


@dataclass
class LinkStats:
    """Counters of one link, shared by its sender(s) and receiver (read by the metrics)."""

    name: str
    sent: int = 0
    received: int = 0
    dropped: int = 0  # frames a `latest` link discarded (sender full + receiver replaced)
    invalid: int = 0  # messages refused by the receiver: malformed, forged, or from outside the run
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, attr: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, attr, getattr(self, attr) + n)

    @property
    def depth(self) -> int:
        """Messages sent and not yet taken by the receiver (approximate across threads)."""
        return max(0, self.sent - self.received)


def link_token() -> str:
    """The token every message of this process family carries (handed to worker processes)."""
    return _token


def use_link_token(token: str) -> None:
    """Adopt the parent's token (in a spawned worker process, before any link is used)."""
    global _token
    _token = token


class Stopped(Exception):
    """A blocking send or receive gave up because the run is stopping."""


def endpoint(transport: Transport, name: str, host: str = "127.0.0.1", run_dir: str | None = None) -> str:
    """An address to bind. tcp gets a random port at bind time (see `LinkReceiver.address`)."""
    unique = f"{name}-{os.getpid()}-{next(_counter)}"
    if transport == "inproc":
        return f"inproc://vigil-{unique}"
    if transport == "ipc":
        folder = run_dir or tempfile.gettempdir()  # names are unique per process and link
        return f"ipc://{os.path.join(folder, unique)}.sock"
    if transport == "tcp":
        return f"tcp://{host}"
    raise ValueError(f"unknown transport {transport!r}")


def secure_tcp(keys: CurveKeys | None) -> None:
    """Use CURVE (these keys) on every tcp link this process opens from now on; None: plain tcp."""
    global _curve
    _curve = keys


def _attach(sock: zmq.Socket, address: str, bind: bool) -> str:
    """Bind or connect; a bare tcp://HOST binds a random port. Returns the usable address."""
    if _curve is not None and address.startswith("tcp://"):
        (_curve.serve if bind else _curve.connect)(sock)
    if not bind:
        sock.connect(address)
        return address
    if address.startswith("tcp://") and address.count(":") == 1:
        return f"{address}:{sock.bind_to_random_port(address)}"
    sock.bind(address)
    return address


def _link_socket(
    kind: int, address: str, capacity: int, ctx: zmq.Context | None, bind: bool, linger_ms: int
) -> tuple[zmq.Socket, str]:
    """One end of a link: a PULL (receiving) or PUSH socket holding at most `capacity` messages,
    bound or connected; returns it with its usable address."""
    sock = (ctx or context()).socket(kind)
    sock.setsockopt(zmq.RCVHWM if kind == zmq.PULL else zmq.SNDHWM, capacity)
    sock.setsockopt(zmq.LINGER, linger_ms)
    return sock, _attach(sock, address, bind)


def _in_process(address: str) -> bool:
    return address.startswith("inproc://")


def _unpark(parked: dict[int, Envelope], parts: list[bytes]) -> Envelope:
    """The message parked under the key an inproc link carried, as its receiver sees it."""
    env = (
        parked.pop(_KEY.unpack(parts[0])[0], None) if len(parts) == 1 and len(parts[0]) == _KEY.size else None
    )
    if env is None:
        raise InvalidMessage("a hand-off key with no message behind it")
    return Envelope(handoff(env.message), env.ticket, env.parts, env.origin)


def context() -> zmq.Context:
    """The process-wide ZeroMQ context (inproc links need one shared context)."""
    return zmq.Context.instance()


class LinkReceiver:
    """The receiving end of a link. Binds; any number of senders connect to `address`.

    With the `latest` policy a drain thread owns the socket and keeps only the newest frame
    of each source, so a slow stage always gets the freshest frame and the senders never
    find the queue full of stale ones.
    """

    def __init__(
        self,
        address: str,
        policy: Policy = "lossless",
        capacity: int = 4,
        stats: LinkStats | None = None,
        ctx: zmq.Context | None = None,
        bind: bool = True,
    ) -> None:
        self.policy, self.stats = policy, stats or LinkStats(address)
        self.sock, self.address = _link_socket(zmq.PULL, address, capacity, ctx, bind, linger_ms=0)
        # inproc: only this process can reach the link, so messages are handed over, not encoded
        self._parked = _parked.setdefault(self.address, {}) if _in_process(self.address) else None
        self._ready: deque[Envelope] = deque()
        self._newest: OrderedDict[str, Envelope] = OrderedDict()
        self._cond = threading.Condition()
        self._closing = False
        self._drainer: threading.Thread | None = None
        if policy == "latest":
            self._drainer = threading.Thread(
                target=self._drain, name=f"latest-{self.stats.name}", daemon=True
            )
            self._drainer.start()

    def _take(self, timeout_ms: int) -> Envelope | None:
        if not self.sock.poll(timeout_ms, zmq.POLLIN):
            return None
        try:
            if self._parked is not None:
                env = _unpark(self._parked, self.sock.recv_multipart())
            else:
                env = decode(self.sock.recv_multipart(copy=False), _token)
        except InvalidMessage as exc:  # never fatal: a stray peer or a bad frame must not stop a camera
            self.stats.add("invalid")
            if self.stats.invalid == 1 or self.stats.invalid % 1000 == 0:
                log.warning(
                    "link %s: dropped %d invalid message(s); latest: %s",
                    self.stats.name,
                    self.stats.invalid,
                    exc,
                )
            return None
        self.stats.add("received")
        return env

    def recv(self, timeout_ms: int = POLL_MS) -> Envelope | None:
        """The next message, or None when nothing came within the timeout."""
        if self._drainer is None:
            return self._take(timeout_ms)
        with self._cond:
            if not self._ready and not self._newest:
                self._cond.wait(timeout_ms / 1000)
            if self._ready:
                return self._ready.popleft()
            if self._newest:
                return self._newest.popitem(last=False)[1]  # oldest-waiting source first: fair
            return None

    def _drain(self) -> None:
        while not self._closing:
            env = self._take(POLL_MS)
            if env is None:
                continue
            with self._cond:
                self._keep(env)
                self._cond.notify()
        self.sock.close(linger=0)

    def _keep(self, env: Envelope) -> None:
        msg = env.message
        if isinstance(msg, Frame):
            if msg.source in self._newest:
                self.stats.add("dropped")
            self._newest[msg.source] = env
            return
        if isinstance(msg, StreamEnd) and msg.source in self._newest:
            self._ready.append(self._newest.pop(msg.source))  # its last frame goes before its end
        self._ready.append(env)

    def close(self) -> None:
        if self._drainer is not None:
            self._closing = True
            self._drainer.join(timeout=2)
        else:
            self.sock.close(linger=0)
        if self._parked is not None:
            self._parked.clear()  # what was still queued for this receiver
            _parked.pop(self.address, None)


class LinkSender:
    """The sending end of a link: connects to a receiver's address (or binds, for pool workers)."""

    def __init__(
        self,
        address: str,
        policy: Policy = "lossless",
        capacity: int = 4,
        stats: LinkStats | None = None,
        ctx: zmq.Context | None = None,
        bind: bool = False,
    ) -> None:
        self.policy, self.stats = policy, stats or LinkStats(address)
        self.sock, self.address = _link_socket(zmq.PUSH, address, capacity, ctx, bind, linger_ms=2000)
        # inproc: the receiver's dict, taken once; after it closes (and drops it), late sends park
        # here and are freed with this sender instead of outliving it in the module's map
        self._parked = _parked.setdefault(self.address, {}) if _in_process(self.address) else None

    def send(
        self,
        msg: Message,
        stop: threading.Event | None = None,
        ticket: int = -1,
        parts: int = 1,
        timeout_s: float | None = None,
        origin: int = -1,
    ) -> bool:
        """Send one message. Returns False when a `latest` link dropped the frame.

        A lossless send waits while the link is full; it raises `Stopped` when `stop` is set
        and `TimeoutError` after `timeout_s` (None: wait as long as the run lasts).
        """
        parked = self._parked
        if parked is None:
            return self._send(encode(msg, ticket, parts, origin, _token), msg, stop, timeout_s)
        key = next(_keys)
        parked[key] = Envelope(msg, ticket, parts, origin)
        try:
            sent = self._send([_KEY.pack(key)], msg, stop, timeout_s)
        except BaseException:
            parked.pop(key, None)  # stopped or timed out: nobody will take it
            raise
        if not sent:
            parked.pop(key, None)  # dropped by a `latest` link
        return sent

    def _send(
        self, data: list[Any], msg: Message, stop: threading.Event | None, timeout_s: float | None
    ) -> bool:
        droppable = self.policy == "latest" and isinstance(msg, Frame)
        copy = self._parked is not None  # one 8-byte key: copying it is cheaper than tracking it
        waited = 0.0
        while True:
            try:
                self.sock.send_multipart(data, flags=zmq.NOBLOCK, copy=copy)
                self.stats.add("sent")
                return True
            except zmq.Again:
                if droppable:
                    self.stats.add("dropped")
                    return False
            if stop is not None and stop.is_set():
                raise Stopped()
            self.sock.poll(POLL_MS, zmq.POLLOUT)
            waited += POLL_MS / 1000
            if timeout_s is not None and waited >= timeout_s:
                raise TimeoutError(f"link {self.stats.name}: receiver took nothing for {timeout_s:.0f}s")

    def close(self, linger_ms: int = 2000) -> None:
        self.sock.close(linger=linger_ms)
