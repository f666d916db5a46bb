"""Load test of `digit-keras serve` on 127.0.0.1: requests/s and latency percentiles.

Starts the real server (the bundled model unless --model; `--workers` server processes), then,
for each concurrency level, keeps that many requests in flight for a bounded count and time, and
prints requests/s, images/s and p50/p99 latency. The client shares the machine's cores with the
server, as a load generator on the same host does: `--client httpx` (default) is one asyncio
Python client, about as costly as the server it loads; `--client wrk` is the C load generator
wrk (Debian's package `wrk`), which leaves the server more of the cores, for single pictures.

    python benchmarks/bench_serve.py [--model RUN|.onnx] [--workers 1] [--client httpx|wrk]
        [--requests 2000] [--seconds 20] [--concurrency 1,4,16] [--batch 16]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/
from tests.processes import start_serve_process


def _digit_png() -> bytes:
    """A hand-drawn-looking 7 on white paper, 200x200, as the page would send it."""
    image = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(image).line([(50, 40), (150, 40), (85, 160)], 0, 14)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def load(url: str, files_for, concurrency: int, requests: int, seconds: float) -> dict:
    """Keep `concurrency` requests in flight until `requests` are done or `seconds` pass."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            while len(latencies) < requests and time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.post(url, files=files_for())
                response.raise_for_status()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    milliseconds = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "per_s": len(latencies) / wall,
        "p50": float(np.percentile(milliseconds, 50)),
        "p99": float(np.percentile(milliseconds, 99)),
    }


def wrk_load(url: str, picture: bytes, concurrency: int, seconds: float) -> dict:
    """The same load from wrk: `concurrency` connections, each one request at a time."""
    request = httpx.Request("POST", url, files={"file": ("d.png", picture)})
    body, content_type = request.read(), request.headers["Content-Type"]
    escaped = "".join(f"\\{byte:03d}" for byte in body)  # Lua's decimal byte escapes
    script = f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "{content_type}"\n'
    script += f'wrk.body = "{escaped}"\n'
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as handle:
        handle.write(script)
        handle.flush()
        command = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--latency", "-s"]
        output = subprocess.run(
            [*command, handle.name, url], capture_output=True, text=True, check=True
        ).stdout
    if "Non-2xx" in output:
        raise SystemExit(f"the server refused requests:\n{output}")

    def milliseconds(percent: str) -> float:
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)$", output, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    return {
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": milliseconds("50"),
        "p99": milliseconds("99"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="run directory with model.onnx, or a .onnx file")
    parser.add_argument("--requests", type=int, default=2000, help="most requests per level")
    parser.add_argument("--seconds", type=float, default=20, help="most seconds per level")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--batch", type=int, default=16, help="pictures per batch request")
    parser.add_argument("--workers", type=int, default=1, help="server processes (serve --workers)")
    parser.add_argument("--client", choices=("httpx", "wrk"), default="httpx")
    args = parser.parse_args()
    if args.client == "wrk" and not shutil.which("wrk"):
        raise SystemExit("--client wrk needs wrk on PATH (Debian: apt-get install wrk)")

    picture = _digit_png()
    serve_args = ["--workers", str(args.workers), *(["--model", args.model] if args.model else [])]
    try:
        server, base = start_serve_process(serve_args)
    except RuntimeError as err:
        raise SystemExit(str(err)) from None
    try:
        asyncio.run(load(f"{base}/predict", lambda: {"file": ("d.png", picture)}, 4, 200, 5))
        print(f"{'request':>22} {'in flight':>9} {'done':>6} {'req/s':>7} {'img/s':>7} "
              f"{'p50 ms':>7} {'p99 ms':>7}")  # fmt: skip
        levels = [int(c) for c in args.concurrency.split(",")]
        kinds = [("1 picture", "/predict", lambda: {"file": ("d.png", picture)}, 1)]
        batch = [("files", (f"{i}.png", picture)) for i in range(args.batch)]
        kinds.append((f"batch of {args.batch}", "/predict/batch", lambda: batch, args.batch))
        for name, route, files_for, images in kinds:
            for level in levels:
                if args.client == "wrk" and images == 1:
                    result = wrk_load(base + route, picture, level, args.seconds)
                else:
                    result = asyncio.run(
                        load(base + route, files_for, level, args.requests, args.seconds)
                    )
                print(
                    f"{name:>22} {level:>9} {result['requests']:>6} {result['per_s']:>7.0f} "
                    f"{result['per_s'] * images:>7.0f} {result['p50']:>7.1f} {result['p99']:>7.1f}"
                )
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
