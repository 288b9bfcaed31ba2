"""Submit requests: parsing the handler's event and rejecting bad input early."""

from __future__ import annotations

from typing import Any

import pytest

from lhfleet.aws.engine import AwsEngine
from lhfleet.aws.submit import parse_request, parse_settings, submit_job
from lhfleet.errors import InvalidSettingError, InvalidURLError
from lhfleet.models import JobSecrets, JobSettings, Target


def test_parse_request_reads_targets() -> None:
    targets, settings, secrets, hooks = parse_request(
        {
            "urls": ["http://a.test/"],
            "targets": [{"url": "http://b.test/", "label": "b", "meta": {"k": 1}}],
            "settings": {"runs": 2, "categories": "performance,seo"},
            "extra_headers": {"Cookie": "x=1"},
            "hooks": ["https://hooks.test/done"],
        }
    )
    assert targets == [
        Target("http://a.test/"),
        Target("http://b.test/", "b", {"k": 1}),
    ]
    assert settings.runs == 2
    assert settings.categories == ("performance", "seo")
    assert secrets.extra_headers == {"Cookie": "x=1"}
    assert hooks == ["https://hooks.test/done"]


def test_parse_settings_unknown_key() -> None:
    with pytest.raises(InvalidSettingError, match="Unknown settings colour"):
        parse_settings({"colour": "red"})


def test_parse_settings_rejects_guard() -> None:
    with pytest.raises(InvalidSettingError, match="not support the settings guard"):
        parse_settings({"guard": True})


def test_parse_settings_bad_number() -> None:
    with pytest.raises(InvalidSettingError, match="Invalid settings"):
        parse_settings({"runs": "many"})


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"urls": "http://a.test/"}, "urls must be a list"),
        ({"targets": [{"label": "x"}]}, "needs a url string"),
        ({"urls": ["http://a.test/"], "extra_headers": {"a": 1}}, "extra_headers"),
    ],
    ids=["urls-not-list", "target-without-url", "header-not-string"],
)
def test_parse_request_rejects(event: dict[str, Any], error: str) -> None:
    with pytest.raises((InvalidSettingError, InvalidURLError), match=error):
        parse_request(event)


@pytest.mark.parametrize(
    ("targets", "settings", "hooks", "error"),
    [
        ([], JobSettings(), [], "No URLs"),
        ([Target("ftp://a.test/")], JobSettings(), [], "only http and https"),
        ([Target("http://a.test/")], JobSettings(runs=0), [], "--runs is 0"),
        ([Target("http://a.test/")], JobSettings(), ["nope"], "Hook 'nope'"),
        (
            [Target("http://a.test/")],
            JobSettings(),
            ["http://169.254.169.254/latest"],
            "link-local",
        ),
    ],
    ids=["empty", "bad-scheme", "zero-runs", "bad-hook", "metadata-hook"],
)
def test_submit_rejects_before_writing(
    engine: AwsEngine,
    targets: list[Target],
    settings: JobSettings,
    hooks: list[str],
    error: str,
) -> None:
    with pytest.raises((InvalidSettingError, InvalidURLError), match=error):
        submit_job(engine, targets, settings, JobSecrets(), hooks, "test")
    assert engine.store.list_jobs() == []
    queue = engine.clients.sqs.get_queue_attributes(
        QueueUrl=engine.config.queue_url,
        AttributeNames=["ApproximateNumberOfMessages"],
    )
    assert queue["Attributes"]["ApproximateNumberOfMessages"] == "0"
