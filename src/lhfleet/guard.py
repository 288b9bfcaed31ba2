"""The network guard: which addresses a server may make a browser load.

A service that audits any URL it is given would otherwise load its own
network's pages, admin consoles and the cloud metadata service. The guard
resolves a URL's host and rejects it when any of its addresses falls in a
blocked range. The rules, in the order they are checked:

=================  ==========================================================
rule               ranges
=================  ==========================================================
cloud-metadata     169.254.169.254, 169.254.170.2, 169.254.170.23,
                   100.100.100.200, 192.0.0.192, fd00:ec2::254, fd00:ec2::23
link-local         169.254.0.0/16, fe80::/10
unspecified        0.0.0.0/8, ::/128 (Linux connects 0.0.0.0 to loopback)
multicast          224.0.0.0/4, ff00::/8
loopback           127.0.0.0/8, ::1
private            10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7
non-global         any other address that ``ipaddress`` finds is not global
=================  ==========================================================

``GuardPolicy.allowed_networks`` lifts the last three rules for the
addresses it contains. The first four are strict: an allowed network lifts
them only when it lies inside the rule's own range, so ``0.0.0.0/0`` opens
the private ranges but never the metadata service, and
``169.254.169.254/32`` must be named to reach it.

IPv6 addresses that carry an IPv4 address (IPv4-mapped, IPv4-compatible,
NAT64 ``64:ff9b::/96``, 6to4 and Teredo) are checked for both.

What is enforced where: ``check_target`` before a URL is queued;
``lhfleet.guard_proxy.GuardProxy`` for every request the browser makes,
redirects included, and it connects to the address it checked, so a DNS
answer that changes between check and connection is not followed;
``check_report`` after a run, over the URLs in the Lighthouse result.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from lhfleet.errors import InvalidSettingError, TargetRejected
from lhfleet.inputs.normalize import URLProblem, normalize_url

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]
"""Return the addresses of a host name for a port, as strings."""


@dataclass(frozen=True)
class Rule:
    """A named set of blocked ranges."""

    name: str
    networks: tuple[IPNetwork, ...]
    strict: bool
    """Whether only an allowed network inside these ranges lifts the rule."""

    def matches(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def lifted_by(self, network: IPNetwork) -> bool:
        if not self.strict:
            return True
        return any(
            network.version == own.version and network.subnet_of(own)  # type: ignore[arg-type]
            for own in self.networks
        )


def _networks(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


RULES = (
    Rule(
        "cloud-metadata",
        _networks(
            "169.254.169.254/32",
            "169.254.170.2/32",
            "169.254.170.23/32",
            "100.100.100.200/32",
            "192.0.0.192/32",
            "fd00:ec2::254/128",
            "fd00:ec2::23/128",
        ),
        strict=True,
    ),
    Rule("link-local", _networks("169.254.0.0/16", "fe80::/10"), strict=True),
    Rule("unspecified", _networks("0.0.0.0/8", "::/128"), strict=True),
    Rule("multicast", _networks("224.0.0.0/4", "ff00::/8"), strict=True),
    Rule("loopback", _networks("127.0.0.0/8", "::1/128"), strict=False),
    Rule(
        "private",
        _networks(
            "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"
        ),
        strict=False,
    ),
)
NON_GLOBAL = "non-global"
RULE_NAMES = (*(rule.name for rule in RULES), NON_GLOBAL)

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class GuardPolicy:
    """The networks the guard lets through besides public addresses."""

    allowed_networks: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str]) -> GuardPolicy:
        """Build a policy from ``--allow-target`` values such as ``10.0.0.0/8``."""
        networks = []
        for cidr in cidrs:
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError as error:
                raise InvalidSettingError(
                    f"--allow-target {cidr!r} is not an IP network ({error}). "
                    "Write an address or a CIDR range, such as 10.1.0.0/16 or ::1."
                ) from error
        return cls(tuple(networks))

    def blocking_rule(self, address: IPAddress) -> str | None:
        """Return the name of the rule that blocks an address, or None."""
        blocked = self.blocking(address)
        return blocked[0] if blocked else None

    def blocking(self, address: IPAddress) -> tuple[str, IPAddress] | None:
        """Return the rule that blocks an address and the address it judged.

        The judged address is the IPv4 one inside an IPv6 address when that
        is the one blocked.
        """
        for checked in _with_embedded(address):
            rule = self._blocking_rule(checked)
            if rule:
                return rule, checked
        return None

    def _blocking_rule(self, address: IPAddress) -> str | None:
        allowing = [net for net in self.allowed_networks if address in net]
        for rule in RULES:
            if rule.matches(address) and not any(map(rule.lifted_by, allowing)):
                return rule.name
        if not address.is_global and not allowing and not _matched(address):
            return NON_GLOBAL
        return None


def _matched(address: IPAddress) -> bool:
    return any(rule.matches(address) for rule in RULES)


def _with_embedded(address: IPAddress) -> list[IPAddress]:
    """Return the addresses to judge: an IPv6 one and the IPv4 one it carries.

    An IPv4-mapped address is the IPv4 host itself, so only that is judged.
    """
    if isinstance(address, ipaddress.IPv4Address):
        return [address]
    if address.ipv4_mapped:
        return [address.ipv4_mapped]
    found: list[IPAddress] = [address]
    if address.sixtofour:
        found.append(address.sixtofour)
    if address.teredo:
        found.extend(address.teredo)
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    elif 1 < int(address) < 2**32:
        found.append(ipaddress.IPv4Address(int(address)))
    return found


def system_resolver(host: str, port: int) -> list[str]:
    """Return the addresses the system resolver gives for a host."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def describe(rule: str) -> str:
    """Return the ranges of a rule, for messages."""
    for known in RULES:
        if known.name == rule:
            return ", ".join(str(network) for network in known.networks)
    return "addresses that are not publicly routable"


