"""Links: lossless order under backpressure on every transport, latest-frame semantics, wire format."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from pipeline.frame import Detections, Event, Frame, SourceInfo
from pipeline.transport import LinkReceiver, LinkSender, LinkStats, Stopped, endpoint
from pipeline.wire import Control, StreamEnd, StreamStart, decode, encode


def _frame(seq: int, source: str = "cam", size: tuple[int, int] = (64, 48)) -> Frame:
    image = np.full((size[1], size[0], 3), seq % 256, np.uint8)
    return Frame(source, seq, seq / 25, time.time(), image)


def _pair(transport: str, policy: str, capacity: int, tmp_path):
    stats = LinkStats("t")
    rx = LinkReceiver(endpoint(transport, "t", run_dir=str(tmp_path)), policy, capacity, stats)
    tx = LinkSender(rx.address, policy, capacity, stats)
    return tx, rx, stats


@pytest.mark.parametrize("transport", ["inproc", "ipc", "tcp"])
def test_lossless_delivers_every_frame_in_order_to_a_slow_consumer(transport, tmp_path):
    tx, rx, stats = _pair(transport, "lossless", 2, tmp_path)
    n, got, stop = 60, [], threading.Event()

    def consume():
        while len(got) < n:
            env = rx.recv(1000)
            if env is not None:
                got.append(env.message.seq)
                time.sleep(0.005)  # slower than the producer: the producer must wait, not drop

    t = threading.Thread(target=consume)
    t.start()
    max_depth = 0
    for i in range(n):
        assert tx.send(_frame(i), stop)
        max_depth = max(max_depth, stats.depth)
    t.join(10)
    assert got == list(range(n))
    assert stats.dropped == 0
    if transport == "inproc":  # bounded by the high-water marks (ipc/tcp add kernel socket buffers)
        assert max_depth <= 2 * 2 + 1
    tx.close(0)
    rx.close()


def test_lossless_sender_blocks_when_full_and_stops_on_request(tmp_path):
    tx, rx, _ = _pair("inproc", "lossless", 1, tmp_path)
    stop = threading.Event()
    sent = 0
    threading.Timer(0.5, stop.set).start()
    with pytest.raises(Stopped):
        for i in range(100):
            tx.send(_frame(i), stop)
            sent += 1
    assert 1 <= sent <= 4  # nothing was taken: only the high-water marks' worth went out
    tx.close(0)
    rx.close()


def test_latest_keeps_only_the_newest_frame_and_counts_drops(tmp_path):
    tx, rx, stats = _pair("inproc", "latest", 4, tmp_path)
    for i in range(50):  # a 500 fps camera and a stage busy for the whole burst
        tx.send(_frame(i))
        time.sleep(0.002)
    time.sleep(0.05)
    env = rx.recv(500)
    assert env is not None and env.message.seq == 49
    assert rx.recv(50) is None
    assert stats.dropped == 49  # sender-side (queue full) plus receiver-side (replaced)
    tx.close(0)
    rx.close()


def test_latest_is_fair_between_sources_and_never_drops_stream_markers(tmp_path):
    tx, rx, stats = _pair("inproc", "latest", 64, tmp_path)
    info = SourceInfo("a", "x", "camera", 25, 64, 48, live=True)
    tx.send(StreamStart(info))
    for i in range(10):
        tx.send(_frame(i, "a"))
        tx.send(_frame(100 + i, "b"))
        time.sleep(0.002)
    tx.send(StreamEnd("a"))
    time.sleep(0.05)
    got = []
    while (env := rx.recv(50)) is not None:
        got.append(env.message)
    kinds = [type(m).__name__ if not isinstance(m, Frame) else f"{m.source}{m.seq}" for m in got]
    assert kinds[0] == "StreamStart"
    assert "a9" in kinds and "b109" in kinds  # newest of each source, neither starved
    assert kinds.index("a9") < kinds.index("StreamEnd")  # a's last frame goes before its end
    assert len([k for k in kinds if k[0] in "ab" and k[1:].isdigit()]) == 2
    assert stats.dropped == 18
    tx.close(0)
    rx.close()


def test_wire_round_trip_keeps_everything_and_gives_read_only_images():
    det = Detections.create(
        [[1, 2, 30, 40], [5, 6, 7, 8]],
        [0.9, 0.4],
        [0, 2],
        ["face", "person"],
        [7, -1],
        {"age": [31.5, 12.0], "emotion": ["happy", None], "probs": [{"happy": 0.9}, {}]},
    )
    frame = Frame(
        "door",
        12,
        0.48,
        1700000000.5,
        np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3),
        det,
        (Event("line_cross", "count", 7, {"direction": "in"}),),
        index=36,
        annotated=np.zeros((48, 64, 3), np.uint8),
        timings={"faces": 0.01},
        errors=("x",),
    )
    env = decode(encode(frame, ticket=5, parts=2, origin=3))
    out = env.message
    assert (env.ticket, env.parts, env.origin) == (5, 2, 3)
    assert (out.source, out.seq, out.pts, out.wall, out.index) == ("door", 12, 0.48, 1700000000.5, 36)
    assert np.array_equal(out.image, frame.image) and not out.image.flags.writeable
    assert np.array_equal(out.annotated, frame.annotated)
    assert out.detections.to_records() == det.to_records()
    assert list(out.detections.attributes) == ["age", "emotion", "probs"]  # JSONL keeps the stages' order
    assert out.events == frame.events and out.timings == {"faces": 0.01} and out.errors == ("x",)
    with pytest.raises(ValueError):
        out.image[0, 0, 0] = 1  # frames are immutable once sent
    for msg in (
        StreamStart(SourceInfo("a", "u", "file", 25.0, 10, 20, 100)),
        StreamEnd("a", "stopped"),
        Control("ready", {"wid": 2}),
    ):
        assert decode(encode(msg)).message == msg


def test_wire_without_annotation_and_malformed_headers():
    frame = Frame("cam", 0, 0.0, 0.0, np.zeros((2, 3, 3), np.uint8), Detections.create([[0, 0, 1, 1]]))
    parts = encode(frame)
    assert len(parts) == 1 + 1 + 4  # header, image, xyxy/score/class_id/track_id
    out = decode(parts).message
    assert out.annotated is None and out.detections.to_records() == frame.detections.to_records()
    header = json.loads(parts[0])
    with pytest.raises(ValueError, match="without an image"):
        decode([json.dumps({**header, "img": [None, None]}).encode(), *parts[2:]])
    with pytest.raises(ValueError, match="unknown message type"):
        decode([json.dumps({"t": "nope"}).encode()])


def test_inproc_images_arrive_without_a_copy(tmp_path):
    tx, rx, _ = _pair("inproc", "lossless", 2, tmp_path)
    frame = _frame(1, size=(1920, 1080))
    tx.send(frame)
    out = rx.recv(1000).message
    # zero-copy: the receiver's array is a view on the sender's memory
    assert out.image.__array_interface__["data"][0] == frame.image.__array_interface__["data"][0]
    tx.close(0)
    rx.close()


def test_inproc_hands_the_message_over_as_read_only_views(tmp_path):
    """Between threads a frame is not encoded: the receiver gets the sender's arrays as read-only
    views (what a decode gives), while the sender's own arrays stay writable."""
    tx, rx, stats = _pair("inproc", "lossless", 2, tmp_path)
    det = Detections.create([[1, 2, 3, 4]], [0.5], [0], ["face"], [3], {"age": [30.0], "emotion": ["happy"]})
    frame = Frame("cam", 4, 0.1, 0.0, np.zeros((8, 8, 3), np.uint8), det, timings={"a": 1.0})
    assert tx.send(frame, ticket=9, parts=2, origin=1)
    env = rx.recv(1000)
    out = env.message
    assert (env.ticket, env.parts, env.origin) == (9, 2, 1) and stats.received == 1
    assert out is not frame and out.detections.to_records() == det.to_records()
    arrays = [out.image, out.detections.xyxy, out.detections.label, *out.detections.attributes.values()]
    assert all(not a.flags.writeable for a in arrays)
    with pytest.raises(ValueError):
        out.detections.label[0] = "forged"
    frame.image[0, 0, 0] = 7  # still the sender's to write
    assert out.image[0, 0, 0] == 7  # ... and the same memory
    out.timings["b"] = 2.0  # type: ignore[index]
    assert frame.timings == {"a": 1.0}
    tx.close(0)
    rx.close()


