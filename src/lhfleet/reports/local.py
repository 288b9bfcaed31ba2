"""Reports in a local directory: ``<root>/<job id>/<run id>.a<attempt>.report.*``."""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from lhfleet.errors import NotFoundError, StoreError
from lhfleet.ports import ReportStore

logger = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


class LocalReportStore(ReportStore):
    """Gzipped JSON and plain HTML reports in a folder, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put_report(
        self,
        job_id: str,
        run_id: str,
        attempt: int,
        report_json: bytes,
        report_html: str,
    ) -> tuple[str, str]:
        for name in (job_id, run_id):
            if not _SAFE_NAME.match(name):
                raise ValueError(f"unsafe name for a report path: {name!r}")
        folder = self.root / job_id
        json_path = folder / f"{run_id}.a{attempt}.report.json.gz"
        html_path = folder / f"{run_id}.a{attempt}.report.html"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write_atomic(json_path, gzip.compress(report_json, compresslevel=6))
            _write_atomic(html_path, report_html.encode("utf-8"))
        except OSError as error:
            raise StoreError(
                f"Could not write the reports of run {run_id} to {folder}: "
                f"{error.strerror}. Free disk space or fix the folder's permissions, "
                f"then run `lhfleet resume {job_id}`."
            ) from error
        logger.debug("stored reports of run %s in %s", run_id, folder)
        return self._ref(json_path), self._ref(html_path)

    def put_summary(self, job_id: str, body: bytes) -> str:
        return self._put_summary(job_id, lambda path: _write_atomic(path, body))

    def put_summary_file(self, job_id: str, path: Path) -> str:
        return self._put_summary(job_id, lambda target: _copy_atomic(path, target))

    def _put_summary(self, job_id: str, write: Callable[[Path], None]) -> str:
        if not _SAFE_NAME.match(job_id):
            raise ValueError(f"unsafe name for a report path: {job_id!r}")
        path = self.root / job_id / "results.json"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path)
        except OSError as error:
            raise StoreError(
                f"Could not write the results of job {job_id} to {path}: "
                f"{error.strerror}. Free disk space, then run "
                f"`lhfleet results {job_id} --format json`."
            ) from error
        return self._ref(path)

    def delete_job(self, job_id: str) -> None:
        if not _SAFE_NAME.match(job_id):
            raise ValueError(f"unsafe name for a report path: {job_id!r}")
        shutil.rmtree(self.root / job_id, ignore_errors=True)

    def read_json(self, ref: str) -> bytes:
        path = self._path(ref)
        try:
            data = path.read_bytes()
            return gzip.decompress(data) if path.suffix == ".gz" else data
        except FileNotFoundError as error:
            raise NotFoundError(
                f"The report {path} is missing. It may have been pruned; "
                "run the job again with `lhfleet retry` to get a new one."
            ) from error

    def locate(self, ref: str) -> str:
        return str(self._path(ref))

    def _ref(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _path(self, ref: str) -> Path:
        path = (self.root / ref).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise NotFoundError(f"The report reference {ref!r} is outside {self.root}.")
        return path


def _copy_atomic(source: Path, path: Path) -> None:
    """Copy a file into place in chunks, so a reader never sees half of it."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with source.open("rb") as reader, partial.open("wb") as handle:
        shutil.copyfileobj(reader, handle, 1 << 20)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with partial.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)
