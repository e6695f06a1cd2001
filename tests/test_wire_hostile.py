"""Links trust nothing they receive: malformed, mutated and forged messages are dropped and
counted, never fatal; a tcp run under such traffic still delivers every frame of its source."""

from __future__ import annotations

import json
import random
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from pipeline import Pipeline
from pipeline.frame import Detections, Event, Frame, SourceInfo
from pipeline.transport import link_token
from pipeline.wire import Envelope, InvalidMessage, StreamEnd, StreamStart, decode, encode

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "samples" / "faces_female_and_male.mp4"  # 56 frames


def _frame(source: str = "fuzz") -> Frame:
    det = Detections.create(
        [[1, 2, 30, 40], [5, 6, 7, 8]], [0.9, 0.4], [0, 2], ["face", "person"], [7, -1], {"age": [31.5, 12.0]}
    )
    image = np.arange(12 * 16 * 3, dtype=np.uint8).reshape(12, 16, 3)
    return Frame(source, 3, 0.1, 1.0, image, det, (Event("line_cross", "count", 7, {}),), index=3)


def _mutations(rng: random.Random, parts: list[bytes], n: int) -> list[list[bytes]]:
    """Byte flips, truncations, dropped/duplicated/extra buffers, header edits."""
    out = []
    for _ in range(n):
        msg = [bytes(p) for p in parts]
        what = rng.randrange(6)
        i = rng.randrange(len(msg))
        if what == 0 and msg[i]:  # flip bytes
            b = bytearray(msg[i])
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            msg[i] = bytes(b)
        elif what == 1:  # truncate a part
            msg[i] = msg[i][: rng.randrange(len(msg[i]) + 1)]
        elif what == 2 and len(msg) > 1:  # drop a buffer
            del msg[rng.randrange(1, len(msg))]
        elif what == 3:  # an extra or duplicated buffer
            msg.insert(rng.randrange(1, len(msg) + 1), rng.randbytes(rng.randrange(64)))
        elif what == 4:  # a header field replaced by something of another type
            head = json.loads(msg[0])
            key = rng.choice(sorted(head))
            head[key] = rng.choice([None, "x", -1, 1e300, [], {}, [[["O", [1]]]], True])
            msg[0] = json.dumps(head).encode()
        else:  # an array described with another dtype or shape
            head = json.loads(msg[0])
            if head.get("t") == "f" and head["det"]["arr"]:
                col = rng.choice(head["det"]["arr"])
                col[1] = rng.choice(["|O", "<U4", "<f8", "|V8", "<i8"])
                col[2] = rng.choice([[2, 4], [1000000], [-1], [2, 2]])
            msg[0] = json.dumps(head).encode()
        out.append(msg)
    return out


def test_decode_gives_a_message_or_invalid_message_never_anything_else() -> None:
    rng = random.Random(11)
    bases = [
        encode(_frame(), token="t0k"),
        encode(StreamStart(SourceInfo("fuzz", "u", "file", 25.0, 16, 12, 10)), token="t0k"),
        encode(StreamEnd("fuzz"), token="t0k"),
    ]
    outcomes = {"ok": 0, "invalid": 0}
    for base in bases:
        for msg in _mutations(rng, [bytes(memoryview(p)) for p in base], 700):
            try:
                env = decode(msg, "t0k")
            except InvalidMessage:
                outcomes["invalid"] += 1
                continue
            assert isinstance(env, Envelope)
            outcomes["ok"] += 1
    assert outcomes["invalid"] > 1000 and outcomes["ok"] > 0, outcomes


@pytest.mark.parametrize(
    "parts",
    [
        [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"],
        [b'{"t": "f", "rt": ""}'],
        [b'{"t": "end", "src": "cam0"}', b"extra"],
        [b"\xff\xfe not json"],
        [b"[1, 2, 3]"],
    ],
)
def test_malformed_messages_are_invalid(parts: list[bytes]) -> None:
    with pytest.raises(InvalidMessage):
        decode(parts)


def test_object_dtype_and_wrong_sizes_are_refused() -> None:
    parts = [bytes(memoryview(p)) for p in encode(_frame())]
    head = json.loads(parts[0])
    head["img"][0] = ["|O", [12, 16, 3]]
    with pytest.raises(InvalidMessage, match="refused"):
        decode([json.dumps(head).encode(), *parts[1:]])
    with pytest.raises(InvalidMessage, match="bytes where"):
        decode([parts[0], parts[1][:-1], *parts[2:]])
    with pytest.raises(InvalidMessage, match="more buffers"):
        decode([*parts, b"x"])


def test_a_forged_end_of_stream_without_the_run_token_is_refused() -> None:
    assert decode(encode(StreamEnd("cam0"), token=link_token()), link_token()).message == StreamEnd("cam0")
    with pytest.raises(InvalidMessage, match="outside this run"):
        decode(encode(StreamEnd("cam0")), link_token())
    with pytest.raises(InvalidMessage, match="outside this run"):
        decode(encode(StreamEnd("cam0"), token="guess"), link_token())


def _attack(address: str, rng: random.Random) -> int:
    """Stray bytes, malformed and forged messages into a live link; returns the ZeroMQ messages sent."""
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=2) as raw:  # not even ZeroMQ
        raw.sendall(b"GET / HTTP/1.1\r\nHost: vigil\r\n\r\n")
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 2000)
    push.connect(address)
    sent = 0
    forged = [
        [b"not json"],
        [b'{"t":"f","src":"cam0"}'],
        [json.dumps({"t": "end", "src": "cam0", "reason": "eos"}).encode()],  # forged end, no token
        [json.dumps({"t": "ctl", "type": "stop", "data": {}, "rt": "guess"}).encode()],  # forged stop
    ]
    base = [bytes(memoryview(p)) for p in encode(_frame(), token="not-the-token")]
    for msg in forged + _mutations(rng, base, 200):
        push.send_multipart(msg)
        sent += 1
    push.close()
    return sent


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["lossless", "latest"])
def test_a_tcp_run_under_attack_delivers_every_frame(tmp_path: Path, policy: str) -> None:
    pipe: dict[str, Any] = {
        "version": 1,
        "sources": [{"id": "cam0", "uri": str(CLIP), "realtime": True}],  # ~2 s: time to attack
        "stages": [
            {"id": "faces", "kind": "detect.haar"},
            {"id": "results", "kind": "sink.jsonl", "with": {"path": "results.jsonl"}},
        ],
        "links": {"transport": "tcp", "policy": policy, "capacity": 64},
    }
    run = Pipeline.from_dict(pipe, output_dir=tmp_path)
    run.start()
    deadline = time.monotonic() + 30
    while not (addresses := run.runner.addresses()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    rng = random.Random(5)
    sent = sum(_attack(address, rng) for address in addresses.values())
    run.run()
    summary = run.summary
    assert summary["status"] == "completed", summary["error"]
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    seqs = [r["seq"] for r in records if r["source"] == "cam0"]
    if policy == "lossless":
        assert seqs == list(range(56))
    else:  # latest may drop frames when behind, but never invents or repeats them, and the run ends
        assert seqs == sorted(set(seqs)) and seqs[-1] == 55
    assert {r["source"] for r in records} == {"cam0"}
    invalid = sum(stage["invalid"] for stage in summary["stages"].values())
    assert invalid == sent
