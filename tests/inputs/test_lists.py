"""Reading URL lists: plain lines, CSV and JSON, from files and stdin."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from lhfleet.errors import InputTooLargeError, InvalidSettingError
from lhfleet.inputs.limits import InputLimits
from lhfleet.inputs.lists import (
    SourceLine,
    decode,
    detect_format,
    parse,
    parse_csv,
    parse_json,
    read_input,
)


def test_lines_skip_blanks_comments_and_crlf() -> None:
    lines = parse(
        "urls.txt", "\ufeffhttp://a.test/\r\n\r\n# note\r\n  http://b.test/ \r\n"
    )
    assert [(line.line, line.text) for line in lines] == [
        (1, "http://a.test/"),
        (4, "http://b.test/"),
    ]


def test_lines_handle_lone_cr() -> None:
    lines = parse("urls.txt", "http://a.test/\rhttp://b.test/")
    assert [line.line for line in lines] == [1, 2]


def test_where_of_line() -> None:
    assert SourceLine("urls.txt", 3, "x").where == "urls.txt:3"


def test_where_of_item() -> None:
    assert SourceLine("urls.json", 2, "x", unit="item").where == "urls.json item 2"


def test_csv_url_label_and_meta() -> None:
    text = "URL,Label,team,owner\nhttp://a.test/,Home,web,\nhttp://b.test/,,shop,ann\n"
    lines = parse_csv("urls.csv", text)
    assert lines[0] == SourceLine(
        "urls.csv", 2, "http://a.test/", "Home", {"team": "web"}
    )
    assert lines[1].label is None
    assert lines[1].meta == {"team": "shop", "owner": "ann"}


def test_csv_semicolon_delimiter() -> None:
    lines = parse_csv("urls.csv", "label;url\nhome;http://a.test/\n")
    assert (lines[0].text, lines[0].label) == ("http://a.test/", "home")


def test_csv_quoted_cell_with_comma() -> None:
    lines = parse_csv("urls.csv", 'url,label\n"http://a.test/?a=1,2","x, y"\n')
    assert (lines[0].text, lines[0].label) == ("http://a.test/?a=1,2", "x, y")


def test_csv_skips_blank_and_comment_rows() -> None:
    lines = parse_csv("urls.csv", "url\n\n#http://skip.test/\nhttp://a.test/\n")
    assert [(line.line, line.text) for line in lines] == [(4, "http://a.test/")]


def test_csv_empty_url_cell_is_a_problem() -> None:
    lines = parse_csv("urls.csv", "url,label\n,home\n")
    assert lines[0].problem == "has an empty URL cell"


def test_csv_extra_cells_are_a_problem() -> None:
    lines = parse_csv("urls.csv", "url\nhttp://a.test/,extra\n")
    assert lines[0].problem == "has 2 cells but the header row has 1"


def test_csv_without_url_column() -> None:
    with pytest.raises(InvalidSettingError, match="no URL column"):
        parse_csv("urls.csv", "name,team\nhome,web\n")


def test_json_strings_and_objects() -> None:
    text = (
        '["http://a.test/", {"url": "http://b.test/", "label": "b", '
        '"meta": {"team": "web"}, "owner": "ann"}]'
    )
    lines = parse_json("urls.json", text)
    assert lines[0].text == "http://a.test/"
    assert lines[1] == SourceLine(
        "urls.json", 2, "http://b.test/", "b", {"owner": "ann", "team": "web"}, "item"
    )


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ("42", "is a int"),
        ('{"label": "x"}', "has no url string"),
        ('{"url": "http://a.test/", "label": 3}', "label that is not a string"),
        ('{"url": "http://a.test/", "meta": []}', "meta that is not an object"),
    ],
)
def test_json_bad_item_is_a_problem(item: str, problem: str) -> None:
    (line,) = parse_json("urls.json", f"[{item}]")
    assert line.problem is not None
    assert problem in line.problem


def test_json_not_a_list() -> None:
    with pytest.raises(InvalidSettingError, match="must hold a list"):
        parse_json("urls.json", '{"url": "http://a.test/"}')


def test_json_invalid() -> None:
    with pytest.raises(InvalidSettingError, match="line 1, column 2"):
        parse_json("urls.json", "[,]")


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("urls.csv", "http://a.test/", "csv"),
        ("urls.json", "", "json"),
        ("stdin", ' ["http://a.test/"]', "json"),
        ("stdin", "# list\nurl,label\nhttp://a.test/,a\n", "csv"),
        ("urls.txt", "http://a.test/,x\n", "lines"),
        ("urls.txt", "http://a.test/\n", "lines"),
    ],
)
def test_detect_format(name: str, text: str, expected: str) -> None:
    assert detect_format(name, text) == expected


def test_decode_utf16_with_bom() -> None:
    assert decode("http://a.test/".encode("utf-16"), "x") == "http://a.test/"


def test_decode_rejects_latin1() -> None:
    with pytest.raises(InvalidSettingError, match="not UTF-8"):
        decode(b"http://a.test/\xe9", "urls.txt")


def test_read_input_from_stdin() -> None:
    name, text = read_input("-", InputLimits(), io.BytesIO(b"http://a.test/\n"))
    assert (name, text) == ("stdin", "http://a.test/\n")


def test_read_input_too_large(tmp_path: Path) -> None:
    path = tmp_path / "urls.txt"
    path.write_bytes(b"http://a.test/\n" * 10)
    with pytest.raises(InputTooLargeError, match="larger than 100 bytes"):
        read_input(str(path), InputLimits(max_input_bytes=100), io.BytesIO())


def test_read_input_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidSettingError, match="Cannot read the URL list"):
        read_input(str(tmp_path / "none.txt"), InputLimits(), io.BytesIO())
