"""Credentials in a source address never reach logs, errors or summary.json."""

from __future__ import annotations

import pytest

from pipeline.redact import is_secret_name, redact_uri


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/live", "rtsp://admin:***@10.0.0.5:554/live"),
        ("rtsp://cam/stream?pwd=secret", "rtsp://cam/stream?pwd=***"),
        (
            "rtsp://cam/stream?user=admin&password=hunter2&channel=1",
            "rtsp://cam/stream?user=admin&password=***&channel=1",
        ),
        ("https://h/live.m3u8?TOKEN=abc.def&x=1", "https://h/live.m3u8?TOKEN=***&x=1"),
        (
            "http://h/s?Pass=1;passwd=2;Key=3;auth=4;secret=5;signature=6",
            "http://h/s?Pass=***;passwd=***;Key=***;auth=***;secret=***;signature=***",
        ),
        # words inside longer names: signed URLs and API keys
        (
            "https://b.s3.amazonaws.com/v.mp4?X-Amz-Signature=ab12&X-Amz-Date=2026",
            "https://b.s3.amazonaws.com/v.mp4?X-Amz-Signature=***&X-Amz-Date=2026",
        ),
        (
            "https://h/v?access_token=t&apiKey=k&client_secret=s",
            "https://h/v?access_token=***&apiKey=***&client_secret=***",
        ),
        # both places at once, a password holding '@', a fragment kept as written
        ("rtsp://u:p@ss@cam:554/s?token=t#frag", "rtsp://u:***@cam:554/s?token=***#frag"),
        # percent-encoded name
        ("rtsp://cam/s?pass%77ord=x", "rtsp://cam/s?pass%77ord=***"),
    ],
)
def test_secrets_are_masked(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "rtsp://cam.local:554/stream1",
        "rtsp://viewer@cam/stream",  # a user name alone is not a secret
        "rtsp://cam/s?channel=1&subtype=0&keyframe=1",
        "rtsp://cam/s?token=",  # nothing to hide
        "videos/walk.mp4",
        "images/frame_??.jpg",  # a glob, not a query
        "synthetic://640x480?frames=10&fps=25",
        "0",
    ],
)
def test_addresses_without_secrets_are_unchanged(uri: str) -> None:
    assert redact_uri(uri) == uri


def test_secret_value_never_survives() -> None:
    for name in ["pwd", "PWD", "Password", "pass", "passwd", "token", "key", "auth", "secret", "signature"]:
        out = redact_uri(f"rtsp://cam/s?a=1&{name}=TOPSECRET&b=2")
        assert "TOPSECRET" not in out and out.endswith("=***&b=2"), out
        assert is_secret_name(name)
    assert not is_secret_name("channel") and not is_secret_name("keyframe")
