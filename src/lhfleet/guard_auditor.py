"""An Auditor that sends the browser of guarded runs through a guard proxy.

A guarded job stores ``guard`` and its allowed networks in its settings,
never a proxy's address: the proxy lives in the process that runs the
audits, on a port that changes each time. So every process that audits
(``lhfleet run``, ``resume`` and ``retry``, ``lhfleet serve`` and
``lhfleet worker``) wraps its Auditor in ``GuardedAuditor``, which starts a
proxy on the first guarded run and adds the proxy's Chrome flags to each
guarded run's settings at audit time.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

from lhfleet.auditor import Auditor, AuditRequest, AuditResult
from lhfleet.errors import EnvironmentProblem
from lhfleet.guard import GuardPolicy, Resolver, check_chrome_flags
from lhfleet.guard_proxy import GuardProxy
from lhfleet.models import JobSettings

logger = logging.getLogger(__name__)


class GuardedAuditor(Auditor):
    """Wraps an Auditor; guarded runs load their pages through a guard proxy.

    With ``policy`` set (a guarded ``lhfleet serve``), every run goes through
    a proxy with that policy. Without it, a run goes through a proxy when its
    job's settings have ``guard``, with the job's allowed networks. One proxy
    is started per policy, on first use, and shared by the runs that follow
    until ``close``.
    """

    def __init__(
        self,
        inner: Auditor,
        policy: GuardPolicy | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.inner = inner
        self.policy = policy
        self.resolver = resolver
        self._proxies: dict[GuardPolicy, GuardProxy] = {}
        self._lock = threading.Lock()

    def policy_for(self, settings: JobSettings) -> GuardPolicy | None:
        """Return the policy a run with these settings is audited under, or None."""
        if self.policy is not None:
            return self.policy
        if not settings.guard:
            return None
        return GuardPolicy.from_cidrs(settings.allowed_networks)

    def audit(
        self,
        request: AuditRequest,
        label: str,
        owner: str,
        cancel: threading.Event | None = None,
    ) -> AuditResult:
        """Audit through the inner Auditor, behind a guard proxy when guarded.

        Raises InvalidSettingError when a guarded run's Chrome flags would
        route around the proxy, and EnvironmentProblem when the proxy cannot
        start.
        """
        policy = self.policy_for(request.settings)
        if policy is None:
            return self.inner.audit(request, label, owner, cancel)
        check_chrome_flags(request.settings.chrome_flags)
        flags = request.settings.chrome_flags + self.proxy(policy).chrome_flags()
        settings = dataclasses.replace(request.settings, chrome_flags=flags)
        guarded = dataclasses.replace(request, settings=settings)
        return self.inner.audit(guarded, label, owner, cancel)

    def render_html(self, lhr_json: bytes) -> str:
        return self.inner.render_html(lhr_json)

    def proxy(self, policy: GuardPolicy) -> GuardProxy:
        """Return the running proxy for a policy, starting it on first use."""
        with self._lock:
            running = self._proxies.get(policy)
            if running is not None:
                return running
            proxy = GuardProxy(policy, self.resolver)
            try:
                proxy.start()
            except (OSError, RuntimeError, TimeoutError) as error:
                proxy.close()
                raise EnvironmentProblem(
                    f"The network guard's proxy could not start on 127.0.0.1 "
                    f"({error}). Check that this host can listen on a loopback "
                    "port, then resume the job."
                ) from error
            self._proxies[policy] = proxy
            logger.info(
                "guarded audits go through the guard proxy on port %d", proxy.port
            )
            return proxy

    def close(self) -> None:
        """Stop every proxy started so far, then close the inner Auditor.

        A guarded run after this starts a new proxy.
        """
        with self._lock:
            proxies = list(self._proxies.values())
            self._proxies.clear()
        for proxy in proxies:
            proxy.close()
        self.inner.close()
