"""The DynamoDB layout: two tables, their keys, the sweep index and the TTL.

Jobs table: one item per job, keyed by ``id``. Its counters (``succeeded``,
``failed`` and their sum ``settled``) only move in the same transaction as
the run they count. Its stream (new and old images) drives completion.

Runs table: one item per run, keyed by the job id and ``seq``, a number
derived from the run id (``JOB-URLINDEX-RUNINDEX``). The job id as the
partition key lets the completion read all of a job's runs with a strongly
consistent Query, in URL order, which a global index could not promise.

Hooks table: the ledger of each job's hook deliveries, keyed by the job id
and ``entry`` (``delivery#INDEX`` or ``attempt#INDEX#NUMBER``), so one
consistent Query reads a job's deliveries or their attempts.

The sweep index is sparse: only jobs with unfinished business (fan-out not
done, or results not yet written) carry ``sweep``, so the sweeper reads
those and nothing else.
"""

from __future__ import annotations

from typing import Any

SEQ_PER_URL = 1000
"""Room for run indexes per URL in ``seq``; above service.MAX_RUNS (100)."""

SWEEP_INDEX = "sweep-index"
SWEEP_OPEN = "open"
TTL_ATTRIBUTE = "expires_at"

JOBS_KEY: list[dict[str, str]] = [{"AttributeName": "id", "KeyType": "HASH"}]
JOBS_ATTRIBUTES: list[dict[str, str]] = [
    {"AttributeName": "id", "AttributeType": "S"},
    {"AttributeName": "sweep", "AttributeType": "S"},
    {"AttributeName": "created_at", "AttributeType": "N"},
]
JOBS_INDEXES: list[dict[str, Any]] = [
    {
        "IndexName": SWEEP_INDEX,
        "KeySchema": [
            {"AttributeName": "sweep", "KeyType": "HASH"},
            {"AttributeName": "created_at", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }
]
JOBS_STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}

RUNS_KEY: list[dict[str, str]] = [
    {"AttributeName": "job_id", "KeyType": "HASH"},
    {"AttributeName": "seq", "KeyType": "RANGE"},
]
RUNS_ATTRIBUTES: list[dict[str, str]] = [
    {"AttributeName": "job_id", "AttributeType": "S"},
    {"AttributeName": "seq", "AttributeType": "N"},
]

HOOKS_KEY: list[dict[str, str]] = [
    {"AttributeName": "job_id", "KeyType": "HASH"},
    {"AttributeName": "entry", "KeyType": "RANGE"},
]
HOOKS_ATTRIBUTES: list[dict[str, str]] = [
    {"AttributeName": "job_id", "AttributeType": "S"},
    {"AttributeName": "entry", "AttributeType": "S"},
]


def run_seq(url_index: int, index: int) -> int:
    return url_index * SEQ_PER_URL + index


def parse_run_id(run_id: str) -> tuple[str, int, int]:
    """Split a run id into its job id, URL index and run index.

    Raises ValueError for a string that is not a run id.
    """
    job_id, url_index, index = run_id.rsplit("-", 2)
    if not job_id or int(index) >= SEQ_PER_URL or int(url_index) < 0:
        raise ValueError(f"not a run id: {run_id!r}")
    return job_id, int(url_index), int(index)
