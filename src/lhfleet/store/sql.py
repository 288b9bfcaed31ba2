"""The job store on SQL: SQLite for the embedded default, PostgreSQL for clusters.

Every state change of a run is one conditional UPDATE, so a duplicate
delivery, a dead worker or two drivers of one job cannot settle a run twice.
The job's counters change in the same transaction as the run they count,
and the UPDATE that completes the job runs under the job row's lock.
"""

from __future__ import annotations

import logging
import secrets as secrets_module
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, Row

from lhfleet.errors import NotFoundError, StoreError
from lhfleet.lhr import ReportFacts
from lhfleet.models import (
    Job,
    JobSecrets,
    JobSettings,
    JobState,
    Run,
    RunState,
    Target,
    run_id,
)
from lhfleet.ports import Failure, JobStore, Settlement
from lhfleet.stats import needs_more_runs
from lhfleet.store.schema import jobs, runs

logger = logging.getLogger(__name__)

INSERT_BATCH = 500
MIGRATIONS = Path(__file__).parent / "migrations"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


class SqlJobStore(JobStore):
    """A JobStore on any database SQLAlchemy Core reaches (SQLite, PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _make_engine(url)
        self._migrate()

    def close(self) -> None:
        self.engine.dispose()

    def create_job(
        self,
        settings: JobSettings,
        secrets: JobSecrets,
        targets: Iterable[Target | str],
    ) -> Job:
        job_id = new_job_id()
        created = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                jobs.insert().values(
                    id=job_id,
                    state=JobState.RUNNING.value,
                    settings=settings.to_dict(),
                    secrets=secrets.to_dict(),
                    created_at=created,
                    total=0,
                )
            )
            total = self._insert_runs(conn, job_id, settings.runs, targets)
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(total=total))
        logger.info("created job %s with %d runs", job_id, total)
        return self.get_job(job_id)

    def _insert_runs(
        self,
        conn: Connection,
        job_id: str,
        count: int,
        targets: Iterable[Target | str],
    ) -> int:
        batch: list[dict[str, Any]] = []
        total = 0
        for url_index, target in enumerate(targets):
            entry = Target(target) if isinstance(target, str) else target
            for index in range(count):
                batch.append(_new_run(job_id, url_index, entry, index))
            if len(batch) >= INSERT_BATCH:
                conn.execute(runs.insert(), batch)
                total += len(batch)
                batch = []
        if batch:
            conn.execute(runs.insert(), batch)
            total += len(batch)
        return total

    def get_job(self, job_id: str) -> Job:
        with self.engine.connect() as conn:
            row = conn.execute(jobs.select().where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFoundError(
                f"No job {job_id!r} in {self._where()}. "
                "Run `lhfleet jobs` to list the jobs there, or pass the data "
                "directory the job was created in with --data-dir."
            )
        return _job(row)

    def list_jobs(self, limit: int = 50, offset: int = 0) -> list[Job]:
        query = (
            jobs.select()
            .order_by(jobs.c.created_at.desc(), jobs.c.id)
            .limit(limit)
            .offset(offset)
        )
        with self.engine.connect() as conn:
            return [_job(row) for row in conn.execute(query)]

    def get_secrets(self, job_id: str) -> JobSecrets:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(jobs.c.secrets).where(jobs.c.id == job_id)
            ).scalar()
        return JobSecrets.from_dict(value)

    def iter_runs(self, job_id: str) -> Iterator[Run]:
        query = (
            runs.select()
            .where(runs.c.job_id == job_id)
            .order_by(runs.c.url_index, runs.c.run_index)
        )
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=INSERT_BATCH).execute(query)
            for row in result:
                yield _run(row)

    def get_run(self, run_id: str) -> Run:
        with self.engine.connect() as conn:
            row = conn.execute(runs.select().where(runs.c.id == run_id)).first()
        if row is None:
            raise NotFoundError(
                f"No run {run_id!r} in {self._where()}. Run `lhfleet results JOB` "
                "to list the runs of a job."
            )
        return _run(row)

    def claim_next(
        self, job_id: str, owner: str, lease_seconds: float, now: float
    ) -> Run | None:
        candidate = (
            sa.select(runs.c.id)
            .where(runs.c.job_id == job_id, _due(now))
            .order_by(runs.c.run_index, runs.c.url_index)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        return self._lease(runs.c.id == candidate, owner, lease_seconds, now)

    def claim(
        self, run_id: str, owner: str, lease_seconds: float, now: float
    ) -> Run | None:
        return self._lease(runs.c.id == run_id, owner, lease_seconds, now)

    def _lease(
        self, which: sa.ColumnElement[bool], owner: str, lease: float, now: float
    ) -> Run | None:
        statement = (
            runs.update()
            .where(which, _due(now))
            .values(
                state=RunState.RUNNING.value,
                lease_owner=owner,
                lease_expires=now + lease,
                attempts=runs.c.attempts + 1,
                started_at=now,
            )
            .returning(*runs.c)
        )
        with self.engine.begin() as conn:
            row = conn.execute(statement).first()
        return None if row is None else _run(row)

    def record_success(
        self,
        run_id: str,
        owner: str,
        facts: ReportFacts,
        report_json: str,
        report_html: str,
        now: float,
    ) -> Settlement:
        values = {
            "state": RunState.SUCCEEDED.value,
            "error_code": None,
            "error_message": None,
            "stderr_tail": None,
            "facts": _facts_dict(facts),
            "report_json": report_json,
            "report_html": report_html,
        }
        return self._settle(run_id, owner, values, jobs.c.succeeded, now)

    def record_failure(
        self, run_id: str, owner: str, failure: Failure, now: float
    ) -> Settlement:
        values: dict[str, Any] = {
            "error_code": failure.code,
            "error_message": failure.message,
            "stderr_tail": failure.stderr_tail or None,
            "facts": _facts_dict(failure.facts) if failure.facts else None,
            "report_json": failure.report_json,
            "report_html": failure.report_html,
        }
        if failure.retry_at is not None:
            values |= {"state": RunState.QUEUED.value, "not_before": failure.retry_at}
            return self._settle(run_id, owner, values, None, now)
        values["state"] = RunState.FAILED.value
        return self._settle(run_id, owner, values, jobs.c.failed, now)

    def _settle(
        self,
        run_id: str,
        owner: str,
        values: dict[str, Any],
        counter: sa.Column[Any] | None,
        now: float,
    ) -> Settlement:
        settled = counter is not None
        if settled:
            values["finished_at"] = now
        statement = (
            runs.update()
            .where(
                runs.c.id == run_id,
                runs.c.state == RunState.RUNNING.value,
                runs.c.lease_owner == owner,
            )
            .values(lease_owner=None, lease_expires=None, **values)
            .returning(runs.c.job_id, runs.c.url_index)
        )
        with self.engine.begin() as conn:
            row = conn.execute(statement).first()
            if row is None:
                return Settlement(recorded=False, settled=False, completed_job=False)
            if counter is None:
                return Settlement(recorded=True, settled=False, completed_job=False)
            job_id, url_index = row
            settings = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values({counter.name: counter + 1})
                .returning(jobs.c.settings)
            ).scalar_one()
            added = self._add_run_if_noisy(conn, job_id, url_index, settings)
            completed = self._complete_if_done(conn, job_id, now)
        return Settlement(
            recorded=True, settled=True, completed_job=completed, added_run=added
        )

    def _add_run_if_noisy(
        self, conn: Connection, job_id: str, url_index: int, settings: dict[str, Any]
    ) -> str | None:
        """Queue one more run of a URL of an adaptive job that is still too noisy.

        Runs in the settling transaction, after the job row's counter update
        has locked it, and before the completion check: a job can never be
        completed by the settle that adds a run. The new run's id is
        deterministic, so two racing settles collide on the primary key
        instead of adding two runs; only an insert that happened raises the
        job's total.
        """
        job_settings = JobSettings.from_dict(settings)
        if not job_settings.adaptive:
            return None
        rows = conn.execute(
            runs.select()
            .where(runs.c.job_id == job_id, runs.c.url_index == url_index)
            .order_by(runs.c.run_index)
        ).all()
        url_runs = [_run(row) for row in rows]
        if not needs_more_runs(job_settings, url_runs):
            return None
        first = url_runs[0]
        target = Target(first.url, first.label, first.meta)
        values = _new_run(job_id, url_index, target, url_runs[-1].index + 1)
        insert = _insert_or_ignore(conn).values(values).returning(runs.c.id)
        if conn.execute(insert).scalar() is None:
            return None
        conn.execute(
            jobs.update().where(jobs.c.id == job_id).values(total=jobs.c.total + 1)
        )
        logger.info(
            "job %s: URL %d is over its spread target after %d runs; queued run %s",
            job_id,
            url_index,
            len(url_runs),
            values["id"],
        )
        return str(values["id"])

    @staticmethod
    def _complete_if_done(conn: Connection, job_id: str, now: float) -> bool:
        """Mark the job complete if every run has settled; True for the one writer.

        Runs after the counter update in the same transaction, which holds
        the job row's lock, so two settling writers cannot both see the job
        as unfinished and neither complete it.
        """
        statement = (
            jobs.update()
            .where(
                jobs.c.id == job_id,
                jobs.c.state == JobState.RUNNING.value,
                jobs.c.succeeded + jobs.c.failed >= jobs.c.total,
            )
            .values(state=JobState.COMPLETED.value, finished_at=now)
        )
        return conn.execute(statement).rowcount == 1

    def release(self, run_id: str, owner: str) -> bool:
        statement = (
            runs.update()
            .where(
                runs.c.id == run_id,
                runs.c.state == RunState.RUNNING.value,
                runs.c.lease_owner == owner,
            )
            .values(
                state=RunState.QUEUED.value,
                lease_owner=None,
                lease_expires=None,
                attempts=runs.c.attempts - 1,
            )
        )
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

    def release_owners(self, job_id: str, is_gone: Callable[[str], bool]) -> int:
        with self.engine.connect() as conn:
            leased = conn.execute(
                sa.select(runs.c.id, runs.c.lease_owner).where(
                    runs.c.job_id == job_id, runs.c.state == RunState.RUNNING.value
                )
            ).all()
        released = 0
        for run, owner in leased:
            if owner and is_gone(owner) and self.release(run, owner):
                logger.info("released run %s left by %s", run, owner)
                released += 1
        return released

    def abandon(self, job_id: str, failure: Failure, now: float) -> Settlement:
        with self.engine.begin() as conn:
            count = conn.execute(
                runs.update()
                .where(runs.c.job_id == job_id, runs.c.state == RunState.QUEUED.value)
                .values(
                    state=RunState.FAILED.value,
                    error_code=failure.code,
                    error_message=failure.message,
                    finished_at=now,
                )
            ).rowcount
            if not count:
                return Settlement(recorded=False, settled=False, completed_job=False)
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(failed=jobs.c.failed + count)
            )
            completed = self._complete_if_done(conn, job_id, now)
        return Settlement(recorded=True, settled=True, completed_job=completed)

    def delete_jobs(self, created_before: float) -> list[str]:
        with self.engine.begin() as conn:
            doomed = list(
                conn.execute(
                    sa.select(jobs.c.id).where(jobs.c.created_at < created_before)
                ).scalars()
            )
            if doomed:
                conn.execute(runs.delete().where(runs.c.job_id.in_(doomed)))
                conn.execute(jobs.delete().where(jobs.c.id.in_(doomed)))
        return doomed

    def requeue_failed(self, job_id: str, now: float) -> int:
        with self.engine.begin() as conn:
            count = conn.execute(
                runs.update()
                .where(runs.c.job_id == job_id, runs.c.state == RunState.FAILED.value)
                .values(
                    state=RunState.QUEUED.value,
                    attempts=0,
                    not_before=now,
                    finished_at=None,
                )
            ).rowcount
            if count:
                conn.execute(
                    jobs.update()
                    .where(jobs.c.id == job_id)
                    .values(
                        failed=jobs.c.failed - count,
                        state=JobState.RUNNING.value,
                        finished_at=None,
                    )
                )
        return int(count)

    def next_due(self, job_id: str) -> float | None:
        queued = sa.select(sa.func.min(runs.c.not_before)).where(
            runs.c.job_id == job_id, runs.c.state == RunState.QUEUED.value
        )
        leased = sa.select(sa.func.min(runs.c.lease_expires)).where(
            runs.c.job_id == job_id, runs.c.state == RunState.RUNNING.value
        )
        with self.engine.connect() as conn:
            times = [conn.execute(queued).scalar(), conn.execute(leased).scalar()]
        present = [float(value) for value in times if value is not None]
        return min(present) if present else None

    def _migrate(self) -> None:
        from alembic import command  # noqa: PLC0415 - costly import, needed once
        from alembic.config import Config  # noqa: PLC0415

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except sa.exc.SQLAlchemyError as error:
            raise StoreError(
                f"Could not open or upgrade the job store at {self._where()}: "
                f"{error.__class__.__name__}: {error}. Check that the "
                "database is reachable and writable."
            ) from error

    def _where(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)


def new_job_id() -> str:
    """Return a new job id: sortable by creation time, unique across hosts."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets_module.token_hex(3)}"


