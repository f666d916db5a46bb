"""Free ports and `digit-keras serve` in a child process: for the tests that start real servers
and clusters, and for benchmarks/bench_serve.py."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence


def free_ports(count: int = 1, host: str = "127.0.0.1") -> list[int]:
    """`count` different TCP ports that are free on `host` now (all held open until all found)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def start_serve_process(
    args: Sequence[str] = (), timeout: float = 60.0, **popen_options
) -> tuple[subprocess.Popen, str]:
    """`digit-keras serve ARGS` in a child process on a free port of 127.0.0.1, as a user starts
    it; returned with its URL once /health answers. The caller stops it. A server that exits or
    stays unready for `timeout` s is stopped, and the RuntimeError carries its output (when
    `stdout` is piped)."""
    (port,) = free_ports()
    command = [sys.executable, "-m", "digit_keras", "serve", "--port", str(port), *args]
    process = subprocess.Popen(command, **popen_options)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/health", timeout=1) as response,
        ):
            if response.status == 200:
                return process, url
        if process.poll() is not None or time.monotonic() > deadline:
            process.terminate()
            output = process.communicate()[0] if process.stdout else None
            raise RuntimeError("the server did not start" + (f": {output}" if output else ""))
        time.sleep(0.2)
