"""Load benchmark of lhfleet serve: many clients reading while a real job runs.

Starts ``lhfleet serve`` in a subprocess on a new data folder and a free
loopback port, and serves a small test page on loopback itself. It then
runs the same job twice with real Lighthouse (``--runs`` runs of the page,
performance category, one audit at a time):

1. alone, as the baseline;
2. while ``--clients`` clients read the server: half poll ``GET
   /api/jobs/ID`` every ``--poll`` seconds, half hold ``GET
   /api/jobs/ID/events`` streams open until the job ends.

It reports the latency of the status reads (p50, p99, max), how long the
event streams took to connect, and how late each saw the job end. It also
reports the job's own throughput (runs per minute, mean audit time, median
score) with and without the clients. It prints a Markdown section for BENCHMARKS.md:

    .venv/bin/python bench/serve_load.py > serve-load.md
    .venv/bin/python bench/serve_load.py --clients 20 --runs 2     # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from lhfleet import service
from lhfleet.api.tokens import issue_token
from lhfleet.client import parse_events
from lhfleet.store.sql import SqlJobStore
from lhfleet.store.tokens import SqlTokenStore

PAGE = (
    b"<!doctype html><html lang=en><head><meta charset=utf-8>"
    b"<meta name=viewport content='width=device-width'><title>bench</title></head>"
    b"<body><h1>lhfleet serve load benchmark</h1><p>A small page.</p></body></html>"
)
START_TIMEOUT = 60.0


@dataclass
class Measures:
    """The clients' measurements during one job."""

    status_latencies: list[float] = field(default_factory=list)
    status_errors: int = 0
    connect_times: list[float] = field(default_factory=list)
    end_delays: list[float] = field(default_factory=list)
    stream_errors: int = 0
    events: int = 0


def serve_page() -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def free_port() -> int:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port: int = holder.getsockname()[1]
        return port


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    log = (data_dir / "serve.log").open("ab")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "lhfleet", "serve", "--port", str(port),
            "--concurrency", "1", "--no-access-log", "--data-dir", str(data_dir),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"lhfleet serve did not start; see {data_dir / 'serve.log'}")


def make_token(data_dir: Path) -> str:
    workspace = service.Workspace.open(data_dir)
    assert isinstance(workspace.store, SqlJobStore)
    _, secret = issue_token(SqlTokenStore.beside(workspace.store), "bench")
    return secret


async def poll_status(
    client: httpx.AsyncClient,
    job_id: str,
    every: float,
    done: asyncio.Event,
    out: Measures,
) -> None:
    while not done.is_set():
        started = time.perf_counter()
        try:
            response = await client.get(f"/api/jobs/{job_id}")
            response.raise_for_status()
            out.status_latencies.append(time.perf_counter() - started)
        except httpx.HTTPError:
            out.status_errors += 1
        await asyncio.sleep(every)


async def hold_stream(client: httpx.AsyncClient, job_id: str, out: Measures) -> None:
    started = time.perf_counter()
    try:
        async with client.stream("GET", f"/api/jobs/{job_id}/events") as response:
            out.connect_times.append(time.perf_counter() - started)
            lines: list[str] = []
            async for line in response.aiter_lines():
                lines.append(line)
                if line.startswith("event: end"):
                    out.end_delays.append(time.time())
            out.events += len(list(parse_events(lines)))
    except httpx.HTTPError:
        out.stream_errors += 1


