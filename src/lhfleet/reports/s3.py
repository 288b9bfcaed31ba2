"""Reports in any S3-compatible bucket: ``s3://bucket/prefix/<job>/<run>.a<n>.*``.

The endpoint, region and credentials come from the standard AWS
configuration (environment, shared config files, instance roles), so
``AWS_ENDPOINT_URL`` points this store at MinIO, Ceph or a local emulator.
References are object keys; ``locate`` turns them into ``s3://`` URLs.
"""

from __future__ import annotations

import gzip
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError

from lhfleet.errors import InvalidSettingError, NotFoundError, StoreError
from lhfleet.ports import ReportStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

logger = logging.getLogger(__name__)

SCHEME = "s3://"
SUMMARY_NAME = "results.json"
MISSING_CODES = ("NoSuchKey", "404", "NotFound")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def parse_s3_url(url: str) -> tuple[str, str]:
    """Split ``s3://bucket/some/prefix`` into the bucket and ``some/prefix/``."""
    if not url.startswith(SCHEME):
        raise InvalidSettingError(
            f"--reports is {url!r}, which is not an s3:// URL. Write "
            "s3://BUCKET or s3://BUCKET/PREFIX."
        )
    bucket, _, prefix = url[len(SCHEME) :].partition("/")
    if not _BUCKET.match(bucket):
        raise InvalidSettingError(
            f"--reports names the bucket {bucket!r}, which is not a valid S3 "
            "bucket name (3 to 63 lower-case letters, digits, dots and hyphens)."
        )
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def default_client() -> S3Client:
    """Return an S3 client from the standard AWS configuration, with retries."""
    import boto3  # noqa: PLC0415 - costly import, needed once
    from botocore.config import Config  # noqa: PLC0415

    config = Config(retries={"mode": "standard", "max_attempts": 8})
    return boto3.client("s3", config=config)


class S3ReportStore(ReportStore):
    """Gzipped JSON and plain HTML reports, one object each, under a prefix."""

    def __init__(self, bucket: str, prefix: str = "", client: S3Client | None = None):
        self.bucket = bucket
        self.prefix = prefix
        self.client = client or default_client()

    @classmethod
    def from_url(cls, url: str, client: S3Client | None = None) -> S3ReportStore:
        bucket, prefix = parse_s3_url(url)
        return cls(bucket, prefix, client)

    def put_report(
        self,
        job_id: str,
        run_id: str,
        attempt: int,
        report_json: bytes,
        report_html: str,
    ) -> tuple[str, str]:
        stem = f"{self.job_folder(job_id)}{_safe(run_id)}.a{attempt}.report"
        json_key = f"{stem}.json.gz"
        html_key = f"{stem}.html"
        self._put(json_key, gzip.compress(report_json, 6), "application/gzip")
        self._put(html_key, report_html.encode("utf-8"), "text/html; charset=utf-8")
        logger.debug("stored reports of run %s in s3://%s", run_id, self.bucket)
        return json_key, html_key

    def put_summary(self, job_id: str, body: bytes) -> str:
        key = self.summary_key(job_id)
        self._put(key, body, "application/json")
        return key

    def put_summary_file(self, job_id: str, path: Path) -> str:
        key = self.summary_key(job_id)
        try:
            self.client.upload_file(
                str(path),
                self.bucket,
                key,
                ExtraArgs={"ContentType": "application/json"},
            )
        except (BotoCoreError, ClientError, S3UploadFailedError) as error:
            raise self._error("write", key, error) from error
        return key

    def has_summary(self, job_id: str) -> bool:
        """Tell whether the job's results document has been written."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.summary_key(job_id))
        except (BotoCoreError, ClientError) as error:
            if _error_code(error) in MISSING_CODES:
                return False
            raise self._error("read", self.summary_key(job_id), error) from error
        return True

    def delete_job(self, job_id: str) -> None:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(
                Bucket=self.bucket, Prefix=self.job_folder(job_id)
            ):
                keys: list[ObjectIdentifierTypeDef] = [
                    {"Key": entry["Key"]} for entry in page.get("Contents", [])
                ]
                if keys:
                    self.client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                    )
        except (BotoCoreError, ClientError) as error:
            raise self._error("delete the reports of job", job_id, error) from error
        logger.info("deleted the reports of job %s in s3://%s", job_id, self.bucket)

    def read_json(self, ref: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=ref)
            data = response["Body"].read()
        except (BotoCoreError, ClientError) as error:
            if _error_code(error) in MISSING_CODES:
                raise NotFoundError(
                    f"{self.locate(ref)} is missing. It may have been pruned or "
                    "expired; run the job again with `lhfleet retry` for a new one."
                ) from error
            raise self._error("read", ref, error) from error
        return gzip.decompress(data) if ref.endswith(".gz") else data

    def locate(self, ref: str) -> str:
        return f"{SCHEME}{self.bucket}/{ref}"

    def job_folder(self, job_id: str) -> str:
        return f"{self.prefix}{_safe(job_id)}/"

    def summary_key(self, job_id: str) -> str:
        return f"{self.job_folder(job_id)}{SUMMARY_NAME}"

    def _put(self, key: str, body: bytes, content_type: str) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType=content_type
            )
        except (BotoCoreError, ClientError) as error:
            raise self._error("write", key, error) from error

    def _error(self, action: str, what: str, error: Exception) -> StoreError:
        return StoreError(
            f"S3 could not {action} {what} in bucket {self.bucket}: "
            f"{_error_code(error) or type(error).__name__}: {error}. Check the "
            "bucket name in --reports or LHFLEET_REPORTS, the endpoint "
            "(AWS_ENDPOINT_URL) and the credentials' permissions on the bucket."
        )


def _error_code(error: Exception) -> str | None:
    response: Any = getattr(error, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


def _safe(name: str) -> str:
    if not _SAFE_NAME.match(name):
        raise ValueError(f"unsafe name for a report key: {name!r}")
    return name
