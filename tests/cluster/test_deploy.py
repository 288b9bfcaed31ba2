"""The deployment examples, checked offline against the code they configure.

No container engine runs here: the image is never built and the examples
never started. These tests check that they parse and agree with lhfleet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from lhfleet.auditor import INTERRUPT_GRACE
from lhfleet.cli.worker import worker
from lhfleet.models import JobSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "cluster"
ENGINE_VARIABLES = {"LHFLEET_STORE", "LHFLEET_BROKER", "LHFLEET_REPORTS"}
LONGEST_RUN = JobSettings().timeout + INTERRUPT_GRACE


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


@pytest.fixture(scope="module")
def deployment() -> dict[str, Any]:
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()))
    (found,) = [doc for doc in documents if doc["kind"] == "Deployment"]
    return dict(found)


@pytest.fixture(scope="module")
def secret() -> dict[str, Any]:
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()))
    (found,) = [doc for doc in documents if doc["kind"] == "Secret"]
    return dict(found)


def worker_options(args: list[str]) -> set[str]:
    return {arg for arg in args if arg.startswith("--")}


def known_options() -> set[str]:
    return {name for param in worker.params for name in param.opts}


def test_compose_worker_sets_engine_variables(compose: dict[str, Any]) -> None:
    environment = compose["services"]["worker"]["environment"]
    assert set(environment) >= ENGINE_VARIABLES


def test_compose_worker_options_exist(compose: dict[str, Any]) -> None:
    command = compose["services"]["worker"]["command"]
    assert command[0] == "worker"
    assert worker_options(command) <= known_options()


def test_compose_grace_outlasts_a_run(compose: dict[str, Any]) -> None:
    grace = compose["services"]["worker"]["stop_grace_period"]
    assert float(grace.removesuffix("s")) > LONGEST_RUN


def test_compose_redis_persists_tasks(compose: dict[str, Any]) -> None:
    assert "--appendonly" in compose["services"]["redis"]["command"]


def test_kubernetes_secret_sets_engine_variables(secret: dict[str, Any]) -> None:
    assert set(secret["stringData"]) >= ENGINE_VARIABLES


def test_kubernetes_worker_options_exist(deployment: dict[str, Any]) -> None:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert worker_options(container["args"]) <= known_options()


def test_kubernetes_grace_outlasts_a_run(deployment: dict[str, Any]) -> None:
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > LONGEST_RUN


def test_containerfile_installs_cluster_extra() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    assert "'.[cluster]'" in text


def test_containerfile_installs_pinned_lighthouse() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    assert "COPY package.json package-lock.json" in text
