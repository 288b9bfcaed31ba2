"""Reports in an S3 bucket: ``reports/<job id>/<run id>.a<attempt>.report.*``.

References are object keys; ``locate`` turns them into ``s3://`` URLs. The
bucket's lifecycle rule (in the template) expires everything under
``reports/``, so reports follow the same retention as the job items.
"""

from __future__ import annotations

import gzip
import logging
import re
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from lhfleet.errors import AwsServiceError, NotFoundError
from lhfleet.ports import ReportStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

logger = logging.getLogger(__name__)

PREFIX = "reports/"
SUMMARY_NAME = "results.json"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


class S3ReportStore(ReportStore):
    """Gzipped JSON and plain HTML reports, one object each, in one bucket."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def put_report(
        self,
        job_id: str,
        run_id: str,
        attempt: int,
        report_json: bytes,
        report_html: str,
    ) -> tuple[str, str]:
        stem = f"{job_folder(job_id)}{_safe(run_id)}.a{attempt}.report"
        json_key = f"{stem}.json.gz"
        html_key = f"{stem}.html"
        self._put(json_key, gzip.compress(report_json, 6), "application/gzip")
        self._put(html_key, report_html.encode("utf-8"), "text/html; charset=utf-8")
        logger.debug("stored reports of run %s in s3://%s", run_id, self.bucket)
        return json_key, html_key

    def put_summary(self, job_id: str, body: bytes) -> str:
        key = summary_key(job_id)
        self._put(key, body, "application/json")
        return key

    def delete_job(self, job_id: str) -> None:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(
                Bucket=self.bucket, Prefix=job_folder(job_id)
            ):
                keys: list[ObjectIdentifierTypeDef] = [
                    {"Key": entry["Key"]} for entry in page.get("Contents", [])
                ]
                if keys:
                    self.client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                    )
        except ClientError as error:
            raise self._error("delete the reports of job", job_id, error) from error

    def read_json(self, ref: str) -> bytes:
        data = self.read(ref)
        return gzip.decompress(data) if ref.endswith(".gz") else data

    def read(self, key: str) -> bytes:
        """Return an object's bytes as stored; raise NotFoundError if it is missing."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            return response["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise NotFoundError(
                    f"s3://{self.bucket}/{key} is missing. Reports expire with the "
                    "bucket's lifecycle rule; run the job again for new ones."
                ) from error
            raise self._error("read", key, error) from error

    def locate(self, ref: str) -> str:
        return f"s3://{self.bucket}/{ref}"

    def _put(self, key: str, body: bytes, content_type: str) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType=content_type
            )
        except ClientError as error:
            raise self._error("write", key, error) from error

    def _error(self, action: str, what: str, error: ClientError) -> AwsServiceError:
        details = error.response.get("Error", {})
        return AwsServiceError(
            f"S3 could not {action} {what} in bucket {self.bucket}: "
            f"{details.get('Code')}: {details.get('Message')}. Check "
            "LHFLEET_AWS_BUCKET and the caller's permissions on it."
        )


def job_folder(job_id: str) -> str:
    return f"{PREFIX}{_safe(job_id)}/"


def summary_key(job_id: str) -> str:
    return f"{job_folder(job_id)}{SUMMARY_NAME}"


def _safe(name: str) -> str:
    if not _SAFE_NAME.match(name):
        raise ValueError(f"unsafe name for a report key: {name!r}")
    return name
