"""The ledger of hook deliveries on DynamoDB: the hooks table, conditional writes.

A job's deliveries and their attempts share its partition (``job_id``); the
sort key ``entry`` is ``delivery#INDEX`` or ``attempt#INDEX#NUMBER``. Every
change of a delivery's state is an UpdateItem conditioned on the state and
lease holder it was read with, as the SQL ledger's UPDATE is. So two
invocations that complete the same job, such as a retried stream record
and the sweep, cannot both fire one hook. An attempt is recorded in one
transaction with the delivery's counter, under the same lease condition.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from lhfleet.aws.config import AwsConfig
from lhfleet.aws.expressions import Update, condition_arguments
from lhfleet.aws.items import attrs, plain
from lhfleet.aws.store import DynamoJobStore, write_transaction
from lhfleet.errors import AwsServiceError, NotFoundError
from lhfleet.models import JobState
from lhfleet.ports import DeliveryAttempt, HookDelivery, HookLedger
from lhfleet.store.hook_ledger import (
    DELIVERED,
    DELIVERING,
    FAILED,
    OWED,
    PENDING,
    delivery_id,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

DELIVERY_PREFIX = "delivery#"
ATTEMPT_PREFIX = "attempt#"
_ID_SEPARATOR = "-hook"


def delivery_entry(index: int) -> str:
    """Return the sort key of a job's delivery of hook ``index``."""
    return f"{DELIVERY_PREFIX}{index:03d}"


def attempt_entry(index: int, number: int) -> str:
    """Return the sort key of attempt ``number`` at hook ``index``."""
    return f"{ATTEMPT_PREFIX}{index:03d}#{number:04d}"


def parse_delivery_id(text: str) -> tuple[str, int]:
    """Split a delivery id (``JOB-hookINDEX``) into its job id and hook index.

    Raises NotFoundError for a string that is not a delivery id.
    """
    job_id, separator, index = text.rpartition(_ID_SEPARATOR)
    if not job_id or not separator or not index.isdigit():
        raise NotFoundError(
            f"{text!r} is not a hook delivery id; delivery ids read JOB-hookINDEX."
        )
    return job_id, int(index)


