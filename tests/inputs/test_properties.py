"""Properties of the parser and normalizer over generated input (Hypothesis)."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lhfleet.errors import UsageError
from lhfleet.inputs.lists import FORMATS, SourceLine, parse
from lhfleet.inputs.normalize import URLProblem, normalize_url
from lhfleet.inputs.plan import build_plan

FAST = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
LISTS = settings(FAST, max_examples=80)

label_text = st.text(
    st.characters(categories=["Ll", "Lu", "Lo", "Nd"], include_characters="-_"),
    min_size=1,
    max_size=12,
)
hosts = st.one_of(
    st.lists(label_text, min_size=1, max_size=4).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda address: f"[{address}]"),
    st.integers(min_value=0, max_value=2**32 - 1).map(str),
)
parts = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="#?"),
    max_size=30,
)


@st.composite
def urls(draw: st.DrawFn) -> str:
    """Return URL-like text: often valid, sometimes not."""
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "ftp", ""]))
    port = draw(st.one_of(st.just(""), st.integers(0, 70000).map(lambda p: f":{p}")))
    path = "/" + draw(parts)
    query = draw(st.one_of(st.just(""), parts.map(lambda text: "?" + text)))
    fragment = draw(st.one_of(st.just(""), parts.map(lambda text: "#" + text)))
    prefix = f"{scheme}://" if scheme else ""
    return f"{prefix}{draw(hosts)}{port}{path}{query}{fragment}"


@FAST
@given(st.text())
def test_normalize_never_crashes_on_text(text: str) -> None:
    with contextlib.suppress(URLProblem):
        normalize_url(text)


@FAST
@given(urls())
def test_normalize_never_crashes_on_urls(text: str) -> None:
    with contextlib.suppress(URLProblem):
        normalize_url(text)


@FAST
@given(urls())
def test_normalize_is_idempotent(text: str) -> None:
    try:
        once = normalize_url(text)
    except URLProblem:
        return
    assert normalize_url(once) == once
    assert once.isascii()


@FAST
@given(st.text(), st.sampled_from(FORMATS))
def test_parse_never_crashes(text: str, input_format: str) -> None:
    with contextlib.suppress(UsageError):
        parse("input", text, input_format)


@LISTS
@given(st.lists(st.one_of(urls(), st.text(max_size=40)), max_size=20))
def test_plan_never_crashes(texts: list[str]) -> None:
    lines = [SourceLine("input", n, text) for n, text in enumerate(texts, 1)]
    try:
        plan = build_plan(lines, skip_invalid=True)
    except UsageError:
        return
    assert len(plan.entries) + len(plan.rejected) <= len(lines)
