"""The template, checked offline: cfn-lint, and agreement with the code."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file  # type: ignore[import-untyped]
from cfnlint.decode import decode  # type: ignore[import-untyped]

from lhfleet.aws import schema
from lhfleet.aws.provision import MAX_RECEIVE_COUNT

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, problems = decode(str(TEMPLATE))
    assert not problems
    assert decoded is not None
    return dict(decoded)


def resource(template: dict[str, Any], name: str) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][name]["Properties"]
    return properties


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: body["Properties"]
        for name, body in template["Resources"].items()
        if body["Type"] == "AWS::Serverless::Function"
    }


def test_template_passes_cfn_lint() -> None:
    matches = lint_file(TEMPLATE, config=ManualArgs(regions=["us-east-1"]))
    assert [str(match) for match in matches] == []


def test_jobs_table_matches_schema(template: dict[str, Any]) -> None:
    table = resource(template, "JobsTable")
    assert table["KeySchema"] == schema.JOBS_KEY
    assert table["AttributeDefinitions"] == schema.JOBS_ATTRIBUTES
    assert table["GlobalSecondaryIndexes"] == schema.JOBS_INDEXES
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"


def test_runs_table_matches_schema(template: dict[str, Any]) -> None:
    table = resource(template, "RunsTable")
    assert table["KeySchema"] == schema.RUNS_KEY
    assert table["AttributeDefinitions"] == schema.RUNS_ATTRIBUTES


def test_hooks_table_matches_schema(template: dict[str, Any]) -> None:
    table = resource(template, "HooksTable")
    assert table["KeySchema"] == schema.HOOKS_KEY
    assert table["AttributeDefinitions"] == schema.HOOKS_ATTRIBUTES


def test_completion_may_write_hook_ledger(template: dict[str, Any]) -> None:
    for name in ("CompletionFunction", "SweepFunction"):
        statements = resource(template, name)["Policies"][0]["Statement"]
        granted = [
            statement["Action"]
            for statement in statements
            if statement.get("Resource") == {"Fn::GetAtt": ["HooksTable", "Arn"]}
        ]
        assert granted == [
            ["dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"]
        ], name


@pytest.mark.parametrize("name", ["JobsTable", "RunsTable", "HooksTable"])
def test_tables_expire_items(template: dict[str, Any], name: str) -> None:
    ttl = resource(template, name)["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": schema.TTL_ATTRIBUTE, "Enabled": True}


def test_bucket_expires_reports(template: dict[str, Any]) -> None:
    rules = resource(template, "ReportsBucket")["LifecycleConfiguration"]["Rules"]
    assert rules[0]["Prefix"] == "reports/"
    assert rules[0]["Status"] == "Enabled"


def test_run_queue_redrives_to_dead_letters(template: dict[str, Any]) -> None:
    redrive = resource(template, "RunQueue")["RedrivePolicy"]
    default = template["Parameters"]["MaxReceiveCount"]["Default"]
    assert redrive["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["RunDeadLetterQueue", "Arn"]
    }
    assert default == MAX_RECEIVE_COUNT


def test_function_handlers_exist(template: dict[str, Any]) -> None:
    for name, properties in functions(template).items():
        target = properties["ImageConfig"]["Command"][0]
        module, _, attribute = target.rpartition(".")
        assert callable(getattr(importlib.import_module(module), attribute)), name


def test_worker_reports_partial_batches(template: dict[str, Any]) -> None:
    event = resource(template, "WorkerFunction")["Events"]["Runs"]["Properties"]
    assert event["BatchSize"] == 1
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_worker_concurrency_is_a_setting(template: dict[str, Any]) -> None:
    reserved = resource(template, "WorkerFunction")["ReservedConcurrentExecutions"]
    assert reserved["Fn::If"][1] == {"Ref": "WorkerReservedConcurrency"}


def test_policies_name_no_wildcard_action(template: dict[str, Any]) -> None:
    for name, properties in functions(template).items():
        for policy in properties["Policies"]:
            for statement in policy["Statement"]:
                branches = statement.get("Fn::If", [None, statement, statement])[1:]
                for branch in branches:
                    actions = branch["Action"]
                    listed = actions if isinstance(actions, list) else [actions]
                    assert all("*" not in action for action in listed), name
