"""Completion hooks: a webhook, a shell command or a Python function per job.

A job's hooks are given at submission (the API's ``hooks``, ``lhfleet run
--hook`` or the config file's ``hooks``) and recorded in the hook ledger.
When the job completes, ``deliver_owed`` leases each owed delivery, fires
it with retries and a backoff, records every attempt and settles the
delivery. A crash before a delivery settles leaves it owed, and the next
``lhfleet resume`` or server start fires it.

Webhooks receive the JSON summary in a POST, signed with HMAC-SHA256 over
the body in ``X-Lhfleet-Signature-256: sha256=<hex>`` when the hook has a
secret. Commands run in ``/bin/sh`` with the summary on stdin and the job
id and results location in their environment. Python hooks are called as
``function(summary)``.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import logging
import os
import random
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from lhfleet import __version__
from lhfleet.errors import InvalidSettingError, TargetRejected
from lhfleet.guard import GuardPolicy, check_target
from lhfleet.owners import current_owner, is_gone
from lhfleet.ports import DeliveryAttempt, HookDelivery, HookLedger
from lhfleet.results import ResultsDigest, urls_without_valid_run

logger = logging.getLogger(__name__)

HOOK_TYPES = ("webhook", "command", "python")
MAX_HOOKS = 10
DEFAULT_RETRIES = 4
MAX_RETRIES = 10
DEFAULT_TIMEOUTS = {"webhook": 10.0, "command": 60.0}
MAX_TIMEOUT = 600.0
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
LEASE_MARGIN = 60.0
FIRST_LEASE = MAX_TIMEOUT + LEASE_MARGIN
"""Seconds a claimed delivery is held before its first attempt is recorded."""
MAX_PAYLOAD_URLS = 1000
OUTPUT_TAIL = 2000

EVENT = "job.completed"
SIGNATURE_HEADER = "X-Lhfleet-Signature-256"
DELIVERY_HEADER = "X-Lhfleet-Delivery"
EVENT_HEADER = "X-Lhfleet-Event"
RETRIED_STATUSES = frozenset({408, 425, 429})
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_KEYS = {
    "webhook": {"type", "url", "secret", "timeout", "retries", "allowed_networks"},
    "command": {"type", "run", "timeout", "retries"},
    "python": {"type", "target", "retries"},
}


@dataclass(frozen=True)
class HookSpec:
    """One hook of a job, checked: what to call and how often to try."""

    type: str
    url: str | None = None
    secret: str | None = field(default=None, repr=False)
    run: str | None = None
    target: str | None = None
    timeout: float | None = None
    retries: int = DEFAULT_RETRIES
    allowed_networks: tuple[str, ...] | None = None
    """For a webhook given to the server: the networks its guard allows
    besides public addresses. None when the webhook is not guarded."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "hook") -> HookSpec:
        """Check a hook given as a mapping; an InvalidSettingError names the field."""
        kind = data.get("type") if isinstance(data, Mapping) else None
        if kind not in HOOK_TYPES:
            raise InvalidSettingError(
                f"{where}.type is {kind!r}; use one of {', '.join(HOOK_TYPES)}."
            )
        unknown = sorted(set(data) - _KEYS[kind])
        if unknown:
            raise InvalidSettingError(
                f"{where} has the unknown key {unknown[0]!r}; a {kind} hook takes "
                f"{', '.join(sorted(_KEYS[kind]))}."
            )
        spec = cls(
            type=kind,
            url=_optional_text(data, "url", where),
            secret=_optional_text(data, "secret", where),
            run=_optional_text(data, "run", where),
            target=_optional_text(data, "target", where),
            timeout=_timeout(data, kind, where),
            retries=_retries(data, where),
            allowed_networks=_networks(data, where),
        )
        spec.check(where)
        return spec

    def check(self, where: str) -> None:
        """Raise InvalidSettingError when the hook's own field is missing or bad."""
        if self.type == "webhook":
            _check_webhook_url(self.url, where)
        elif self.type == "command" and not (self.run or "").strip():
            raise InvalidSettingError(
                f"{where}.run is missing; give the shell command to run."
            )
        elif self.type == "python" and not _TARGET.match(self.target or ""):
            raise InvalidSettingError(
                f"{where}.target is {self.target!r}; give an entry point as "
                "module:function, such as mypackage.notify:job_done."
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the hook as stored in the ledger, secret included."""
        data: dict[str, Any] = {"type": self.type, "retries": self.retries}
        for key in ("url", "secret", "run", "target", "timeout"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.allowed_networks is not None:
            data["allowed_networks"] = list(self.allowed_networks)
        return data

    def public_dict(self) -> dict[str, Any]:
        """Return the hook as the API and CLI show it: the secret left out."""
        data = self.to_dict()
        data.pop("allowed_networks", None)
        if data.pop("secret", None) is not None:
            data["signed"] = True
        return data

    def describe(self) -> str:
        """Return a short label for logs: the type and its URL, command or target."""
        detail = self.url or self.run or self.target or ""
        return f"{self.type} {detail[:120]}"

    @property
    def attempts(self) -> int:
        return self.retries + 1

    @property
    def attempt_timeout(self) -> float:
        return self.timeout or DEFAULT_TIMEOUTS.get(self.type, 60.0)


def _optional_text(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidSettingError(f"{where}.{key} must be a non-empty string.")
    return value


def _timeout(data: Mapping[str, Any], kind: str, where: str) -> float | None:
    value = data.get("timeout")
    if value is None:
        return None
    number = value if isinstance(value, int | float) else None
    if isinstance(value, bool) or number is None or not 0 < number <= MAX_TIMEOUT:
        raise InvalidSettingError(
            f"{where}.timeout is {value!r}; use seconds above 0 and at most "
            f"{MAX_TIMEOUT:g} for a {kind} hook."
        )
    return float(number)


def _retries(data: Mapping[str, Any], where: str) -> int:
    value = data.get("retries", DEFAULT_RETRIES)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSettingError(f"{where}.retries is {value!r}; use a whole number.")
    if not 0 <= value <= MAX_RETRIES:
        raise InvalidSettingError(
            f"{where}.retries is {value}; use a number from 0 to {MAX_RETRIES}."
        )
    return value


def _networks(data: Mapping[str, Any], where: str) -> tuple[str, ...] | None:
    value = data.get("allowed_networks")
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(
        isinstance(item, str) for item in value
    ):
        raise InvalidSettingError(f"{where}.allowed_networks must be a list of CIDRs.")
    GuardPolicy.from_cidrs(value)
    return tuple(value)


def _check_webhook_url(url: str | None, where: str) -> None:
    if url is None:
        raise InvalidSettingError(f"{where}.url is missing; give the URL to POST to.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidSettingError(
            f"{where}.url is {url[:200]!r}; give an http or https URL with a host."
        )
    if parts.username or parts.password:
        raise InvalidSettingError(
            f"{where}.url carries a user name or password; sign the webhook with "
            "a secret instead."
        )


def parse_hook_option(text: str, where: str = "--hook") -> HookSpec:
    """Read a hook from the command line: a JSON object, or TYPE:VALUE.

    ``webhook:URL``, ``command:SHELL COMMAND`` and ``python:MODULE:FUNCTION``
    are short forms; a signed webhook needs the JSON form, which has ``secret``.
    """
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidSettingError(
                f"{where} is not valid JSON ({error.msg} at position {error.pos}). "
                'Pass an object such as \'{"type": "webhook", "url": "https://..."}\'.'
            ) from error
        return HookSpec.from_dict(data, where)
    kind, separator, value = text.partition(":")
    keys = {"webhook": "url", "command": "run", "python": "target"}
    if not separator or kind not in keys:
        raise InvalidSettingError(
            f"{where} is {text[:200]!r}; write webhook:URL, command:COMMAND, "
            "python:MODULE:FUNCTION or a JSON object."
        )
    return HookSpec.from_dict({"type": kind, keys[kind]: value}, where)


def check_hooks(hooks: Sequence[HookSpec]) -> None:
    """Raise InvalidSettingError for more hooks than a job may have."""
    if len(hooks) > MAX_HOOKS:
        raise InvalidSettingError(
            f"{len(hooks)} hooks given; a job takes at most {MAX_HOOKS}."
        )


def hook_payload(document: dict[str, Any], results: str) -> dict[str, Any]:
    """Return the summary every hook of a completed job receives.

    ``urls`` lists each URL's counts and medians, the first
    ``MAX_PAYLOAD_URLS`` of them; the full results are at ``results``.
    """
    entries = document["urls"]
    digest = ResultsDigest(
        document["job"],
        url_count=len(entries),
        first_urls=entries[:MAX_PAYLOAD_URLS],
        missing=urls_without_valid_run(document),
    )
    return digest_payload(digest, results)


def digest_payload(digest: ResultsDigest, results: str) -> dict[str, Any]:
    """Return the hook payload of a job from the digest of its results."""
    return {
        "event": EVENT,
        "job": digest.job,
        "results": results,
        "urls": [_url_summary(entry) for entry in digest.first_urls[:MAX_PAYLOAD_URLS]],
        "urls_truncated": digest.url_count > MAX_PAYLOAD_URLS,
        "urls_without_valid_run": digest.missing,
    }


def _url_summary(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "url": entry["url"],
        "label": entry.get("label"),
        "valid_runs": entry["valid_runs"],
        "total_runs": entry["total_runs"],
        "representative_run": entry["representative_run"],
        "median": entry["median"],
        "errors": sorted(
            {run["error_code"] for run in entry["runs"] if run.get("error_code")}
        ),
    }


def sign(secret: str, body: bytes) -> str:
    """Return the signature header's value: ``sha256=`` and the hex HMAC of the body."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Tell whether a signature header matches the body, in constant time."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


@dataclass(frozen=True)
class Outcome:
    """The outcome of one attempt at a hook."""

    ok: bool
    status_code: int | None = None
    error: str | None = None
    retry: bool = True
    """False when another attempt would fail the same way."""


@dataclass(frozen=True)
class HookCall:
    """Everything a hook's attempt sends: the job, where its results are, the body."""

    job_id: str
    results: str
    state: str
    payload: dict[str, Any]

    def body(self, delivery_id: str) -> bytes:
        data = {**self.payload, "delivery": delivery_id}
        return json.dumps(data, separators=(",", ":")).encode("utf-8")


def fire(spec: HookSpec, call: HookCall, delivery_id: str) -> Outcome:
    """Make one attempt at a hook and return its outcome.

    A failure of the hook (an HTTP error, an exit status, an exception of a
    Python hook) is an outcome; ``Deliverer`` also turns any other error
    raised here into one.
    """
    if spec.type == "webhook":
        return _post_webhook(spec, call, delivery_id)
    if spec.type == "command":
        return _run_command(spec, call, delivery_id)
    return _call_python(spec, call, delivery_id)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Treat a redirect as the webhook's response, because following it could
    leave the guard's checks."""

    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects())