def _make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"timeout": 60})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Take the write lock at the start, so two writers never deadlock
        # upgrading from a read lock.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _insert_or_ignore(conn: Connection) -> Any:
    """Return an INSERT into runs that does nothing when the run id exists."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(runs).on_conflict_do_nothing(index_elements=[runs.c.id])


def _due(now: float) -> sa.ColumnElement[bool]:
    queued = sa.and_(runs.c.state == RunState.QUEUED.value, runs.c.not_before <= now)
    lapsed = sa.and_(runs.c.state == RunState.RUNNING.value, runs.c.lease_expires < now)
    return sa.or_(queued, lapsed)


def _new_run(job_id: str, url_index: int, target: Target, index: int) -> dict[str, Any]:
    return {
        "id": run_id(job_id, url_index, index),
        "job_id": job_id,
        "url_index": url_index,
        "url": target.url,
        "label": target.label,
        "meta": target.meta,
        "run_index": index,
        "state": RunState.QUEUED.value,
        "attempts": 0,
        "not_before": 0.0,
    }


def _facts_dict(facts: ReportFacts) -> dict[str, Any]:
    return {
        "scores": facts.scores,
        "metrics": facts.metrics,
        "benchmark_index": facts.benchmark_index,
        "lighthouse_version": facts.lighthouse_version,
        "final_url": facts.final_url,
        "warnings": facts.warnings,
        "conditions": facts.conditions,
    }


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _job(row: Row[Any]) -> Job:
    return Job(
        id=row.id,
        state=JobState(row.state),
        settings=JobSettings.from_dict(row.settings),
        created_at=datetime.fromtimestamp(row.created_at, UTC),
        finished_at=_time(row.finished_at),
        total=row.total,
        succeeded=row.succeeded,
        failed=row.failed,
    )


def _run(row: Row[Any]) -> Run:
    facts = row.facts or {}
    return Run(
        id=row.id,
        job_id=row.job_id,
        url_index=row.url_index,
        url=row.url,
        index=row.run_index,
        state=RunState(row.state),
        attempts=row.attempts,
        error_code=row.error_code,
        error_message=row.error_message,
        stderr_tail=row.stderr_tail,
        scores=facts.get("scores") or {},
        metrics=facts.get("metrics") or {},
        benchmark_index=facts.get("benchmark_index"),
        lighthouse_version=facts.get("lighthouse_version"),
        final_url=facts.get("final_url"),
        warnings=facts.get("warnings") or [],
        conditions=facts.get("conditions") or {},
        report_json=row.report_json,
        report_html=row.report_html,
        started_at=_time(row.started_at),
        finished_at=_time(row.finished_at),
        label=row.label,
        meta=row.meta,
    )
