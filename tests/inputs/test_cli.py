"""``lhfleet run`` with the input options; every test stops before an audit starts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from lhfleet.cli import main
from tests.inputs.conftest import Site, gzipped, sitemap_index, urlset


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, ["run", *args], input=stdin)


def flat(text: str) -> str:
    """Return console output without the line breaks rich adds at 80 columns."""
    return text.replace("\n", "")


def dry_json(*args: str, stdin: str | None = None) -> list[dict[str, Any]]:
    result = run("--dry-run", "--json", *args, stdin=stdin)
    assert result.exit_code == 0, result.output
    entries: list[dict[str, Any]] = json.loads(result.stdout)
    return entries


def test_dry_run_prints_normalized_urls(tmp_path: Path) -> None:
    path = tmp_path / "urls.txt"
    path.write_bytes(b"\xef\xbb\xbf# home\r\nHTTP://B\xc3\xbccher.example:80/\r\n")
    (entry,) = dry_json("-i", str(path))
    assert entry["url"] == "http://xn--bcher-kva.example/"
    assert entry["source"] == f"{path}:2"
    assert entry["original"] == "HTTP://Bücher.example:80/"


def test_dry_run_creates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    dry_json("--data-dir", str(data), "http://a.test/")
    assert not data.exists()


def test_dry_run_table() -> None:
    result = run("--dry-run", "http://A.test")
    assert result.exit_code == 0
    assert "http://a.test/" in result.stdout
    assert "1 URLs would run" in result.stdout


def test_invalid_line_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "urls.txt"
    path.write_text("http://a.test/\njavascript:alert(1)\n", encoding="utf-8")
    result = run("--dry-run", "-i", str(path))
    assert result.exit_code == 2
    expected = f"{path}:2: 'javascript:alert(1)' has the unsupported scheme"
    assert expected in flat(result.stderr)


def test_skip_invalid_warns(tmp_path: Path) -> None:
    path = tmp_path / "urls.txt"
    path.write_text("http://a.test/\nnot a url\n", encoding="utf-8")
    result = run("--dry-run", "--json", "--skip-invalid", "-i", str(path))
    assert result.exit_code == 0
    assert "Skipped 1 invalid lines" in result.stderr
    assert [entry["url"] for entry in json.loads(result.stdout)] == ["http://a.test/"]


def test_duplicates_merge_by_default() -> None:
    entries = dry_json("http://a.test/", "http://A.test:80/#x")
    assert entries[0]["merged"] == ["command line argument 2"]


def test_duplicates_keep() -> None:
    entries = dry_json("--duplicates", "keep", "http://a.test/", "http://a.test")
    assert len(entries) == 2


def test_duplicates_error() -> None:
    result = run(
        "--dry-run", "--duplicates", "error", "http://a.test/", "http://a.test"
    )
    assert result.exit_code == 2
    assert "Duplicate URLs" in result.stderr


def test_csv_from_stdin() -> None:
    entries = dry_json("-i", "-", stdin="url,label,team\nhttp://a.test/,Home,web\n")
    assert (entries[0]["label"], entries[0]["meta"]) == ("Home", {"team": "web"})


def test_json_input(tmp_path: Path) -> None:
    path = tmp_path / "urls.json"
    path.write_text('[{"url": "http://a.test/", "label": "a"}]', encoding="utf-8")
    entries = dry_json("-i", str(path))
    assert entries[0]["source"] == f"{path} item 1"


def test_sitemap_index_with_gzip(site: Site) -> None:
    site.file("/sitemap.xml", sitemap_index(site.url("/s.xml.gz")), "application/xml")
    site.file("/s.xml.gz", gzipped(urlset(site.url("/a"), site.url("/b"))), "x/gzip")
    entries = dry_json("--sitemap", site.url("/sitemap.xml"), "--max-pages", "1")
    assert [entry["url"] for entry in entries] == [site.url("/a")]


def test_crawl_with_include_and_cookie(site: Site) -> None:
    site.html("/", "/docs/a", "/shop")
    site.html("/docs/a")
    site.html("/shop")
    entries = dry_json(
        "--crawl", site.url("/"), "--include", "/docs/*", "--cookie", "sid=s3cret"
    )
    assert [entry["url"] for entry in entries] == [site.url("/docs/a")]
    assert {headers.get("Cookie") for headers in site.request_headers} == {"sid=s3cret"}


def test_include_without_discovery() -> None:
    result = run("--dry-run", "--include", "/x/*", "http://a.test/")
    assert result.exit_code == 2
    assert "apply to --sitemap and --crawl" in result.stderr


def test_guard_rejects_metadata_url() -> None:
    result = run("--dry-run", "--guard", "http://169.254.169.254/latest/")
    assert result.exit_code == 2
    assert "rule cloud-metadata" in flat(result.stderr)


def test_allow_target_admits_network(site: Site) -> None:
    entries = dry_json("--allow-target", "127.0.0.1/32", site.url("/"))
    assert entries[0]["url"] == site.url("/")


def test_guarded_crawl_skips_redirect_into_blocked_range(
    site: Site, other_site: Site
) -> None:
    site.html("/", "/jump")
    site.redirect("/jump", other_site.url("/secret"))
    other_site.html("/secret")
    entries = dry_json("--allow-target", "127.0.0.1/32", "--crawl", site.url("/"))
    assert [entry["url"] for entry in entries] == [site.url("/")]
    assert other_site.hits == []


def test_guard_rejects_proxy_chrome_flag() -> None:
    result = run(
        "--allow-target",
        "127.0.0.1/32",
        "--chrome-flags",
        "--no-proxy-server",
        "http://127.0.0.1:9/",
    )
    assert result.exit_code == 2
    assert "The Chrome flag --no-proxy-server" in flat(result.stderr)


def test_bad_allow_target() -> None:
    result = run("--dry-run", "--allow-target", "nonsense", "http://a.test/")
    assert result.exit_code == 2
    assert "is not an IP network" in result.stderr
