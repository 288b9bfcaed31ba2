"""The host's idle benchmark index: measured once, kept in the data directory.

Lighthouse measures ``benchmarkIndex`` with a short single-threaded
JavaScript benchmark before each navigation, so the figure drops when
other work competes for the CPU at that moment. Calibrating runs Lighthouse
alone, a few times, against a tiny page served on loopback, and keeps the
highest figure. A run of a job whose figure falls below a share of it (the
job's ``contention_ratio``, 0.8 by default) is marked as contended.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil

from lhfleet.auditor import Auditor, AuditRequest
from lhfleet.errors import EnvironmentProblem, StoreError
from lhfleet.models import JobSettings
from lhfleet.owners import current_owner
from lhfleet.runtime import Runtime

logger = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
DEFAULT_SAMPLES = 3
BUSY_CPU_PERCENT = 25.0
"""Host CPU use, before measuring, above which the figure is marked unreliable."""

PAGE = (
    b"<!doctype html><html lang=en><head><meta charset=utf-8>"
    b"<meta name=viewport content='width=device-width'><title>lhfleet calibration"
    b"</title></head><body><h1>lhfleet calibration</h1></body></html>"
)
SETTINGS = JobSettings(
    runs=1, preset="desktop", categories=("performance",), timeout=90.0, retries=0
)


@dataclass(frozen=True)
class Calibration:
    """One host's idle figure and how it was measured."""

    host: str
    benchmark_index: float
    samples: list[float]
    measured_at: str
    lighthouse_version: str | None
    cpu_count: int
    cpu_percent: float
    """The host's CPU use just before measuring, in percent of all cores."""

    @property
    def busy(self) -> bool:
        return self.cpu_percent > BUSY_CPU_PERCENT

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(
            host=str(data["host"]),
            benchmark_index=float(data["benchmark_index"]),
            samples=[float(value) for value in data.get("samples") or []],
            measured_at=str(data.get("measured_at") or ""),
            lighthouse_version=data.get("lighthouse_version"),
            cpu_count=int(data.get("cpu_count") or 0),
            cpu_percent=float(data.get("cpu_percent") or 0.0),
        )


def host_name() -> str:
    return socket.gethostname()


def calibration_path(data_dir: Path) -> Path:
    return data_dir / CALIBRATION_FILE


def load_calibration(data_dir: Path, host: str | None = None) -> Calibration | None:
    """Return this host's stored calibration, or None when it has none."""
    entries = _read_entries(calibration_path(data_dir))
    entry = entries.get(host or host_name())
    return Calibration.from_dict(entry) if isinstance(entry, dict) else None


def save_calibration(data_dir: Path, calibration: Calibration) -> Path:
    """Store a host's calibration beside those of other hosts; return the file."""
    path = calibration_path(data_dir)
    entries = _read_entries(path)
    entries[calibration.host] = asdict(calibration)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
        partial.replace(path)
    except OSError as error:
        raise StoreError(
            f"Could not write the calibration to {path}: {error.strerror}. "
            "Free disk space or fix the folder's permissions, then run "
            "`lhfleet calibrate` again."
        ) from error
    logger.info("saved the calibration of %s in %s", calibration.host, path)
    return path


def _read_entries(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        logger.warning("ignoring the unreadable calibration file %s: %s", path, error)
        return {}
    return data if isinstance(data, dict) else {}


def measure(
    runtime: Runtime, scratch: Path, samples: int = DEFAULT_SAMPLES
) -> Calibration:
    """Run Lighthouse ``samples`` times, one at a time, and keep the highest figure.

    Contention only ever lowers the figure, so the highest of the samples is
    the closest to the host's idle capacity.
    """
    cpu_percent = psutil.cpu_percent(interval=1.0)
    auditor = Auditor(runtime, scratch)
    owner = current_owner("calibrate")
    figures: list[float] = []
    version = None
    with _serve_page() as url:
        for number in range(samples):
            label = f"calibrate-{os.getpid()}-{number}"
            logger.info("calibration run %d of %d on %s", number + 1, samples, url)
            result = auditor.audit(AuditRequest(url, SETTINGS), label, owner)
            lhr = result.lhr or {}
            figure = (lhr.get("environment") or {}).get("benchmarkIndex")
            if result.error_code or not isinstance(figure, int | float):
                raise EnvironmentProblem(
                    f"Calibration run {number + 1} gave no benchmark index "
                    f"({result.error_code}: {result.error_message}). Run "
                    "`lhfleet doctor` to check Node, Lighthouse and Chromium."
                )
            figures.append(float(figure))
            version = lhr.get("lighthouseVersion")
    return Calibration(
        host=host_name(),
        benchmark_index=max(figures),
        samples=figures,
        measured_at=datetime.now(UTC).isoformat(),
        lighthouse_version=version,
        cpu_count=os.cpu_count() or 1,
        cpu_percent=cpu_percent,
    )


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("calibration page: %s", format % args)


@contextmanager
def _serve_page() -> Iterator[str]:
    """Serve the calibration page on a free loopback port while the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
