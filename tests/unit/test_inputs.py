"""URL lists: reading lines and rejecting URLs that cannot be audited."""

from __future__ import annotations

import pytest

from lhfleet.errors import InvalidURLError
from lhfleet.inputs import SourceLine, check_url, read_lines, validated


def test_read_lines_skips_blanks_comments_bom_and_crlf() -> None:
    lines = list(
        read_lines(
            "f", ["\ufeffhttp://a.test/\r\n", "\n", "# note\n", "  http://b.test/ \n"]
        )
    )
    assert [line.text for line in lines] == ["http://a.test/", "http://b.test/"]
    assert [line.line for line in lines] == [1, 4]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("example.com", "no scheme"),
        ("file:///etc/passwd", "scheme file"),
        ("javascript:alert(1)", "scheme javascript"),
        ("chrome://settings", "scheme chrome"),
        ("data:text/html,hi", "scheme data"),
        ("http://user:pw@a.test/", "credentials"),
        ("http:///path", "no host"),
        ("http://a.test:99999/", "not a valid URL"),
        ("http://a b.test/", "whitespace"),
        ("http://a.test/" + "x" * 9000, "longer than"),
    ],
)
def test_check_url_rejects(url: str, reason: str) -> None:
    problem = check_url(url)
    assert problem is not None
    assert reason in problem


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/", "https://a.test/p?q=1#f"])
def test_check_url_accepts(url: str) -> None:
    assert check_url(url) is None


def test_validated_names_every_bad_line() -> None:
    lines = [
        SourceLine("urls.txt", 1, "http://ok.test/"),
        SourceLine("urls.txt", 2, "ftp://bad.test/"),
        SourceLine("urls.txt", 5, "nohost"),
    ]
    with pytest.raises(InvalidURLError) as caught:
        validated(lines)
    message = str(caught.value)
    assert "urls.txt:2" in message
    assert "urls.txt:5" in message
    assert "nothing was queued" in message


def test_validated_rejects_empty_list() -> None:
    with pytest.raises(InvalidURLError, match="No URLs"):
        validated([])
