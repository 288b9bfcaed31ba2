"""Building the plan: validation, skipping, duplicates and limits."""

from __future__ import annotations

import re

import pytest

from lhfleet.errors import InputTooLargeError, InvalidURLError
from lhfleet.inputs.limits import InputLimits
from lhfleet.inputs.lists import SourceLine
from lhfleet.inputs.plan import Duplicates, build_plan
from lhfleet.models import Target


def lines(*texts: str) -> list[SourceLine]:
    return [SourceLine("urls.txt", n, text) for n, text in enumerate(texts, 1)]


def test_plan_normalizes_urls() -> None:
    plan = build_plan(lines("HTTP://A.test:80"))
    assert [entry.url for entry in plan.entries] == ["http://a.test/"]


def test_plan_keeps_original_line() -> None:
    plan = build_plan(lines("HTTP://A.test:80"))
    assert plan.entries[0].line.text == "HTTP://A.test:80"


def test_invalid_line_rejects_list() -> None:
    with pytest.raises(InvalidURLError) as caught:
        build_plan(lines("http://a.test/", "file:///etc/passwd", "a.test"))
    message = str(caught.value)
    assert "nothing was queued" in message
    assert "urls.txt:2: 'file:///etc/passwd' has the unsupported scheme" in message
    assert "urls.txt:3: 'a.test' has no scheme" in message


def test_skip_invalid_leaves_bad_lines_out() -> None:
    plan = build_plan(lines("http://a.test/", "nope"), skip_invalid=True)
    assert [entry.url for entry in plan.entries] == ["http://a.test/"]
    assert [rejected.line.line for rejected in plan.rejected] == [2]
    assert "Skipped 1 invalid lines" in plan.notices[0]


def test_skip_invalid_with_nothing_left() -> None:
    with pytest.raises(InvalidURLError, match="No URLs to audit"):
        build_plan(lines("nope"), skip_invalid=True)


def test_reader_problem_is_reported() -> None:
    bad = SourceLine("urls.csv", 4, "", problem="has an empty URL cell")
    with pytest.raises(
        InvalidURLError, match=re.escape("urls.csv:4: '' has an empty URL cell")
    ):
        build_plan([bad])


def test_merge_duplicates_by_default() -> None:
    plan = build_plan(lines("http://a.test/", "HTTP://a.test:80/#top"))
    assert len(plan.entries) == 1
    assert [line.line for line in plan.entries[0].merged] == [2]
    assert "Merged 1 duplicate URLs" in plan.notices[0]


def test_merge_notes_dropped_label() -> None:
    first = SourceLine("urls.csv", 2, "http://a.test/", "home")
    second = SourceLine("urls.csv", 3, "http://a.test/", "other")
    plan = build_plan([first, second])
    assert "label and metadata are dropped" in plan.notices[0]
    assert plan.targets == [Target("http://a.test/", "home")]


def test_keep_duplicates() -> None:
    plan = build_plan(lines("http://a.test/", "http://a.test"), Duplicates.KEEP)
    assert [entry.url for entry in plan.entries] == ["http://a.test/"] * 2
    assert plan.notices == []


def test_error_on_duplicates() -> None:
    with pytest.raises(
        InvalidURLError, match=re.escape("urls.txt:2: 'http://a.test' is")
    ):
        build_plan(lines("http://a.test/", "http://a.test"), Duplicates.ERROR)


def test_targets_carry_label_and_meta() -> None:
    line = SourceLine("urls.csv", 2, "http://a.test/", "home", {"team": "web"})
    assert build_plan([line]).targets == [
        Target("http://a.test/", "home", {"team": "web"})
    ]


def test_url_limit() -> None:
    with pytest.raises(InputTooLargeError, match="the limit is 2 per job"):
        build_plan(
            lines("http://a.test/1", "http://a.test/2", "http://a.test/3"),
            limits=InputLimits(max_urls=2),
        )


def test_url_limit_counts_after_merge() -> None:
    plan = build_plan(
        lines("http://a.test/", "http://a.test", "http://b.test/"),
        limits=InputLimits(max_urls=2),
    )
    assert len(plan.entries) == 2


def test_line_length_limit() -> None:
    with pytest.raises(InvalidURLError, match="longer than 30 characters"):
        build_plan(
            lines("http://a.test/" + "x" * 20), limits=InputLimits(max_line_length=30)
        )


def test_check_rejects_after_normalizing() -> None:
    seen: list[str] = []

    def check(url: str) -> str | None:
        seen.append(url)
        return "is blocked"

    with pytest.raises(InvalidURLError, match=re.escape("'HTTP://A.test' is blocked")):
        build_plan(lines("HTTP://A.test"), check=check)
    assert seen == ["http://a.test/"]


def test_many_problems_are_capped() -> None:
    with pytest.raises(InvalidURLError, match=r"\.\.\. and 5 more"):
        build_plan(lines(*["bad"] * 25))


def test_runs_limit() -> None:
    with pytest.raises(InputTooLargeError, match="limit is 100"):
        InputLimits().check_runs(101)


def test_request_size_limit() -> None:
    with pytest.raises(InputTooLargeError, match="limit is 10"):
        InputLimits(max_input_bytes=10).check_request_size(11)


def test_entry_to_dict() -> None:
    plan = build_plan(lines("http://A.test", "http://a.test/"))
    assert plan.entries[0].to_dict() == {
        "url": "http://a.test/",
        "original": "http://A.test",
        "source": "urls.txt:1",
        "label": None,
        "meta": None,
        "merged": ["urls.txt:2"],
    }