def _post_webhook(spec: HookSpec, call: HookCall, delivery_id: str) -> Outcome:
    assert spec.url is not None
    if spec.allowed_networks is not None:
        try:
            check_target(spec.url, GuardPolicy.from_cidrs(spec.allowed_networks))
        except TargetRejected as error:
            return Outcome(
                ok=False, error=f"rejected by the guard: {error}", retry=False
            )
    body = call.body(delivery_id)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"lhfleet/{__version__}",
        EVENT_HEADER: EVENT,
        DELIVERY_HEADER: delivery_id,
    }
    if spec.secret:
        headers[SIGNATURE_HEADER] = sign(spec.secret, body)
    # The scheme is http or https: HookSpec.check rejects any other.
    request = urllib.request.Request(  # noqa: S310
        spec.url, data=body, method="POST", headers=headers
    )
    try:
        with _OPENER.open(request, timeout=spec.attempt_timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return Outcome(ok=False, error=f"request failed: {reason}")
    if 200 <= status < 300:
        return Outcome(ok=True, status_code=status)
    retry = status >= 500 or status in RETRIED_STATUSES
    return Outcome(ok=False, status_code=status, error=f"HTTP {status}", retry=retry)


def _run_command(spec: HookSpec, call: HookCall, delivery_id: str) -> Outcome:
    assert spec.run is not None
    env = {
        **os.environ,
        "LHFLEET_JOB_ID": call.job_id,
        "LHFLEET_JOB_STATE": call.state,
        "LHFLEET_RESULTS": call.results,
        "LHFLEET_DELIVERY_ID": delivery_id,
    }
    process = subprocess.Popen(
        ["/bin/sh", "-c", spec.run],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        _, stderr = process.communicate(call.body(delivery_id), spec.attempt_timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return Outcome(
            ok=False, error=f"timed out after {spec.attempt_timeout:g} s; killed"
        )
    if process.returncode == 0:
        return Outcome(ok=True, status_code=0)
    tail = stderr.decode("utf-8", "replace")[-OUTPUT_TAIL:].strip()
    return Outcome(
        ok=False,
        status_code=process.returncode,
        error=f"exited with status {process.returncode}: {tail}".rstrip(": "),
    )


def _call_python(spec: HookSpec, call: HookCall, delivery_id: str) -> Outcome:
    assert spec.target is not None
    module_name, _, name = spec.target.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        return Outcome(
            ok=False, error=f"cannot load {spec.target}: {error}", retry=False
        )
    # NOTE: the function runs in the process that completes the job, with no
    # time limit: a Python hook must return promptly.
    try:
        function(json.loads(call.body(delivery_id)))
    except Exception as error:  # noqa: BLE001 - any failure of user code is an outcome
        return Outcome(ok=False, error=f"{type(error).__name__}: {error}")
    return Outcome(ok=True)


def deliveries_document(ledger: HookLedger, job_id: str) -> list[dict[str, Any]]:
    """Return a job's hook deliveries with every attempt, secrets left out."""
    attempts = ledger.attempts(job_id)
    return [
        {
            "id": delivery.id,
            "index": delivery.index,
            "hook": HookSpec.from_dict(delivery.spec).public_dict(),
            "state": delivery.state,
            "attempts": [
                {
                    "number": attempt.number,
                    "started_at": attempt.started_at,
                    "duration": round(attempt.duration, 3),
                    "ok": attempt.ok,
                    "status_code": attempt.status_code,
                    "error": attempt.error,
                }
                for attempt in attempts
                if attempt.delivery_id == delivery.id
            ],
            "last_error": delivery.last_error,
            "delivered_at": delivery.delivered_at,
        }
        for delivery in ledger.deliveries(job_id)
    ]


def backoff(attempt: int) -> float:
    """Return the wait in seconds after attempt ``attempt`` failed, with jitter."""
    delay: float = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
    return delay * random.uniform(0.8, 1.2)


@dataclass
class Deliverer:
    """Fires the hooks a completed job owes, leasing each delivery first.

    Only the lease holder fires a hook. A holder that dies before settling
    a delivery leaves it owed, so the next ``deliver_owed`` fires it again.
    """

    ledger: HookLedger
    owner: str = field(default_factory=lambda: current_owner("hooks"))
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    fire: Callable[[HookSpec, HookCall, str], Outcome] = fire
    redeliver_command: str = "lhfleet hooks {job_id} --redeliver"
    """The command that the error log of a failed delivery suggests."""

    def deliver_owed(self, call: HookCall) -> int:
        """Deliver each owed hook of the job; return how many were delivered."""
        delivered = 0
        while True:
            delivery = self.ledger.claim_next(
                call.job_id, self.owner, FIRST_LEASE, self.clock(), is_gone
            )
            if delivery is None:
                return delivered
            delivered += self._deliver(delivery, call)

    def _deliver(self, delivery: HookDelivery, call: HookCall) -> bool:
        spec = HookSpec.from_dict(delivery.spec, f"hook {delivery.index}")
        left = max(1, spec.attempts - delivery.attempts)
        logger.info(
            "job %s: delivering hook %s (%s), up to %d attempts",
            call.job_id,
            delivery.id,
            spec.describe(),
            left,
        )
        for number in range(delivery.attempts + 1, delivery.attempts + left + 1):
            outcome = self._attempt(spec, call, delivery, number)
            if outcome is None:
                return False
            last = number == delivery.attempts + left
            if outcome.ok or not outcome.retry or last:
                return self._settle(delivery, outcome, number)
            wait = backoff(number)
            logger.warning(
                "job %s: hook %s attempt %d failed (%s); retrying in %.1f s",
                call.job_id,
                delivery.id,
                number,
                outcome.error,
                wait,
            )
            self.sleep(wait)
        return False

    def _attempt(
        self, spec: HookSpec, call: HookCall, delivery: HookDelivery, number: int
    ) -> Outcome | None:
        started = self.clock()
        try:
            outcome = self.fire(spec, call, delivery.id)
        except Exception as error:
            logger.exception("job %s: hook %s raised", call.job_id, delivery.id)
            outcome = Outcome(ok=False, error=f"{type(error).__name__}: {error}")
        attempt = DeliveryAttempt(
            delivery_id=delivery.id,
            number=number,
            started_at=started,
            duration=max(0.0, self.clock() - started),
            ok=outcome.ok,
            status_code=outcome.status_code,
            error=outcome.error,
        )
        # The lease must outlast the backoff and the next attempt.
        lease_until = self.clock() + BACKOFF_CAP * 1.2 + spec.attempt_timeout
        if not self.ledger.record_attempt(
            attempt, self.owner, lease_until + LEASE_MARGIN
        ):
            logger.warning(
                "job %s: hook %s was taken over by another process; stopping here",
                call.job_id,
                delivery.id,
            )
            return None
        return outcome

    def _settle(self, delivery: HookDelivery, outcome: Outcome, number: int) -> bool:
        self.ledger.finish(
            delivery.id, self.owner, outcome.ok, outcome.error, self.clock()
        )
        if outcome.ok:
            logger.info(
                "job %s: hook %s delivered on attempt %d",
                delivery.job_id,
                delivery.id,
                number,
            )
        else:
            logger.error(
                "job %s: hook %s failed after %d attempts: %s; `%s` tries again",
                delivery.job_id,
                delivery.id,
                number,
                outcome.error,
                self.redeliver_command.format(job_id=delivery.job_id),
            )
        return outcome.ok