def test_inproc_hand_off_leaves_nothing_behind(tmp_path):
    """Frames a latest link drops, a full link that times out, and what is still queued when the
    receiver closes are all released: the parked messages do not outlive the link."""
    from pipeline import transport

    tx, rx, stats = _pair("inproc", "latest", 1, tmp_path)
    for seq in range(20):
        tx.send(_frame(seq))
    time.sleep(0.2)
    got = []
    while (env := rx.recv(50)) is not None:
        got.append(env.message.seq)
    assert got and stats.dropped > 0 and len(got) + stats.dropped == 20
    assert transport._parked[rx.address] == {}  # the dropped ones were not left parked
    tx.close(0)
    rx.close()
    assert rx.address not in transport._parked

    tx, rx, _ = _pair("inproc", "lossless", 1, tmp_path)
    with pytest.raises(TimeoutError):
        for seq in range(10):
            tx.send(_frame(seq), timeout_s=0.2)
    queued = len(transport._parked[rx.address])
    assert 1 <= queued < 10  # only what the link holds
    rx.close()
    assert rx.address not in transport._parked
    tx.close(0)


@pytest.mark.parametrize("policy", ["lossless", "latest"])
def test_inproc_refuses_what_a_decode_refuses_and_keeps_going(tmp_path, policy):
    """A frame another transport would refuse (a float image, a string column) is counted as
    invalid on an inproc link too, and the link goes on: a bad frame must not stop a camera."""
    tx, rx, stats = _pair("inproc", policy, 4, tmp_path)
    bad_image = Frame("cam", 0, 0.0, 0.0, np.zeros((4, 4, 3), np.float32))
    det = Detections.create([[0, 0, 1, 1]]).with_attributes(name=np.array(["x"]))
    bad_column = Frame("cam", 1, 0.0, 0.0, np.zeros((4, 4, 3), np.uint8), det)
    listed = Frame("cam", 2, 0.0, 0.0, np.zeros((4, 4, 3), np.uint8), motion=[[0, 0, 1, 1]])  # type: ignore[arg-type]
    for frame in (bad_image, bad_column, listed):
        tx.send(frame)
        time.sleep(0.05)  # one at a time: a latest link keeps only the newest frame
    got = []
    deadline = time.monotonic() + 5
    while len(got) < 1 and time.monotonic() < deadline:
        env = rx.recv(100)
        if env is not None:
            got.append(env.message)
    assert [f.seq for f in got] == [2] and got[0].motion.tolist() == [[0, 0, 1, 1]]
    assert stats.invalid == 2
    tx.close(0)
    rx.close()


