"""A camera-like MJPEG-over-HTTP server for tests: pure Python, frames numbered on the image,
and it can be taken down (connections dropped, new ones refused) and brought back."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np


class MJPEGCamera:
    """Serves `http://127.0.0.1:PORT/cam.mjpg` at `fps` until `stop()`; `down()`/`up()` simulate
    a camera that drops off the network and comes back."""

    def __init__(self, fps: float = 15.0, size: tuple[int, int] = (320, 240)) -> None:
        self.fps, self.size = fps, size
        self.available = threading.Event()
        self.available.set()
        self.served = 0
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_GET(self) -> None:
                if not camera.available.is_set():
                    self.send_error(503, "camera offline")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while camera.available.is_set() and not camera.stopped.is_set():
                        data = camera.jpeg()
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n")
                        self.wfile.write(b"Content-Length: %d\r\n\r\n" % len(data) + data + b"\r\n")
                        self.wfile.flush()
                        time.sleep(1.0 / camera.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.stopped = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cam.mjpg"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def jpeg(self) -> bytes:
        w, h = self.size
        image = np.zeros((h, w, 3), np.uint8)
        image[:] = (40, 90, 160)
        x = (self.served * 5) % (w - 40)
        cv2.rectangle(image, (x, h // 3), (x + 40, h // 3 + 40), (255, 255, 255), -1)
        cv2.putText(image, str(self.served), (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
        self.served += 1
        return cv2.imencode(".jpg", image)[1].tobytes()

    def start(self) -> MJPEGCamera:
        self._thread.start()
        return self

    def down(self) -> None:
        self.available.clear()

    def up(self) -> None:
        self.available.set()

    def stop(self) -> None:
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()
