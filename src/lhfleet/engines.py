"""Choosing an engine's adapters from options and ``LHFLEET_*`` variables.

The CLI and the HTTP server build their job store, report store and
dispatcher here, so that the same settings reach the same engine:

    setting       option      variable         default
    engine        --engine    LHFLEET_ENGINE   local
    job store     --store     LHFLEET_STORE    SQLite in the data directory
    report store  --reports   LHFLEET_REPORTS  reports/ in the data directory
    broker        --broker    LHFLEET_BROKER   redis://127.0.0.1:6379/0
    data folder   --data-dir  LHFLEET_HOME     ./.lhfleet

An option wins over its variable. Celery and boto3 are imported only when
an engine or store needs them, so the local engine runs without them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lhfleet import service
from lhfleet.errors import InvalidSettingError
from lhfleet.ports import ReportStore
from lhfleet.reports.local import LocalReportStore
from lhfleet.store.sql import SqlJobStore, sqlite_url

if TYPE_CHECKING:
    from lhfleet.dispatch.celery.app import EngineApp, WorkerContext
    from lhfleet.dispatch.celery.config import ClusterConfig

ENGINES = ("local", "celery")
INSTALL_CLUSTER = "Install the cluster extra: pip install 'lhfleet[cluster]'."
_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
}


@dataclass(frozen=True)
class EngineSpec:
    """The engine that runs jobs, and the stores and broker that jobs use."""

    engine: str
    data_dir: Path
    store: str | None = None
    reports: str | None = None
    broker: str | None = None

    @classmethod
    def resolve(
        cls,
        engine: str | None = None,
        store: str | None = None,
        reports: str | None = None,
        broker: str | None = None,
        data_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> EngineSpec:
        """Combine options with the environment; options win."""
        env = os.environ if environ is None else environ
        name = (engine or env.get("LHFLEET_ENGINE") or "local").lower()
        if name not in ENGINES:
            raise InvalidSettingError(
                f"--engine is {name!r}; use one of {', '.join(ENGINES)} "
                "(or set LHFLEET_ENGINE)."
            )
        home = data_dir or Path(env.get("LHFLEET_HOME") or service.DEFAULT_DATA_DIR)
        return cls(
            engine=name,
            data_dir=home.expanduser().resolve(),
            store=store or env.get("LHFLEET_STORE") or None,
            reports=reports or env.get("LHFLEET_REPORTS") or None,
            broker=broker or env.get("LHFLEET_BROKER") or None,
        )

    @property
    def distributed(self) -> bool:
        """True when workers elsewhere run the job; the caller only submits."""
        return self.engine != "local"

    @property
    def store_url(self) -> str:
        """The SQLAlchemy URL of the job store (psycopg 3 for PostgreSQL)."""
        if self.store is None:
            return sqlite_url(self.data_dir / "lhfleet.db")
        return normalize_store_url(self.store)


def normalize_store_url(text: str) -> str:
    """Return a SQLAlchemy URL for a store given as a URL or a SQLite file path."""
    scheme, separator, rest = text.partition("://")
    if not separator:
        return sqlite_url(Path(text).expanduser().resolve())
    if scheme in _DRIVERS:
        return f"{_DRIVERS[scheme]}://{rest}"
    if scheme.startswith(("sqlite", "postgresql+")):
        return text
    raise InvalidSettingError(
        f"--store has the scheme {scheme!r}; use postgresql://USER@HOST/DATABASE, "
        "sqlite:///PATH or a file path (or set LHFLEET_STORE)."
    )


def open_reports(spec: EngineSpec) -> ReportStore:
    """Return the report store: a folder, or an S3 bucket for ``s3://`` URLs."""
    where = spec.reports
    if where is None:
        return LocalReportStore(spec.data_dir / "reports")
    if where.startswith("s3://"):
        try:
            from lhfleet.reports.s3 import S3ReportStore  # noqa: PLC0415
        except ImportError as error:
            raise InvalidSettingError(
                f"--reports {where} needs boto3, which is missing. {INSTALL_CLUSTER}"
            ) from error
        return S3ReportStore.from_url(where)
    if "://" in where and not where.startswith("file://"):
        raise InvalidSettingError(
            f"--reports is {where!r}; use a folder, file:///PATH or "
            "s3://BUCKET/PREFIX (or set LHFLEET_REPORTS)."
        )
    return LocalReportStore(Path(where.removeprefix("file://")).expanduser())


def open_workspace(spec: EngineSpec) -> service.Workspace:
    """Open the job store and report store that ``spec`` names."""
    scratch = spec.data_dir / "scratch"
    try:
        scratch.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidSettingError(
            f"Cannot create the data directory {spec.data_dir}: {error.strerror}. "
            "Pass a writable folder with --data-dir or LHFLEET_HOME."
        ) from error
    if spec.store is None and spec.reports is None:
        return service.Workspace.open(spec.data_dir)
    reports = open_reports(spec)
    store = SqlJobStore(spec.store_url)
    return service.Workspace(spec.data_dir, store, reports, scratch)


def cluster_config(spec: EngineSpec, queue: str | None = None) -> ClusterConfig:
    """Return the Celery engine's settings: the broker, the queue, the timings."""
    try:
        from lhfleet.dispatch.celery.config import ClusterConfig  # noqa: PLC0415
    except ImportError as error:
        raise InvalidSettingError(
            f"--engine celery needs Celery, which is missing. {INSTALL_CLUSTER}"
        ) from error
    return ClusterConfig.from_env(broker=spec.broker, queue=queue)


def cluster_app(
    spec: EngineSpec,
    queue: str | None = None,
    context_factory: Callable[[], WorkerContext] | None = None,
) -> EngineApp:
    """Return the Celery app of the cluster engine that ``spec`` names."""
    config = cluster_config(spec, queue)
    from lhfleet.dispatch.celery.app import create_app  # noqa: PLC0415

    return create_app(config, context_factory)
