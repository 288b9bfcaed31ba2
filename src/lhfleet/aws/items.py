"""Converting between DynamoDB items and the domain's Job and Run.

DynamoDB numbers travel as Decimal; a float becomes a Decimal from its
shortest repr, and NaN or infinity, which DynamoDB rejects, becomes NULL.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from lhfleet.lhr import ReportFacts
from lhfleet.models import Job, JobSettings, JobState, Run, RunState

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

Item = dict[str, "AttributeValueTypeDef"]

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_dynamo(value: Any) -> Any:
    """Return ``value`` with floats as Decimal, ready for the serializer."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): to_dynamo(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_dynamo(item) for item in value]
    return value


def from_dynamo(value: Any) -> Any:
    """Return ``value`` with every Decimal as a float."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {key: from_dynamo(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_dynamo(item) for item in value]
    return value


def attr(value: Any) -> AttributeValueTypeDef:
    """Return one DynamoDB attribute value for a Python value."""
    return _serializer.serialize(to_dynamo(value))


def attrs(values: Mapping[str, Any]) -> Item:
    return {key: attr(value) for key, value in values.items()}


def plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """Return an item (or a stream image) as plain Python values."""
    return {
        key: from_dynamo(_deserializer.deserialize(value))
        for key, value in item.items()
    }


def facts_values(facts: ReportFacts) -> dict[str, Any]:
    return {
        "scores": facts.scores,
        "metrics": facts.metrics,
        "benchmark_index": facts.benchmark_index,
        "lighthouse_version": facts.lighthouse_version,
        "final_url": facts.final_url,
        "warnings": facts.warnings,
        "conditions": facts.conditions,
    }


def job_from(values: Mapping[str, Any]) -> Job:
    return Job(
        id=values["id"],
        state=JobState(values["state"]),
        settings=JobSettings.from_dict(values["settings"]),
        created_at=datetime.fromtimestamp(values["created_at"], UTC),
        finished_at=_time(values.get("finished_at")),
        total=int(values["total"]),
        succeeded=int(values.get("succeeded", 0)),
        failed=int(values.get("failed", 0)),
    )


def run_from(values: Mapping[str, Any]) -> Run:
    facts = values.get("facts") or {}
    meta = values.get("meta")
    return Run(
        id=values["run_id"],
        job_id=values["job_id"],
        url_index=int(values["url_index"]),
        url=values["url"],
        index=int(values["run_index"]),
        state=RunState(values["state"]),
        attempts=int(values.get("attempts", 0)),
        error_code=values.get("error_code"),
        error_message=values.get("error_message"),
        stderr_tail=values.get("stderr_tail"),
        scores=facts.get("scores") or {},
        metrics=facts.get("metrics") or {},
        benchmark_index=facts.get("benchmark_index"),
        lighthouse_version=facts.get("lighthouse_version"),
        final_url=facts.get("final_url"),
        warnings=facts.get("warnings") or [],
        conditions=facts.get("conditions") or {},
        report_json=values.get("report_json"),
        report_html=values.get("report_html"),
        started_at=_time(values.get("started_at")),
        finished_at=_time(values.get("finished_at")),
        label=values.get("label"),
        meta=json.loads(meta) if meta else None,
    )


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)
