"""The job store on DynamoDB: conditional writes for every state change.

A run settles with one TransactWriteItems: the run's conditional transition
(it must still be leased by the writer) and the job's counters move
together, or neither moves. A duplicate delivery or a worker whose lease
lapsed fails the condition and changes nothing, so the counters stay exact.

Completion is not decided here: ``Settlement.completed_job`` is always
False, because the jobs table's stream handler marks the job complete
with a conditional write of its own (see ``completion``).
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from lhfleet.aws import schema
from lhfleet.aws.config import AwsConfig
from lhfleet.aws.expressions import Update, condition_arguments
from lhfleet.aws.items import attrs, facts_values, job_from, plain, run_from
from lhfleet.errors import AwsServiceError, NotFoundError
from lhfleet.lhr import ReportFacts
from lhfleet.models import Job, JobSecrets, JobSettings, JobState, Run, RunState, Target
from lhfleet.models import run_id as make_run_id
from lhfleet.ports import Failure, JobStore, Settlement
from lhfleet.store.sql import new_job_id

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

BATCH_WRITE = 25
TRANSACTION_ATTEMPTS = 8
TRANSACTION_CONFLICT = "TransactionConflictException"
QUEUED, RUNNING = RunState.QUEUED.value, RunState.RUNNING.value
SUCCEEDED, FAILED = RunState.SUCCEEDED.value, RunState.FAILED.value
LEASED_BY = "#state = :running AND #lease_owner = :owner"
UNSETTLED = "#state IN (:queued, :running)"
DUE = (
    "(#state = :queued AND #not_before <= :now) "
    "OR (#state = :running AND #lease_expires < :now)"
)
ERROR_FIELDS = ("error_code", "error_message", "stderr_tail")
LEASE_FIELDS = ("lease_owner", "lease_expires")
COMPLETION_FIELDS = (
    "finished_at",
    "summary_key",
    "completion_token",
    "announced_at",
    "hooks_fired_at",
)
"""The job attributes that a completion writes and a retry removes."""
REPUBLISH_LEASE = 60.0
"""Seconds a retry's publisher has to send the requeued runs' messages."""
NOT_RECORDED = Settlement(recorded=False, settled=False, completed_job=False)


class DynamoJobStore(JobStore):
    """A JobStore on the jobs and runs tables that ``schema`` describes."""

    def __init__(self, client: DynamoDBClient, config: AwsConfig) -> None:
        self.client = client
        self.config = config

    # Creating jobs

    def create_job(
        self,
        settings: JobSettings,
        secrets: JobSecrets,
        targets: Iterable[Target | str],
        hooks: Sequence[str] = (),
    ) -> Job:
        """Write the runs, then the job item with its total; return the job.

        The job item comes last, so a job is never visible with fewer runs
        than its total. Runs left by a failed submit expire with their TTL.
        """
        job_id = new_job_id()
        now = time.time()
        expires = self.config.expires_at(now)
        url_count, total = self._write_runs(job_id, settings.runs, targets, expires)
        values: dict[str, Any] = {
            "id": job_id,
            "state": JobState.RUNNING.value,
            "settings": settings.to_dict(),
            "secrets": json.dumps(secrets.to_dict()),
            "created_at": now,
            "total": total,
            "url_count": url_count,
            "succeeded": 0,
            "failed": 0,
            "settled": 0,
            "hooks": list(hooks),
            "fanout_published": 0,
            "sweep": schema.SWEEP_OPEN,
        }
        if expires is not None:
            values[schema.TTL_ATTRIBUTE] = expires
        self._call(
            "PutItem",
            self.client.put_item,
            TableName=self.config.jobs_table,
            Item=attrs(values),
            ConditionExpression="attribute_not_exists(#id)",
            ExpressionAttributeNames={"#id": "id"},
        )
        logger.info("created job %s with %d runs", job_id, total)
        return job_from(values)

    def _write_runs(
        self,
        job_id: str,
        runs: int,
        targets: Iterable[Target | str],
        expires: int | None,
    ) -> tuple[int, int]:
        batch: list[dict[str, Any]] = []
        url_count = total = 0
        for url_index, target in enumerate(targets):
            entry = Target(target) if isinstance(target, str) else target
            url_count += 1
            for index in range(runs):
                batch.append(_new_run(job_id, url_index, entry, index, expires))
                if len(batch) == BATCH_WRITE:
                    self._put_batch(batch)
                    total += len(batch)
                    batch = []
        if batch:
            self._put_batch(batch)
            total += len(batch)
        return url_count, total

    def _put_batch(self, items: list[dict[str, Any]]) -> None:
        requests: list[Any] = [{"PutRequest": {"Item": attrs(item)}} for item in items]
        self._batch_write(requests)

    def _batch_write(self, requests: list[Any]) -> None:
        table = self.config.runs_table
        for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
            response = self._call(
                "BatchWriteItem",
                self.client.batch_write_item,
                RequestItems={table: requests},
            )
            requests = list(response.get("UnprocessedItems", {}).get(table, []))
            if not requests:
                return
            logger.info("retrying %d unprocessed run items", len(requests))
            time.sleep(_backoff(attempt))
        raise AwsServiceError(
            f"DynamoDB left {len(requests)} run items of table {table} unprocessed "
            f"after {TRANSACTION_ATTEMPTS} attempts. Raise the table's write "
            "capacity or use on-demand billing, then submit again."
        )

    # Reading

    def job_values(self, job_id: str) -> dict[str, Any]:
        """Return a job's item as plain values; raise NotFoundError if it is missing."""
        response = self._call(
            "GetItem",
            self.client.get_item,
            TableName=self.config.jobs_table,
            Key=attrs({"id": job_id}),
            ConsistentRead=True,
        )
        if "Item" not in response:
            raise NotFoundError(
                f"No job {job_id!r} in DynamoDB table {self.config.jobs_table}. "
                "Check the job id and LHFLEET_AWS_JOBS_TABLE; jobs expire "
                f"{self.config.ttl_days:g} days after they were created."
            )
        return plain(response["Item"])

    def get_job(self, job_id: str) -> Job:
        return job_from(self.job_values(job_id))

    def list_jobs(self, limit: int = 50, offset: int = 0) -> list[Job]:
        # NOTE: a Scan reads the whole jobs table; TTL keeps it short, and
        # listing is an operator's command, not part of running a job.
        found: list[dict[str, Any]] = []
        arguments: dict[str, Any] = {"TableName": self.config.jobs_table}
        while True:
            response = self._call("Scan", self.client.scan, **arguments)
            found += [plain(item) for item in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                break
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        found.sort(key=lambda values: (-values["created_at"], values["id"]))
        return [job_from(values) for values in found[offset : offset + limit]]

    def get_secrets(self, job_id: str) -> JobSecrets:
        return secrets_from(self.job_values(job_id))

    def iter_runs(self, job_id: str) -> Iterator[Run]:
        for values in self.query_runs(job_id):
            yield run_from(values)

    def query_runs(
        self, job_id: str, condition: str = "", values: Mapping[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield a job's run items in URL order, with a consistent read.

        ``condition`` filters them (``#name`` and ``:key`` as in Update).
        """
        arguments: dict[str, Any] = {
            "TableName": self.config.runs_table,
            "KeyConditionExpression": "#job_id = :job_id",
            "ConsistentRead": True,
        }
        arguments |= condition_arguments(
            f"#job_id = :job_id AND ({condition})", {"job_id": job_id, **(values or {})}
        )
        if condition:
            arguments["FilterExpression"] = condition
        while True:
            response = self._call("Query", self.client.query, **arguments)
            for item in response.get("Items", []):
                yield plain(item)
            if "LastEvaluatedKey" not in response:
                return
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def get_run(self, run_id: str) -> Run:
        return run_from(self.run_values(run_id))

    def run_values(self, run_id: str) -> dict[str, Any]:
        """Return a run's item as plain values; raise NotFoundError if it is missing."""
        response = self._call(
            "GetItem",
            self.client.get_item,
            TableName=self.config.runs_table,
            Key=_run_key(run_id),
            ConsistentRead=True,
        )
        if "Item" not in response:
            raise NotFoundError(
                f"No run {run_id!r} in DynamoDB table {self.config.runs_table}. "
                "Run `lhfleet aws results JOB` to list the runs of a job."
            )
        return plain(response["Item"])

    # Leases

    def claim_next(
        self, job_id: str, owner: str, lease_seconds: float, now: float
    ) -> Run | None:
        # NOTE: reads the job's runs to find a due one; the AWS engine never
        # calls it (each message names its run), other dispatchers may.
        due = list(self.query_runs(job_id, DUE, _due_values(now)))
        due.sort(key=lambda values: (values["run_index"], values["url_index"]))
        for values in due:
            run = self.claim(values["run_id"], owner, lease_seconds, now)
            if run is not None:
                return run
        return None

    def claim(
        self, run_id: str, owner: str, lease_seconds: float, now: float
    ) -> Run | None:
        update = Update(
            set={
                "state": RUNNING,
                "lease_owner": owner,
                "lease_expires": now + lease_seconds,
                "started_at": now,
            },
            add={"attempts": 1},
            condition=DUE,
            values=_due_values(now),
        )
        values = self.update_run(run_id, update)
        return None if values is None else run_from(values)

    def release(self, run_id: str, owner: str) -> bool:
        update = Update(
            set={"state": QUEUED},
            remove=LEASE_FIELDS,
            add={"attempts": -1},
            condition=LEASED_BY,
            values={"running": RUNNING, "owner": owner},
        )
        return self.update_run(run_id, update) is not None

    def give_back(self, run_id: str, owner: str, code: str, message: str) -> bool:
        """Return a run to the queue after its worker failed, keeping why.

        Unlike ``release`` the attempt stays counted: it really happened. A
        run that is already queued (released before the error) only gets
        the error noted, so the dead-letter consumer can report it.
        """
        update = Update(
            set={
                "state": QUEUED,
                "not_before": 0,
                "error_code": code,
                "error_message": message,
            },
            remove=LEASE_FIELDS,
            condition=f"({LEASED_BY}) OR #state = :queued",
            values={"running": RUNNING, "owner": owner, "queued": QUEUED},
        )
        return self.update_run(run_id, update) is not None

    def release_owners(self, job_id: str, is_gone: Callable[[str], bool]) -> int:
        released = 0
        for values in self.query_runs(job_id, "#state = :running", _states()):
            owner = values.get("lease_owner")
            if owner and is_gone(owner) and self.release(values["run_id"], owner):
                logger.info("released run %s left by %s", values["run_id"], owner)
                released += 1
        return released

    # Outcomes

    def record_success(
        self,
        run_id: str,
        owner: str,
        facts: ReportFacts,
        report_json: str,
        report_html: str,
        now: float,
    ) -> Settlement:
        update = Update(
            set={
                "state": SUCCEEDED,
                "facts": facts_values(facts),
                "report_json": report_json,
                "report_html": report_html,
                "finished_at": now,
            },
            remove=(*LEASE_FIELDS, *ERROR_FIELDS),
            condition=LEASED_BY,
            values={"running": RUNNING, "owner": owner},
        )
        return self._settle(run_id, update, "succeeded")

    def record_failure(
        self, run_id: str, owner: str, failure: Failure, now: float
    ) -> Settlement:
        values = _failure_values(failure)
        condition_values = {"running": RUNNING, "owner": owner}
        if failure.retry_at is not None:
            values |= {"state": QUEUED, "not_before": failure.retry_at}
            update = Update(
                set=values,
                remove=LEASE_FIELDS,
                condition=LEASED_BY,
                values=condition_values,
            )
            recorded = self.update_run(run_id, update) is not None
            return Settlement(recorded=recorded, settled=False, completed_job=False)
        values |= {"state": FAILED, "finished_at": now}
        update = Update(
            set=values,
            remove=LEASE_FIELDS,
            condition=LEASED_BY,
            values=condition_values,
        )
        return self._settle(run_id, update, "failed")

    def fail_unsettled(self, run_id: str, failure: Failure, now: float) -> Settlement:
        """Settle a run as failed, leased or not, unless it has already settled.

        The dead-letter consumer uses it: by then no worker will record the run.
        """
        update = Update(
            set={**_failure_values(failure), "state": FAILED, "finished_at": now},
            remove=LEASE_FIELDS,
            condition=UNSETTLED,
            values=_states(),
        )
        return self._settle(run_id, update, "failed")

    def abandon(self, job_id: str, failure: Failure, now: float) -> Settlement:
        count = 0
        update = Update(
            set={**_failure_values(failure), "state": FAILED, "finished_at": now},
            condition="#state = :queued",
            values={"queued": QUEUED},
        )
        for values in self.query_runs(job_id, "#state = :queued", _states()):
            count += self._settle(values["run_id"], update, "failed").settled
        settled = count > 0
        return Settlement(recorded=settled, settled=settled, completed_job=False)

    def requeue_failed(
        self, job_id: str, now: float, publisher: str | None = None
    ) -> int:
        """Queue the failed runs again and reopen the job; return how many.

        Each run moves in one transaction with the job's counters, so two
        retries at once requeue and count every run once. The job item gets
        a ``republish`` token: the runs need new messages, which
        ``FanOut.republish`` sends and the sweep sends if no one does. With
        ``publisher`` the caller holds the lease to send them for
        ``REPUBLISH_LEASE`` seconds; without it the next sweep sends them.
        """
        run_update = Update(
            set={"state": QUEUED, "attempts": 0, "not_before": now},
            remove=("finished_at", *ERROR_FIELDS),
            condition="#state = :failed",
            values={"failed": FAILED},
        )
        reopened: dict[str, Any] = {
            "state": JobState.RUNNING.value,
            "sweep": schema.SWEEP_OPEN,
            "republish": uuid.uuid4().hex,
        }
        released: tuple[str, ...] = ("republish_owner", "republish_until")
        if publisher is not None:
            reopened |= {
                "republish_owner": publisher,
                "republish_until": now + REPUBLISH_LEASE,
            }
            released = ()
        job_update = Update(
            set=reopened,
            remove=(*COMPLETION_FIELDS, *released),
            add={"failed": -1, "settled": -1},
            condition="attribute_exists(#id)",
        )
        count = 0
        for values in self.query_runs(job_id, "#state = :failed", _states()):
            count += self._transact(values["run_id"], run_update, job_update)
        if count:
            logger.info("job %s: %d failed runs queued again", job_id, count)
        return count

    def _settle(self, run_id: str, update: Update, counter: str) -> Settlement:
        job_update = Update(
            add={counter: 1, "settled": 1}, condition="attribute_exists(#id)"
        )
        if not self._transact(run_id, update, job_update):
            return NOT_RECORDED
        return Settlement(recorded=True, settled=True, completed_job=False)

    def _transact(self, run_id: str, run_update: Update, job_update: Update) -> bool:
        """Apply both updates or neither; False when the run's condition failed."""
        job_id = schema.parse_run_id(run_id)[0]
        items: list[Any] = [
            {
                "Update": {
                    "TableName": self.config.runs_table,
                    "Key": _run_key(run_id),
                    **run_update.arguments(),
                }
            },
            {
                "Update": {
                    "TableName": self.config.jobs_table,
                    "Key": attrs({"id": job_id}),
                    **job_update.arguments(),
                }
            },
        ]
        return write_transaction(self.client, items, f"run {run_id}")

    def update_run(self, run_id: str, update: Update) -> dict[str, Any] | None:
        """Apply a conditional update to a run; its new values, or None if refused."""
        return self.update_item(self.config.runs_table, _run_key(run_id), update)

    def update_job(self, job_id: str, update: Update) -> dict[str, Any] | None:
        """Apply a conditional update to a job; its new values, or None if refused."""
        return self.update_item(self.config.jobs_table, attrs({"id": job_id}), update)

    def update_item(
        self, table: str, key: Mapping[str, Any], update: Update
    ) -> dict[str, Any] | None:
        """Apply a conditional update to an item; its new values, or None if refused."""
        arguments = update.arguments()
        for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
            try:
                response = self.client.update_item(
                    TableName=table, Key=key, ReturnValues="ALL_NEW", **arguments
                )
                return plain(response.get("Attributes", {}))
            except ClientError as error:
                code = _code(error)
                if code == "ConditionalCheckFailedException":
                    return None
                # DynamoDB rejects a write to an item that an unfinished
                # transaction includes, and botocore does not retry that.
                # The job item is in every run's settling transaction.
                if code != TRANSACTION_CONFLICT or attempt == TRANSACTION_ATTEMPTS:
                    raise _service_error("UpdateItem", error) from error
                logger.info("%s: UpdateItem met a transaction; retrying", table)
                time.sleep(_backoff(attempt))
        return None

    # Housekeeping

    def delete_jobs(self, created_before: float) -> list[str]:
        doomed = [
            job.id
            for job in self.list_jobs(limit=10**9)
            if job.created_at.timestamp() < created_before
        ]
        for job_id in doomed:
            keys = [
                {"DeleteRequest": {"Key": attrs({"job_id": job_id, "seq": v["seq"]})}}
                for v in self.query_runs(job_id)
            ]
            for start in range(0, len(keys), BATCH_WRITE):
                self._batch_write(keys[start : start + BATCH_WRITE])
            self._call(
                "DeleteItem",
                self.client.delete_item,
                TableName=self.config.jobs_table,
                Key=attrs({"id": job_id}),
            )
        return doomed

    def next_due(self, job_id: str) -> float | None:
        times = []
        for values in self.query_runs(job_id, UNSETTLED, _states()):
            due = values.get(
                "not_before" if values["state"] == QUEUED else "lease_expires"
            )
            if due is not None:
                times.append(float(due))
        return min(times) if times else None

    def _call(self, operation: str, method: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except ClientError as error:
            raise _service_error(operation, error) from error


def secrets_from(values: Mapping[str, Any]) -> JobSecrets:
    """Return the secrets stored in a job item's values."""
    return JobSecrets.from_dict(json.loads(values.get("secrets") or "{}"))


def _new_run(
    job_id: str, url_index: int, target: Target, index: int, expires: int | None
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "job_id": job_id,
        "seq": schema.run_seq(url_index, index),
        "run_id": make_run_id(job_id, url_index, index),
        "url_index": url_index,
        "run_index": index,
        "url": target.url,
        "state": QUEUED,
        "attempts": 0,
        "not_before": 0,
    }
    if target.label is not None:
        values["label"] = target.label
    if target.meta is not None:
        values["meta"] = json.dumps(target.meta)
    if expires is not None:
        values[schema.TTL_ATTRIBUTE] = expires
    return values


def _run_key(run_id: str) -> dict[str, Any]:
    try:
        job_id, url_index, index = schema.parse_run_id(run_id)
    except ValueError as error:
        raise NotFoundError(
            f"{run_id!r} is not a run id; run ids read JOB-URLINDEX-RUNINDEX."
        ) from error
    return attrs({"job_id": job_id, "seq": schema.run_seq(url_index, index)})


def _failure_values(failure: Failure) -> dict[str, Any]:
    values: dict[str, Any] = {
        "error_code": failure.code,
        "error_message": failure.message,
        "stderr_tail": failure.stderr_tail or None,
        "report_json": failure.report_json,
        "report_html": failure.report_html,
    }
    if failure.facts is not None:
        values["facts"] = facts_values(failure.facts)
    return values


def _states() -> dict[str, str]:
    return {"queued": QUEUED, "running": RUNNING, "failed": FAILED}


def _due_values(now: float) -> dict[str, Any]:
    return {"queued": QUEUED, "running": RUNNING, "now": now}


def write_transaction(client: DynamoDBClient, items: list[Any], label: str) -> bool:
    """Apply a TransactWriteItems; False when the first item's condition failed.

    Transactions that touch one item conflict with each other, so a
    cancellation for a conflict (not a failed condition) is retried.
    """
    for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
        try:
            client.transact_write_items(TransactItems=items)
            return True
        except ClientError as error:
            reasons = [
                reason.get("Code", "None")
                for reason in error.response.get("CancellationReasons", [])
            ]
            if reasons[:1] == ["ConditionalCheckFailed"]:
                return False
            if not _retryable(error, reasons) or attempt == TRANSACTION_ATTEMPTS:
                raise _service_error("TransactWriteItems", error) from error
            logger.info("%s: transaction cancelled %s; retrying", label, reasons)
            time.sleep(_backoff(attempt))
    return False


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _retryable(error: ClientError, reasons: list[str]) -> bool:
    if _code(error) != "TransactionCanceledException":
        return False
    return any(
        reason in ("TransactionConflict", "ThrottlingError") for reason in reasons
    )


def _backoff(attempt: int) -> float:
    return float(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))


def _service_error(operation: str, error: ClientError) -> AwsServiceError:
    details = error.response.get("Error", {})
    return AwsServiceError(
        f"DynamoDB {operation} failed: {details.get('Code')}: "
        f"{details.get('Message')}. Check the table names (LHFLEET_AWS_JOBS_TABLE, "
        "LHFLEET_AWS_RUNS_TABLE, LHFLEET_AWS_HOOKS_TABLE), the region and the "
        "caller's IAM permissions."
    )