def rejection(url: str, host: str, address: str, rule: str) -> TargetRejected:
    """Build the error for a URL whose host resolves into a blocked range."""
    via = "is" if host == address else f"resolves to {address}, which is"
    strict = any(known.name == rule and known.strict for known in RULES)
    advice = (
        f"A broad --allow-target does not lift the {rule} rule; only a range inside "
        f"it does, such as --allow-target {address}."
        if strict
        else f"If this server may audit it, pass --allow-target {address}."
    )
    reason = (
        f"its host {host} {via} in a blocked range "
        f"(rule {rule}: {describe(rule)}). {advice}"
    )
    return _rejected(url, reason, rule, address)


def _rejected(url: str, reason: str, rule: str, address: str = "") -> TargetRejected:
    return TargetRejected(
        f"The network guard rejected {url}: {reason}",
        url=url,
        rule=rule,
        address=address,
        reason=reason,
    )


def host_and_port(url: str) -> tuple[str, int]:
    """Return the normalized host (IPv6 without brackets) and port of a URL."""
    try:
        parts = urlsplit(normalize_url(url))
    except URLProblem as problem:
        raise _rejected(url[:200], f"it {problem}.", "invalid-url") from problem
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "", port


def check_addresses(
    url: str, host: str, addresses: Sequence[str], policy: GuardPolicy
) -> list[IPAddress]:
    """Return the parsed addresses, or raise TargetRejected if any is blocked.

    Every address must pass, because the browser may connect to any of them.
    """
    parsed = [ipaddress.ip_address(address.split("%", 1)[0]) for address in addresses]
    for address in parsed:
        blocked = policy.blocking(address)
        if blocked:
            rule, judged = blocked
            logger.info("guard rejected %s (%s, rule %s)", url, judged, rule)
            raise rejection(url, host, str(judged), rule)
    return parsed


