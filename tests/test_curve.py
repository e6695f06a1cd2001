"""tcp links with ZeroMQ CURVE: a run's own processes talk, a peer with the wrong key (or none)
gets nothing in and is counted; exposing tcp links without CURVE needs an explicit `insecure`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline import Pipeline
from pipeline.cli import main
from pipeline.config import config_from_dict
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "samples" / "faces_female_and_male.mp4"  # 56 frames

INTRUDER = """
import json, sys, zmq, zmq.auth
from zmq.utils.monitor import recv_monitor_message
address, secret = sys.argv[1], sys.argv[2]
ctx = zmq.Context()
push = ctx.socket(zmq.PUSH)
push.setsockopt(zmq.LINGER, 0)
if secret != "-":  # a CURVE client with a key of its own, knowing the server's public key
    public, private = zmq.auth.load_certificate(secret)
    push.curve_secretkey, push.curve_publickey = private, public
    push.curve_serverkey = zmq.auth.load_certificate(sys.argv[3])[0]
monitor = push.get_monitor_socket()
push.connect(address)
for _ in range(20):  # queued for the connection: they go out only if the handshake succeeds
    push.send_multipart([json.dumps({"t": "end", "src": "cam0", "rt": ""}).encode()])
outcome = "none"
ends = {zmq.EVENT_HANDSHAKE_SUCCEEDED: "succeeded", zmq.EVENT_HANDSHAKE_FAILED_AUTH: "refused",
        zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "protocol", zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "failed"}
while monitor.poll(60000):  # wait for the server's verdict, however loaded the machine
    event = recv_monitor_message(monitor)["event"]
    if event in ends:
        outcome = ends[event]
        break
print(outcome)
push.disable_monitor()
monitor.close(0)
push.close()
ctx.term()
"""


def _keys(folder: Path, name: str) -> tuple[Path, Path]:
    assert main(["keys", "gen", str(folder), name]) == 0
    return folder / f"{name}.key", folder / f"{name}.key_secret"


def test_keys_gen_writes_a_private_secret(tmp_path: Path) -> None:
    public, secret = _keys(tmp_path, "cam")
    assert public.read_text().count("public-key") == 1 and "secret-key" not in public.read_text()
    assert "secret-key" in secret.read_text() and secret.stat().st_mode & 0o077 == 0


def test_exposed_tcp_links_need_curve_or_an_explicit_insecure(tmp_path: Path) -> None:
    base: dict[str, Any] = {"version": 1, "stages": [{"id": "out", "kind": "sink.jsonl"}]}
    with pytest.raises(ConfigError, match="links.host: 0.0.0.0 is reachable from other hosts"):
        config_from_dict({**base, "links": {"transport": "tcp", "host": "0.0.0.0"}})
    assert config_from_dict({**base, "links": {"transport": "tcp", "host": "0.0.0.0", "insecure": True}})
    _, secret = _keys(tmp_path, "run")
    curve = {"secret_key": str(secret)}
    assert config_from_dict({**base, "links": {"transport": "tcp", "host": "0.0.0.0", "curve": curve}})
    assert config_from_dict({**base, "links": {"transport": "tcp"}})  # loopback: no key needed


@pytest.mark.slow
def test_with_curve_only_authorized_keys_get_in(tmp_path: Path) -> None:
    run_pub, run_secret = _keys(tmp_path / "run", "run")
    _, stranger_secret = _keys(tmp_path / "stranger", "stranger")
    authorized = tmp_path / "authorized"
    authorized.mkdir()
    (authorized / "run.key").write_text(run_pub.read_text())
    pipe = {
        "version": 1,
        "sources": [
            {"id": "cam0", "uri": str(CLIP), "realtime": True},
            # keeps the run (and its listening sockets) alive until both intruders have knocked: on a
            # loaded machine cam0's ~2 s can be over before a fresh interpreter has even connected
            {"id": "hold", "uri": str(CLIP), "realtime": True, "loop": True},
        ],
        "stages": [
            {"id": "faces", "kind": "detect.haar", "placement": "process"},  # a worker process over CURVE
            {"id": "results", "kind": "sink.jsonl", "with": {"path": "results.jsonl"}},
        ],
        "links": {
            "transport": "tcp",
            "policy": "lossless",  # realtime sources default to latest, which may drop
            "curve": {"secret_key": str(run_secret), "authorized": str(authorized)},
        },
    }
    run = Pipeline.from_dict(pipe, output_dir=tmp_path / "out")
    run.start()
    deadline = time.monotonic() + 60
    while not (addresses := run.runner.addresses()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    first = addresses["faces"]
    for secret, server in ((str(stranger_secret), str(run_pub)), ("-", "-")):  # wrong key; no CURVE at all
        out = subprocess.run(
            [sys.executable, "-c", INTRUDER, first, secret, server],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        # the wrong key is refused by the ZAP handler (which counts it) once its handshake is done;
        # a peer without CURVE fails the handshake before any key is seen
        assert out.stdout.strip() in (("refused",) if secret != "-" else ("protocol", "failed")), out.stdout
    run.runner.remove_source("hold")
    run.run()
    summary = run.summary
    assert summary["status"] == "completed", summary["error"]
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [r["seq"] for r in records if r["source"] == "cam0"] == list(range(56))  # no forged end got in
    assert summary["links"]["curve"] is True and summary["links"]["refused"] >= 1
    assert all(stage["invalid"] == 0 for stage in summary["stages"].values())  # nothing even reached decode
