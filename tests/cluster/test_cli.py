"""The engine options of the CLI, checked before anything is published."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lhfleet.cli import main
from lhfleet.dispatch.celery.app import create_app
from lhfleet.dispatch.celery.config import ClusterConfig


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for name in ("LHFLEET_ENGINE", "LHFLEET_STORE", "LHFLEET_REPORTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LHFLEET_HOME", str(tmp_path / "home"))
    return CliRunner()


def test_detach_without_cluster_rejected(runner: CliRunner) -> None:
    result = runner.invoke(main, ["run", "http://127.0.0.1:9/", "--detach"])
    assert result.exit_code == 2
    assert "--detach needs --engine celery" in result.output


def test_run_longer_than_visibility_rejected(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LHFLEET_VISIBILITY_TIMEOUT", "100")
    arguments = ["run", "--engine", "celery", "http://127.0.0.1:9/", "--timeout", "120"]
    result = runner.invoke(main, arguments)
    assert result.exit_code == 2
    assert "LHFLEET_VISIBILITY_TIMEOUT" in result.output


def test_unknown_broker_scheme_rejected(runner: CliRunner) -> None:
    arguments = ["run", "--engine", "celery", "--broker", "kafka://h:9092"]
    result = runner.invoke(main, [*arguments, "http://127.0.0.1:9/"])
    assert result.exit_code == 2
    assert "RabbitMQ URL" in result.output


def test_engine_read_from_config_file(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "lhfleet.toml").write_text('engine = "celery"\nbroker = "kafka://h"\n')
    result = runner.invoke(main, ["run", "http://127.0.0.1:9/"])
    assert result.exit_code == 2
    assert "RabbitMQ URL" in result.output


def test_worker_help_hides_stand_in(runner: CliRunner) -> None:
    result = runner.invoke(main, ["worker", "--help"])
    assert result.exit_code == 0
    assert "stand-in" not in result.output


def test_broker_error_names_job_and_fix() -> None:
    app = create_app(ClusterConfig(broker="redis://:secret@127.0.0.1:1/0"))
    error = app.broker_error("publish", ConnectionError("refused."), "job-1")
    assert "lhfleet resume job-1 --engine celery" in str(error)
    assert "secret" not in str(error)