async def run_job(
    url: str, token: str, request: dict[str, Any], clients: int, poll: float
) -> tuple[dict[str, Any], Measures]:
    """Submit the job, load the server with clients until it completes."""
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=clients + 10)
    timeout = httpx.Timeout(60.0, read=None)
    measures = Measures()
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=timeout
    ) as client:
        job = (await client.post("/api/jobs", json=request)).json()
        done = asyncio.Event()
        streams = [
            asyncio.create_task(hold_stream(client, job["id"], measures))
            for _ in range(clients // 2)
        ]
        pollers = [
            asyncio.create_task(poll_status(client, job["id"], poll, done, measures))
            for _ in range(clients - clients // 2)
        ]
        while True:
            job = (await client.get(f"/api/jobs/{job['id']}")).json()
            if job["state"] == "completed":
                break
            await asyncio.sleep(1.0)
        await asyncio.gather(*streams)
        done.set()
        await asyncio.gather(*pollers)
        results = (await client.get(f"/api/jobs/{job['id']}/results")).json()
    finished = datetime.fromisoformat(job["finished_at"]).timestamp()
    measures.end_delays = [seen - finished for seen in measures.end_delays]
    return results, measures


def throughput(results: dict[str, Any]) -> dict[str, float]:
    """Return runs per minute, mean audit seconds and the median performance score."""
    runs = [run for entry in results["urls"] for run in entry["runs"]]
    starts = [datetime.fromisoformat(run["started_at"]).timestamp() for run in runs]
    ends = [datetime.fromisoformat(run["finished_at"]).timestamp() for run in runs]
    audits = [end - start for start, end in zip(starts, ends, strict=True)]
    scores = [run["scores"].get("performance") for run in runs]
    valid = [score for score in scores if score is not None]
    span = max(ends) - min(starts)
    return {
        "runs": len(runs),
        "succeeded": sum(run["state"] == "succeeded" for run in runs),
        "runs_per_minute": 60 * len(runs) / span,
        "mean_audit": statistics.mean(audits),
        "median_score": statistics.median(valid) * 100 if valid else float("nan"),
        "tbt": statistics.median(
            run["metrics"].get("tbt") or 0.0 for run in runs if run["metrics"]
        ),
    }


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def report(
    args: argparse.Namespace,
    baseline: dict[str, float],
    loaded: dict[str, float],
    measures: Measures,
) -> str:
    ms = [value * 1000 for value in measures.status_latencies]
    connect = [value * 1000 for value in measures.connect_times]
    delays = [value * 1000 for value in measures.end_delays]
    lines = [
        "## lhfleet serve under 200 readers"
        if args.clients == 200
        else f"## lhfleet serve under {args.clients} readers",
        "",
        "### Command",
        "",
        f"    .venv/bin/python bench/serve_load.py --clients {args.clients} "
        f"--runs {args.runs} --poll {args.poll:g}",
        "",
        "### Hardware",
        "",
        f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average at the end "
        f"{os.getloadavg()[0]:.1f}; the server, Lighthouse, Chromium and the "
        "clients share the machine.",
        "",
        "### Results",
        "",
        "| figure | value |",
        "|---|---|",
        f"| clients | {args.clients // 2} event streams, "
        f"{args.clients - args.clients // 2} status pollers every {args.poll:g} s |",
        f"| status reads | {len(ms)} ({measures.status_errors} errors) |",
        f"| status latency p50 / p99 / max | {percentile(ms, 0.5):.1f} / "
        f"{percentile(ms, 0.99):.1f} / {max(ms, default=float('nan')):.1f} ms |",
        f"| event streams connected / failed | {len(connect)} / "
        f"{measures.stream_errors} |",
        f"| stream connect p50 / p99 | {percentile(connect, 0.5):.1f} / "
        f"{percentile(connect, 0.99):.1f} ms |",
        f"| job end to `end` event, p50 / p99 | {percentile(delays, 0.5):.0f} / "
        f"{percentile(delays, 0.99):.0f} ms |",
        "",
        "| job | runs | runs per minute | mean audit | median performance | "
        "median TBT |",
        "|---|---|---|---|---|---|",
    ]
    for name, figures in (("alone", baseline), ("with the clients", loaded)):
        lines.append(
            f"| {name} | {figures['succeeded']:.0f}/{figures['runs']:.0f} | "
            f"{figures['runs_per_minute']:.2f} | {figures['mean_audit']:.1f} s | "
            f"{figures['median_score']:.0f} | {figures['tbt']:.0f} ms |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--clients",
        type=int,
        default=200,
        help="clients reading the server at once (half poll, half stream)",
    )
    parser.add_argument("--runs", type=int, default=4, help="runs of the job's one URL")
    parser.add_argument(
        "--poll",
        type=float,
        default=1.0,
        help="seconds between two polls of one client",
    )
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="lhfleet-serve-load-"))
    page = serve_page()
    token = make_token(data_dir)
    port = free_port()
    server = start_server(data_dir, port)
    url = f"http://127.0.0.1:{port}"
    request = {
        "urls": [f"http://127.0.0.1:{page.server_address[1]}/"],
        "runs": args.runs,
        "settings": {"categories": ["performance"]},
    }
    try:
        alone, _ = asyncio.run(run_job(url, token, request, 0, args.poll))
        print("baseline job completed; starting the loaded job", file=sys.stderr)
        loaded, measures = asyncio.run(
            run_job(url, token, request, args.clients, args.poll)
        )
    finally:
        server.terminate()
        server.wait(timeout=60)
        page.shutdown()
    sys.stdout.write(report(args, throughput(alone), throughput(loaded), measures))
    print(f"data folder: {data_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
