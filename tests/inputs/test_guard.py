"""The network guard: rules, DNS resolution, Chrome flags and report checks."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any

import pytest

from lhfleet.errors import InvalidSettingError, TargetRejected
from lhfleet.guard import (
    GuardPolicy,
    TargetChecker,
    check_chrome_flags,
    check_report,
    check_target,
    report_urls,
)

DEFAULT = GuardPolicy()

BLOCKED = [
    ("169.254.169.254", "cloud-metadata"),
    ("fd00:ec2::254", "cloud-metadata"),
    ("100.100.100.200", "cloud-metadata"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "private"),
    ("fd12::1", "private"),
    ("192.0.2.1", "non-global"),
    ("240.0.0.1", "non-global"),
    ("::ffff:169.254.169.254", "cloud-metadata"),
    ("::ffff:127.0.0.1", "loopback"),
    ("64:ff9b::a9fe:a9fe", "cloud-metadata"),
    ("2002:a9fe:a9fe::1", "cloud-metadata"),
    ("::7f00:1", "loopback"),
]


@pytest.mark.parametrize(("address", "rule"), BLOCKED, ids=[b[0] for b in BLOCKED])
def test_default_policy_blocks(address: str, rule: str) -> None:
    assert DEFAULT.blocking_rule(ipaddress.ip_address(address)) == rule


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1111", "8.8.8.8"])
def test_default_policy_passes_public(address: str) -> None:
    assert DEFAULT.blocking_rule(ipaddress.ip_address(address)) is None


def test_allowed_network_lifts_private() -> None:
    policy = GuardPolicy.from_cidrs(["10.0.0.0/8"])
    assert policy.blocking_rule(ipaddress.ip_address("10.1.2.3")) is None


def test_allowed_network_keeps_other_private() -> None:
    policy = GuardPolicy.from_cidrs(["10.0.0.0/8"])
    assert policy.blocking_rule(ipaddress.ip_address("192.168.0.1")) == "private"


def test_allow_all_keeps_metadata_blocked() -> None:
    policy = GuardPolicy.from_cidrs(["0.0.0.0/0", "::/0"])
    address = ipaddress.ip_address("169.254.169.254")
    assert policy.blocking_rule(address) == "cloud-metadata"


def test_allow_all_opens_loopback() -> None:
    policy = GuardPolicy.from_cidrs(["0.0.0.0/0"])
    assert policy.blocking_rule(ipaddress.ip_address("127.0.0.1")) is None


def test_link_local_range_keeps_metadata_blocked() -> None:
    policy = GuardPolicy.from_cidrs(["169.254.0.0/16"])
    address = ipaddress.ip_address("169.254.169.254")
    assert policy.blocking_rule(address) == "cloud-metadata"


def test_named_metadata_address_is_allowed() -> None:
    policy = GuardPolicy.from_cidrs(["169.254.169.254/32"])
    assert policy.blocking_rule(ipaddress.ip_address("169.254.169.254")) is None


def test_mapped_address_follows_ipv4_allowance() -> None:
    policy = GuardPolicy.from_cidrs(["127.0.0.1"])
    assert policy.blocking_rule(ipaddress.ip_address("::ffff:127.0.0.1")) is None


def test_from_cidrs_rejects_garbage() -> None:
    with pytest.raises(
        InvalidSettingError, match=re.escape("'10.0.0.0/33' is not an IP network")
    ):
        GuardPolicy.from_cidrs(["10.0.0.0/33"])


def resolver(table: dict[str, Sequence[str]]) -> Any:
    """Return a fake resolver: a fixed table instead of DNS, for names we own."""

    def resolve(host: str, port: int) -> Sequence[str]:
        if host not in table:
            raise OSError(f"unknown host {host}")
        return table[host]

    return resolve


def test_metadata_url_is_rejected() -> None:
    with pytest.raises(TargetRejected) as caught:
        check_target("http://169.254.169.254/latest/meta-data/", DEFAULT)
    assert caught.value.rule == "cloud-metadata"
    assert "http://169.254.169.254/latest/meta-data/" in str(caught.value)
    assert "rule cloud-metadata" in str(caught.value)


def test_private_address_is_rejected() -> None:
    with pytest.raises(TargetRejected, match="rule private") as caught:
        check_target("http://10.0.0.5:8080/admin", DEFAULT)
    assert caught.value.address == "10.0.0.5"


def test_numeric_host_form_is_rejected() -> None:
    with pytest.raises(TargetRejected, match="rule loopback"):
        check_target("http://2130706433/", DEFAULT)


def test_localhost_is_rejected_after_resolution() -> None:
    with pytest.raises(
        TargetRejected, match="its host localhost resolves to"
    ) as caught:
        check_target("http://localhost:8000/", DEFAULT)
    assert caught.value.rule == "loopback"


def test_name_resolving_to_private_is_rejected() -> None:
    fake = resolver({"intranet.test": ["93.184.216.34", "10.9.8.7"]})
    with pytest.raises(TargetRejected, match=re.escape("resolves to 10.9.8.7")):
        check_target("https://intranet.test/", DEFAULT, fake)


def test_public_name_passes() -> None:
    fake = resolver({"www.test": ["93.184.216.34"]})
    addresses = check_target("https://www.test/", DEFAULT, fake)
    assert addresses == [ipaddress.ip_address("93.184.216.34")]


def test_unresolvable_name_is_rejected() -> None:
    with pytest.raises(TargetRejected, match="could not be resolved") as caught:
        check_target("https://nowhere.test/", DEFAULT, resolver({}))
    assert caught.value.rule == "unresolved"


def test_invalid_url_is_rejected() -> None:
    with pytest.raises(TargetRejected, match="unsupported scheme file"):
        check_target("file:///etc/passwd", DEFAULT)


def test_checker_resolves_each_host_once() -> None:
    calls: list[str] = []

    def counting(host: str, port: int) -> Sequence[str]:
        calls.append(host)
        return ["93.184.216.34"]

    checker = TargetChecker(DEFAULT, counting)
    for path in ("a", "b", "c"):
        assert checker(f"https://www.test/{path}") is None
    assert calls == ["www.test"]


def test_checker_reason_for_plan() -> None:
    reason = TargetChecker(DEFAULT)("http://10.0.0.1/")
    assert reason is not None
    assert reason.startswith("is rejected by the network guard: its host 10.0.0.1 is")


@pytest.mark.parametrize(
    "flag",
    [
        "--proxy-server=http://x:1",
        "--no-proxy-server",
        "--host-resolver-rules=MAP * 1.2.3.4",
        "--proxy-bypass-list=*",
    ],
)
def test_chrome_flags_that_bypass_are_rejected(flag: str) -> None:
    with pytest.raises(InvalidSettingError, match="Remove it"):
        check_chrome_flags(["--headless=new", flag])


def test_other_chrome_flags_pass() -> None:
    check_chrome_flags(["--headless=new", "--window-size=800,600"])


def lhr(*request_urls: str, final: str = "http://www.test/") -> dict[str, Any]:
    items = [{"url": url} for url in request_urls]
    return {
        "requestedUrl": "http://www.test/",
        "mainDocumentUrl": final,
        "finalDisplayedUrl": final,
        "audits": {"network-requests": {"details": {"items": items}}},
    }


def test_report_urls_collects_every_request() -> None:
    result = lhr("http://www.test/", "http://10.0.0.1/x", "data:image/png;base64,AA")
    assert report_urls(result) == ["http://www.test/", "http://10.0.0.1/x"]


def test_report_with_redirect_into_private_range() -> None:
    fake = resolver({"www.test": ["93.184.216.34"]})
    result = lhr(
        "http://www.test/", "http://10.0.0.1/secret", final="http://10.0.0.1/secret"
    )
    found = check_report(result, DEFAULT, fake)
    assert [(rejected.rule, rejected.address) for rejected in found] == [
        ("private", "10.0.0.1")
    ]


def test_report_of_public_page_passes() -> None:
    fake = resolver({"www.test": ["93.184.216.34"], "cdn.test": ["93.184.216.35"]})
    assert (
        check_report(lhr("http://www.test/", "https://cdn.test/a.js"), DEFAULT, fake)
        == []
    )
