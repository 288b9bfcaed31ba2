"""Choosing adapters from options and LHFLEET_* variables; the cluster's timings."""

from __future__ import annotations

from pathlib import Path

import pytest

from lhfleet import engines
from lhfleet.dispatch.celery.app import celery_settings
from lhfleet.dispatch.celery.config import ClusterConfig
from lhfleet.errors import InvalidSettingError
from lhfleet.models import JobSettings
from lhfleet.reports.local import LocalReportStore
from lhfleet.reports.s3 import S3ReportStore


def resolve(**options: str | None) -> engines.EngineSpec:
    environ = {key: value for key, value in options.items() if key.isupper() and value}
    given = {key: value for key, value in options.items() if key.islower()}
    return engines.EngineSpec.resolve(environ=environ, **given)  # type: ignore[arg-type]


def test_engine_defaults_to_local() -> None:
    assert resolve().engine == "local"


def test_engine_read_from_environment() -> None:
    assert resolve(LHFLEET_ENGINE="celery").engine == "celery"


def test_option_wins_over_environment() -> None:
    spec = resolve(engine="local", LHFLEET_ENGINE="celery")
    assert spec.engine == "local"


def test_unknown_engine_rejected() -> None:
    with pytest.raises(InvalidSettingError, match="use one of local, celery"):
        resolve(engine="spark")


def test_store_read_from_environment() -> None:
    spec = resolve(LHFLEET_STORE="postgresql://db/lh")
    assert spec.store_url == "postgresql+psycopg://db/lh"


def test_default_store_is_sqlite_in_data_dir(tmp_path: Path) -> None:
    spec = engines.EngineSpec.resolve(data_dir=tmp_path, environ={})
    assert spec.store_url == f"sqlite:///{tmp_path.resolve()}/lhfleet.db"


def test_store_path_becomes_sqlite_url(tmp_path: Path) -> None:
    url = engines.normalize_store_url(str(tmp_path / "jobs.db"))
    assert url == f"sqlite:///{tmp_path.resolve()}/jobs.db"


def test_postgres_scheme_gets_psycopg_driver() -> None:
    url = engines.normalize_store_url("postgres://u@h:5432/d")
    assert url == "postgresql+psycopg://u@h:5432/d"


def test_unknown_store_scheme_rejected() -> None:
    with pytest.raises(InvalidSettingError, match="postgresql://USER@HOST"):
        engines.normalize_store_url("mysql://h/d")


def test_reports_default_to_data_dir(tmp_path: Path) -> None:
    spec = engines.EngineSpec.resolve(data_dir=tmp_path, environ={})
    reports = engines.open_reports(spec)
    assert isinstance(reports, LocalReportStore)


def test_reports_s3_url_opens_s3_store(tmp_path: Path, moto_endpoint: str) -> None:
    spec = engines.EngineSpec.resolve(
        reports="s3://bucket-a/pre", data_dir=tmp_path, environ={}
    )
    reports = engines.open_reports(spec)
    assert isinstance(reports, S3ReportStore)
    assert (reports.bucket, reports.prefix) == ("bucket-a", "pre/")


def test_reports_other_scheme_rejected(tmp_path: Path) -> None:
    spec = engines.EngineSpec.resolve(
        reports="ftp://x/y", data_dir=tmp_path, environ={}
    )
    with pytest.raises(InvalidSettingError, match="s3://BUCKET/PREFIX"):
        engines.open_reports(spec)


def test_cluster_config_reads_timings() -> None:
    config = ClusterConfig.from_env({"LHFLEET_VISIBILITY_TIMEOUT": "90"})
    assert config.visibility_timeout == 90


def test_cluster_config_rejects_negative_timing() -> None:
    with pytest.raises(InvalidSettingError, match="LHFLEET_LEASE_MARGIN"):
        ClusterConfig.from_env({"LHFLEET_LEASE_MARGIN": "-1"})


def test_cluster_config_rejects_unknown_broker() -> None:
    with pytest.raises(InvalidSettingError, match="Redis URL"):
        ClusterConfig.from_env({}, broker="kafka://h:9092")


def test_broker_password_masked() -> None:
    config = ClusterConfig(broker="amqp://user:secret@h:5672//")
    assert "secret" not in config.broker_display


def test_stale_after_defaults_to_visibility_timeout() -> None:
    assert ClusterConfig(visibility_timeout=70).stale_seconds == 70


def test_lease_outlasts_deadline() -> None:
    config = ClusterConfig(lease_margin=60)
    assert config.lease_seconds(JobSettings(timeout=120)) == 185


def test_run_longer_than_visibility_timeout_rejected() -> None:
    config = ClusterConfig(visibility_timeout=100)
    with pytest.raises(InvalidSettingError, match="LHFLEET_VISIBILITY_TIMEOUT"):
        config.check_settings(JobSettings(timeout=120))


def test_celery_acknowledges_late() -> None:
    settings = celery_settings(ClusterConfig())
    assert settings["task_acks_late"]
    assert settings["task_reject_on_worker_lost"]


def test_redis_visibility_timeout_passed_to_celery() -> None:
    settings = celery_settings(ClusterConfig(visibility_timeout=77))
    assert settings["broker_transport_options"] == {"visibility_timeout": 77}


def test_rabbitmq_gets_no_redis_options() -> None:
    settings = celery_settings(ClusterConfig(broker="amqp://guest@h//"))
    assert "broker_transport_options" not in settings
