"""A local HTTP server for the download tests: files the test writes itself, served from
127.0.0.1 in a thread (no internet), counting the requests it answers."""

from __future__ import annotations

import functools
import http.server
import threading
from collections import Counter
from pathlib import Path

import pytest


class LocalServer:
    def __init__(self, root: Path):
        self.root = root
        self.requests: Counter[str] = Counter()
        served = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                served.requests[self.path] += 1
                super().do_GET()

            def log_message(self, *args):
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def add(self, name: str, data: bytes) -> str:
        """Serve ``data`` as ``/name``; returns its URL."""
        (self.root / name).write_bytes(data)
        return self.url(name)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


@pytest.fixture
def local_server(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # a configured proxy must not see this traffic
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    server = LocalServer(tmp_path_factory.mktemp("served"))
    yield server
    server.close()