def resolve(host: str, port: int, resolver: Resolver | None = None) -> list[str]:
    """Return the addresses of a host (an IP literal is its own address)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    return list((resolver or system_resolver)(host, port))


def check_target(
    url: str, policy: GuardPolicy, resolver: Resolver | None = None
) -> list[IPAddress]:
    """Resolve a URL's host and return its addresses, or raise TargetRejected."""
    host, port = host_and_port(url)
    try:
        addresses = resolve(host, port, resolver)
    except OSError as error:
        reason = f"its host {host} could not be resolved ({error}). Check the name."
        raise _rejected(url, reason, "unresolved") from error
    if not addresses:
        raise _rejected(url, f"its host {host} has no address.", "unresolved")
    return check_addresses(url, host, addresses, policy)


class TargetChecker:
    """``check_target`` with one resolution per host and port, for long lists."""

    def __init__(self, policy: GuardPolicy, resolver: Resolver | None = None) -> None:
        self.policy = policy
        self.resolver = resolver
        self._verdicts: dict[tuple[str, int], TargetRejected | None] = {}

    def __call__(self, url: str) -> str | None:
        """Return why the guard rejects a URL, or None when it passes."""
        verdict = self.verdict(url)
        if verdict is None:
            return None
        return f"is rejected by the network guard: {verdict.reason}"

    def verdict(self, url: str) -> TargetRejected | None:
        """Return the guard's rejection of a URL, or None when it passes."""
        try:
            key = host_and_port(url)
        except TargetRejected as error:
            return error
        if key not in self._verdicts:
            try:
                check_target(url, self.policy, self.resolver)
                self._verdicts[key] = None
            except TargetRejected as error:
                self._verdicts[key] = error
        return self._verdicts[key]


UNGUARDED_FLAG_PREFIXES = (
    "--proxy-server",
    "--proxy-pac-url",
    "--proxy-bypass-list",
    "--no-proxy-server",
    "--proxy-auto-detect",
    "--host-resolver-rules",
    "--host-rules",
    "--force-webrtc-ip-handling-policy",
    "--webrtc-ip-handling-policy",
)


def check_chrome_flags(flags: Iterable[str]) -> None:
    """Raise InvalidSettingError for Chrome flags that would route around the guard."""
    for flag in flags:
        if flag.split("=", 1)[0].lower() in UNGUARDED_FLAG_PREFIXES:
            raise InvalidSettingError(
                f"The Chrome flag {flag.split('=', 1)[0]} changes how the browser "
                "reaches the network, which the guard controls. Remove it, or run "
                "without the guard."
            )


def report_urls(lhr: dict[str, Any]) -> list[str]:
    """Return every http(s) URL that a Lighthouse result lists as requested.

    These are the requested, main-document and final URLs, and each request
    of the ``network-requests`` audit, redirect hops included. That audit is
    part of the performance category, so without it only the first three are
    known.
    """
    urls = [lhr.get(key) for key in ("requestedUrl", "mainDocumentUrl", "finalUrl")] + [
        lhr.get("finalDisplayedUrl")
    ]
    audit = (lhr.get("audits") or {}).get("network-requests") or {}
    items = (audit.get("details") or {}).get("items") or []
    urls += [item.get("url") for item in items if isinstance(item, dict)]
    seen: dict[str, None] = {}
    for url in urls:
        if isinstance(url, str) and url.lower().startswith(("http://", "https://")):
            seen.setdefault(url, None)
    return list(seen)


def check_report(
    lhr: dict[str, Any], policy: GuardPolicy, resolver: Resolver | None = None
) -> list[TargetRejected]:
    """Return a rejection per host of the result's requests that the guard blocks.

    Run after an audit: a non-empty list means the page reached a blocked
    range (through a redirect, say), and the run's report should be dropped.
    Hosts are resolved again, so a host whose DNS answer changed since the
    request may pass here; the guard proxy is what prevents those requests.
    """
    checker = TargetChecker(policy, resolver)
    found: dict[str, TargetRejected] = {}
    for url in report_urls(lhr):
        verdict = checker.verdict(url)
        if verdict is not None:
            found.setdefault(f"{verdict.rule} {verdict.address}", verdict)
    return list(found.values())
