"""``lhfleet aws`` against moto's server, with the pipeline pumped in between."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from lhfleet.aws.config import AwsClients, AwsConfig
from lhfleet.aws.engine import AwsEngine
from lhfleet.cli import main
from tests.aws.harness import CannedAuditor
from tests.aws.pipeline import build_pipeline


def environment(config: AwsConfig) -> dict[str, str]:
    return {
        "LHFLEET_AWS_JOBS_TABLE": config.jobs_table,
        "LHFLEET_AWS_RUNS_TABLE": config.runs_table,
        "LHFLEET_AWS_HOOKS_TABLE": config.hooks_table,
        "LHFLEET_AWS_BUCKET": config.bucket,
        "LHFLEET_AWS_QUEUE_URL": config.queue_url,
    }


def submit(config: AwsConfig) -> str:
    result = CliRunner().invoke(
        main,
        [
            "aws",
            "submit",
            "http://a.test/",
            "http://b.test/",
            "--runs",
            "2",
            "--no-watch",
        ],
        env=environment(config),
    )
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


def test_submit_then_watch_downloads(
    engine: AwsEngine, clients: AwsClients, tmp_path: Path
) -> None:
    job_id = submit(engine.config)
    pipeline = build_pipeline(engine, clients, CannedAuditor())
    pipeline.run_to_completion(job_id)
    result = CliRunner().invoke(
        main,
        ["aws", "watch", job_id, "--download", str(tmp_path), "--reports", "--json"],
        env=environment(engine.config),
    )
    saved = sorted(path.name for path in (tmp_path / job_id).iterdir())
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["job"]["counts"]["succeeded"] == 4
    assert "results.json" in saved
    assert len(saved) == 9


def test_status_counts(engine: AwsEngine) -> None:
    job_id = submit(engine.config)
    result = CliRunner().invoke(
        main, ["aws", "status", job_id, "--json"], env=environment(engine.config)
    )
    document = json.loads(result.stdout)
    assert document["counts"]["pending"] == 4
    assert document["results_ready"] is False


def test_results_before_completion(engine: AwsEngine) -> None:
    job_id = submit(engine.config)
    result = CliRunner().invoke(
        main, ["aws", "results", job_id], env=environment(engine.config)
    )
    assert result.exit_code == 2
    assert "has no results yet" in result.output


def test_submit_invalid_url_writes_nothing(engine: AwsEngine) -> None:
    result = CliRunner().invoke(
        main, ["aws", "submit", "notaurl", "--no-watch"], env=environment(engine.config)
    )
    assert result.exit_code == 2
    assert "has no scheme" in result.output
    assert engine.store.list_jobs() == []


def test_missing_bucket_named(engine: AwsEngine) -> None:
    env = environment(engine.config) | {"LHFLEET_AWS_BUCKET": ""}
    result = CliRunner().invoke(main, ["aws", "status", "x"], env=env)
    assert result.exit_code == 2
    assert "LHFLEET_AWS_BUCKET not set" in result.output