class DynamoHookLedger(HookLedger):
    """A HookLedger on the hooks table; it reads job states from the job store."""

    def __init__(
        self, client: DynamoDBClient, config: AwsConfig, jobs: DynamoJobStore
    ) -> None:
        self.client = client
        self.config = config
        self.jobs = jobs

    def add_hooks(
        self, job_id: str, specs: Sequence[dict[str, Any]], now: float
    ) -> list[HookDelivery]:
        """Record the hooks a job owes as pending deliveries; return them all.

        A delivery that is already recorded is kept as it is, so calling
        this again for a job (a completion that runs twice) changes nothing.
        """
        expires = self.config.expires_at(now)
        added = 0
        for index, spec in enumerate(specs):
            values: dict[str, Any] = {
                "job_id": job_id,
                "entry": delivery_entry(index),
                "id": delivery_id(job_id, index),
                "hook_index": index,
                "spec": json.dumps(dict(spec)),
                "state": PENDING,
                "attempts": 0,
                "created_at": now,
            }
            if expires is not None:
                values["expires_at"] = expires
            added += self._put_new(values)
        if added:
            logger.info(
                "job %s: recorded %d hooks to fire on completion", job_id, added
            )
        return self.deliveries(job_id)

    def deliveries(self, job_id: str) -> list[HookDelivery]:
        return [_delivery(values) for values in self._entries(job_id, DELIVERY_PREFIX)]

    def attempts(self, job_id: str) -> list[DeliveryAttempt]:
        found = [_attempt(values) for values in self._entries(job_id, ATTEMPT_PREFIX)]
        return sorted(found, key=lambda attempt: (attempt.started_at, attempt.number))

    def claim_next(
        self,
        job_id: str,
        owner: str,
        lease_seconds: float,
        now: float,
        is_gone: Callable[[str], bool],
    ) -> HookDelivery | None:
        if not self._completed(job_id):
            return None
        for values in self._entries(job_id, DELIVERY_PREFIX):
            if values["state"] not in OWED:
                continue
            holder = values.get("lease_owner")
            lapsed = float(values.get("lease_expires") or now) < now
            gone = holder is not None and is_gone(str(holder))
            if values["state"] == DELIVERING and not (lapsed or gone):
                continue
            claimed = self._lease(values, owner, now + lease_seconds)
            if claimed is None:
                continue
            if values["state"] == DELIVERING:
                logger.warning(
                    "job %s: hook delivery %s was left by %s; delivering it again",
                    job_id,
                    values["id"],
                    holder,
                )
            return claimed
        return None

    def record_attempt(
        self, attempt: DeliveryAttempt, owner: str, lease_until: float
    ) -> bool:
        job_id, index = parse_delivery_id(attempt.delivery_id)
        update = Update(
            set={"last_error": attempt.error, "lease_expires": lease_until},
            add={"attempts": 1},
            condition="#state = :delivering AND #lease_owner = :owner",
            values={"delivering": DELIVERING, "owner": owner},
        )
        record: dict[str, Any] = {
            "job_id": job_id,
            "entry": attempt_entry(index, attempt.number),
            "delivery_id": attempt.delivery_id,
            "number": attempt.number,
            "started_at": attempt.started_at,
            "duration": attempt.duration,
            "ok": attempt.ok,
            "status_code": attempt.status_code,
            "error": attempt.error,
        }
        expires = self.config.expires_at(attempt.started_at)
        if expires is not None:
            record["expires_at"] = expires
        items: list[Any] = [
            {
                "Update": {
                    "TableName": self.config.hooks_table,
                    "Key": _key(job_id, delivery_entry(index)),
                    **update.arguments(),
                }
            },
            {
                "Put": {
                    "TableName": self.config.hooks_table,
                    "Item": attrs(record),
                    "ConditionExpression": "attribute_not_exists(#entry)",
                    "ExpressionAttributeNames": {"#entry": "entry"},
                }
            },
        ]
        return write_transaction(self.client, items, f"hook {attempt.delivery_id}")

    def finish(
        self,
        delivery_id: str,
        owner: str,
        delivered: bool,
        error: str | None,
        now: float,
    ) -> bool:
        job_id, index = parse_delivery_id(delivery_id)
        update = Update(
            set={
                "state": DELIVERED if delivered else FAILED,
                "last_error": error,
                "delivered_at": now if delivered else None,
            },
            remove=("lease_owner", "lease_expires"),
            condition="#state = :delivering AND #lease_owner = :owner",
            values={"delivering": DELIVERING, "owner": owner},
        )
        return self._update(job_id, delivery_entry(index), update) is not None

    def redeliver_failed(self, job_id: str) -> int:
        again = Update(
            set={"state": PENDING},
            condition="#state = :failed",
            values={"failed": FAILED},
        )
        count = 0
        for values in self._entries(job_id, DELIVERY_PREFIX):
            if values["state"] == FAILED:
                count += self._update(job_id, values["entry"], again) is not None
        logger.info(
            "job %s: %d failed hook deliveries made pending again", job_id, count
        )
        return count

    def jobs_owing(self) -> list[str]:
        # NOTE: this Scan reads the whole hooks table. No function of the
        # engine calls it, because the sweep finds unfinished completions
        # on the jobs table's sweep index.
        condition = "#state IN (:pending, :delivering)"
        arguments: dict[str, Any] = {
            "TableName": self.config.hooks_table,
            "FilterExpression": condition,
            **condition_arguments(
                condition, {"pending": PENDING, "delivering": DELIVERING}
            ),
        }
        owing: set[str] = set()
        while True:
            response = self._call("Scan", self.client.scan, **arguments)
            owing |= {str(plain(item)["job_id"]) for item in response.get("Items", [])}
            if "LastEvaluatedKey" not in response:
                break
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return sorted(job_id for job_id in owing if self._completed(job_id))

    def _completed(self, job_id: str) -> bool:
        try:
            values = self.jobs.job_values(job_id)
        except NotFoundError:
            return False
        return bool(values.get("state") == JobState.COMPLETED.value)

    def _entries(self, job_id: str, prefix: str) -> list[dict[str, Any]]:
        condition = "#job_id = :job_id AND begins_with(#entry, :prefix)"
        arguments: dict[str, Any] = {
            "TableName": self.config.hooks_table,
            "KeyConditionExpression": condition,
            "ConsistentRead": True,
            **condition_arguments(condition, {"job_id": job_id, "prefix": prefix}),
        }
        found: list[dict[str, Any]] = []
        while True:
            response = self._call("Query", self.client.query, **arguments)
            found += [plain(item) for item in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                return found
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _lease(
        self, seen: Mapping[str, Any], owner: str, expires: float
    ) -> HookDelivery | None:
        holder = seen.get("lease_owner")
        same_holder = (
            "attribute_not_exists(#lease_owner)"
            if holder is None
            else "#lease_owner = :holder"
        )
        update = Update(
            set={"state": DELIVERING, "lease_owner": owner, "lease_expires": expires},
            condition=f"#state = :seen AND {same_holder}",
            values={"seen": seen["state"], "holder": holder},
        )
        values = self._update(str(seen["job_id"]), str(seen["entry"]), update)
        return None if values is None else _delivery(values)

    def _put_new(self, values: Mapping[str, Any]) -> bool:
        try:
            self.client.put_item(
                TableName=self.config.hooks_table,
                Item=attrs(values),
                ConditionExpression="attribute_not_exists(#entry)",
                ExpressionAttributeNames={"#entry": "entry"},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == (
                "ConditionalCheckFailedException"
            ):
                return False
            raise _service_error("PutItem", error) from error
        return True

    def _update(self, job_id: str, entry: str, update: Update) -> dict[str, Any] | None:
        # The job store's helper retries conflicts with transactions.
        return self.jobs.update_item(
            self.config.hooks_table, _key(job_id, entry), update
        )

    def _call(self, operation: str, method: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except ClientError as error:
            raise _service_error(operation, error) from error


def _key(job_id: str, entry: str) -> dict[str, Any]:
    return dict(attrs({"job_id": job_id, "entry": entry}))


def _delivery(values: Mapping[str, Any]) -> HookDelivery:
    delivered_at = values.get("delivered_at")
    return HookDelivery(
        id=str(values["id"]),
        job_id=str(values["job_id"]),
        index=int(values["hook_index"]),
        spec=dict(json.loads(values["spec"])),
        state=str(values["state"]),
        attempts=int(values.get("attempts", 0)),
        last_error=values.get("last_error"),
        created_at=float(values["created_at"]),
        delivered_at=None if delivered_at is None else float(delivered_at),
    )


def _attempt(values: Mapping[str, Any]) -> DeliveryAttempt:
    status = values.get("status_code")
    return DeliveryAttempt(
        delivery_id=str(values["delivery_id"]),
        number=int(values["number"]),
        started_at=float(values["started_at"]),
        duration=float(values["duration"]),
        ok=bool(values["ok"]),
        status_code=None if status is None else int(status),
        error=values.get("error"),
    )


def _service_error(operation: str, error: ClientError) -> AwsServiceError:
    details = error.response.get("Error", {})
    return AwsServiceError(
        f"DynamoDB {operation} on the hooks table failed: {details.get('Code')}: "
        f"{details.get('Message')}. Check LHFLEET_AWS_HOOKS_TABLE, the region "
        "and the caller's IAM permissions."
    )
