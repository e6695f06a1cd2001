"""`sink.mqtt` against a real mosquitto: events, retained counts, status, a broker crash, secrets."""

from __future__ import annotations

import json
import logging
import time

from event_frames import event, frame
from mqtt_broker import Broker, Subscriber
from mqtt_broker import broker as broker  # the fixture

from pipeline.stage import StageContext
from stages.sink_mqtt import MqttSink, MqttSinkOptions, label_counts, topic_segment


def _sink(port: int, tmp_path, **options) -> MqttSink:
    opts = MqttSinkOptions(port=port, reconnect_max_s=1, close_timeout_s=5, **options)
    sink = MqttSink(opts, StageContext("mqtt", output_dir=tmp_path))
    sink.setup()
    return sink


def test_topic_segments_and_counts():
    assert topic_segment("cam/1+#") == "cam_1__"
    assert label_counts(["person", "person", "car"], [True, False, True]) == {"person": 1, "car": 1}


def test_events_counts_and_status(broker: Broker, tmp_path):
    sub = Subscriber(broker.port)
    sink = _sink(broker.port, tmp_path)
    try:
        sink.process(frame(0, people=2, events=(event("e1", 0.0), event("e2", 0.0, "object_new"))))
        sink.process(frame(1, people=1, events=(event("e3", 0.1),)))
        got = sub.wait_for(3, "/events")
        assert [json.loads(p)["id"] for _, p, _ in got] == ["e1", "e2", "e3"]
        assert {t for t, _, _ in got} == {"vigil/cam0/events"}
        assert json.loads(got[0][1]) == event("e1", 0.0).to_json()
        counts = sub.wait_for(2, "/person/count")
        assert [p for _, p, _ in counts] == [b"2", b"1"]
        assert b"online" in [p for _, p, _ in sub.received("vigil/status")]
    finally:
        sink.close()
        sub.close()
    assert sink.context.report["delivery"]["sent"] == 5 and sink.context.report["delivery"]["dropped"] == 0
    late = Subscriber(broker.port)  # retained: a subscriber that comes later sees the last values
    try:
        assert late.wait_for(1, "/person/count")[-1][1:] == (b"1", True)
        assert late.wait_for(1, "vigil/status")[-1][1:] == (b"offline", True)
    finally:
        late.close()


def test_a_broker_crash_drops_and_counts_and_later_events_arrive(broker: Broker, tmp_path):
    sub = Subscriber(broker.port)
    sink = _sink(broker.port, tmp_path, queue_size=20, counts=False)
    seq = 0
    try:
        for i in range(5):
            sink.process(frame(seq := seq + 1, events=(event(f"before{i}", seq / 10),)))
        assert len(sub.wait_for(5, "/events")) == 5
        broker.stop()  # killed: no clean disconnect
        for _ in range(100):
            if not sink._connected.wait(0):
                break
            time.sleep(0.05)
        for i in range(100):  # must not block while the broker is gone
            sink.process(frame(seq := seq + 1, events=(event(f"down{i}", seq / 10),)))
        assert sink.context.report["delivery"]["dropped"] >= 100 - 20 - 1  # queue + the one in hand
        broker.start()
        assert sub.subscribed.wait(20), "subscriber did not come back"
        for _ in range(400):  # frames go on while the sink reconnects and sends its backlog
            sink.process(frame(seq := seq + 1))
            report = sink.context.report["delivery"]
            if report["connected"] and report["pending"] == 0:
                break
            time.sleep(0.05)
        for i in range(5):
            sink.process(frame(seq := seq + 1, events=(event(f"after{i}", seq / 10),)))
        after = {f"after{i}" for i in range(5)}
        for _ in range(400):
            ids = {json.loads(p)["id"] for _, p, _ in sub.received("/events")}
            if after <= ids:
                break
            time.sleep(0.05)
        assert after <= ids, (sorted(ids), sink.context.report, sink._report())
    finally:
        sink.close()
        sub.close()
    report = sink.context.report["delivery"]
    assert report["dropped"] > 0 and report["connects"] >= 2
    assert report["sent"] + report["failed"] + report["dropped"] == 110  # every event accounted for


def test_the_password_is_never_logged(broker: Broker, tmp_path, caplog):
    secret = "hunter2-very-secret"
    password_file = tmp_path / "pw"
    password_file.write_text(secret + "\n")
    caplog.set_level(logging.DEBUG)
    sink = _sink(broker.port, tmp_path, username="vigil", password_file=str(password_file))
    sub = Subscriber(broker.port)
    try:
        sink.process(frame(0, events=(event("p1", 0.0),)))
        assert len(sub.wait_for(1, "/events")) == 1  # anonymous broker: any password is accepted
    finally:
        sink.close()
        sub.close()
    shown = caplog.text + repr(sink.options) + json.dumps(sink.context.report)
    assert secret not in shown


def test_bench_events_measures_mqtt_throughput(broker: Broker):
    from benchmarks import events

    rows = events.run(None, events=300, port=broker.port)
    assert [r["run"] for r in rows] == [
        "sink.mqtt qos 0 -> local mosquitto",
        "sink.mqtt qos 1 -> local mosquitto",
    ]
    assert all(r["events"] == 300 and r["dropped"] == 0 and r["events_per_s"] > 0 for r in rows)