def test_inproc_sends_after_the_receiver_closed_leave_nothing_in_the_module(tmp_path):
    from pipeline import transport

    tx, rx, _ = _pair("inproc", "lossless", 2, tmp_path)
    rx.close()
    for seq in range(2):
        try:
            tx.send(_frame(seq), timeout_s=0.2)
        except TimeoutError:
            pass
    assert rx.address not in transport._parked  # late sends stay with the sender, freed with it
    tx.close(0)


def test_tcp_links_bind_loopback_by_default():
    rx = LinkReceiver(endpoint("tcp", "t"), "lossless", 2)
    assert rx.address.startswith("tcp://127.0.0.1:")
    rx.close()


def test_wire_carries_the_image_file_name_into_the_record(tmp_path):
    """Frames from an image folder name their file through every link and in results.jsonl."""
    import cv2

    from pipeline.config import SourceConfig
    from pipeline.sources import ImageReader, capture_loop

    for name in ("b.png", "a.jpg"):
        cv2.imwrite(str(tmp_path / name), np.zeros((8, 8, 3), np.uint8))
    sent: list = []
    capture_loop(
        ImageReader(SourceConfig(id="imgs", uri=str(tmp_path))),
        SourceConfig(id="imgs", uri=str(tmp_path)),
        sent.append,
        threading.Event(),
    )
    frames = [decode(encode(m)).message for m in sent if isinstance(m, Frame)]
    assert [f.file for f in frames] == ["a.jpg", "b.png"]
    assert [f.to_record()["file"] for f in frames] == ["a.jpg", "b.png"]
    plain = decode(encode(Frame("cam", 0, 0.0, 0.0, np.zeros((2, 2, 3), np.uint8)))).message
    assert plain.file is None and "file" not in plain.to_record()  # video frames: no new field
