"""The S3 report store against moto's standalone server on loopback."""

from __future__ import annotations

import gzip

import boto3
import pytest

from lhfleet.errors import InvalidSettingError, NotFoundError, StoreError
from lhfleet.reports.s3 import S3ReportStore, parse_s3_url

JOB = "20260101-000000-abcdef"
RUN = f"{JOB}-0-0"


@pytest.fixture
def store(bucket: str) -> S3ReportStore:
    return S3ReportStore.from_url(f"s3://{bucket}/team/reports")


def test_parse_url_splits_bucket_and_prefix() -> None:
    assert parse_s3_url("s3://my-bucket/a/b/") == ("my-bucket", "a/b/")


def test_parse_url_without_prefix() -> None:
    assert parse_s3_url("s3://my-bucket") == ("my-bucket", "")


def test_parse_url_rejects_other_scheme() -> None:
    with pytest.raises(InvalidSettingError, match="s3://BUCKET"):
        parse_s3_url("gs://bucket")


def test_parse_url_rejects_bad_bucket() -> None:
    with pytest.raises(InvalidSettingError, match="not a valid S3 bucket"):
        parse_s3_url("s3://Bad_Bucket/x")


def test_report_keys_sit_under_prefix(store: S3ReportStore) -> None:
    json_key, html_key = store.put_report(JOB, RUN, 2, b"{}", "<html>")
    assert json_key == f"team/reports/{JOB}/{RUN}.a2.report.json.gz"
    assert html_key == f"team/reports/{JOB}/{RUN}.a2.report.html"


def test_json_report_stored_gzipped(store: S3ReportStore, bucket: str) -> None:
    json_key, _ = store.put_report(JOB, RUN, 1, b'{"a": 1}', "<html>")
    body = boto3.client("s3").get_object(Bucket=bucket, Key=json_key)["Body"].read()
    assert gzip.decompress(body) == b'{"a": 1}'


def test_read_json_round_trips(store: S3ReportStore) -> None:
    json_key, _ = store.put_report(JOB, RUN, 1, b'{"a": 1}', "<html>")
    assert store.read_json(json_key) == b'{"a": 1}'


def test_read_missing_report_raises_not_found(store: S3ReportStore) -> None:
    with pytest.raises(NotFoundError, match="is missing"):
        store.read_json("team/reports/nothing.json.gz")


def test_locate_gives_s3_url(store: S3ReportStore, bucket: str) -> None:
    assert store.locate("k/x.html") == f"s3://{bucket}/k/x.html"


def test_summary_written_and_found(store: S3ReportStore) -> None:
    store.put_summary(JOB, b"{}")
    assert store.has_summary(JOB)


def test_summary_absent_before_completion(store: S3ReportStore) -> None:
    assert not store.has_summary(JOB)


def test_delete_job_removes_every_object(store: S3ReportStore, bucket: str) -> None:
    store.put_report(JOB, RUN, 1, b"{}", "<html>")
    store.put_summary(JOB, b"{}")
    store.delete_job(JOB)
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket)
    assert listing.get("KeyCount") == 0


def test_missing_bucket_raises_store_error(moto_endpoint: str) -> None:
    store = S3ReportStore("no-such-bucket-here", "")
    with pytest.raises(StoreError, match="NoSuchBucket"):
        store.put_summary(JOB, b"{}")


def test_unsafe_run_id_rejected(store: S3ReportStore) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        store.put_report(JOB, "../x", 1, b"{}", "<html>")
