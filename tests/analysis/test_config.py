"""The config file: lhfleet.toml keys, lighthouserc discovery, and precedence."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from lhfleet.cli.analyze import RUNS, config_option, current_config
from lhfleet.config import compare_defaults, load_config, require_assertions
from lhfleet.errors import ConfigError
from tests.analysis.conftest import LHCI_CONFIG, lhfleet


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_no_config_is_empty(tmp_path: Path) -> None:
    assert load_config(folder=tmp_path).path is None


def test_toml_job_defaults(tmp_path: Path) -> None:
    write(
        tmp_path, "lhfleet.toml", 'runs = "auto"\nmax_runs = 8\nheaders = {X-A = "1"}\n'
    )
    defaults = load_config(folder=tmp_path).option_defaults()
    assert defaults == {"runs": "auto", "max_runs": 8, "extra_headers": '{"X-A": "1"}'}


def test_toml_lists_become_option_text(tmp_path: Path) -> None:
    text = 'categories = ["performance", "seo"]\nchrome_flags = ["--a", "--b"]\n'
    write(tmp_path, "lhfleet.toml", text)
    defaults = load_config(folder=tmp_path).option_defaults()
    assert defaults == {"categories": "performance,seo", "chrome_flags": "--a --b"}


def test_unknown_key_is_named(tmp_path: Path) -> None:
    write(tmp_path, "lhfleet.toml", "runs = 3\nrunz = 4\n")
    with pytest.raises(ConfigError, match="unknown key 'runz'"):
        load_config(folder=tmp_path)


def test_unknown_compare_key_is_named(tmp_path: Path) -> None:
    write(tmp_path, "lhfleet.toml", "[compare]\nalpha = 0.05\n")
    with pytest.raises(ConfigError, match=r"unknown key compare\.'alpha'"):
        load_config(folder=tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("runs = 0\n", "runs is 0"),
        ('runs = "many"\n', "runs is 'many'"),
        ("concurrency = true\n", "concurrency is True"),
        ("headers = {A = 1}\n", "headers is"),
        ("runs = [\n", "not valid TOML"),
    ],
    ids=["zero", "word", "bool", "header-type", "syntax"],
)
def test_bad_value_is_named(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, "lhfleet.toml", text)
    with pytest.raises(ConfigError, match=message):
        load_config(folder=tmp_path)


def test_toml_assert_table(tmp_path: Path) -> None:
    text = '[assert]\npreset = "lighthouse:recommended"\n[assert.assertions]\n'
    text += '"categories:seo" = ["error", {minScore = 1}]\n'
    write(tmp_path, "lhfleet.toml", text)
    assertions = require_assertions(load_config(folder=tmp_path))
    assert assertions.sets[0].preset == "lighthouse:recommended"
    assert assertions.sets[0].assertions[0].min_score == 1


def test_toml_bad_assertion_names_key(tmp_path: Path) -> None:
    text = '[assert.assertions]\n"categories:seo" = ["error", {maxScore = 1}]\n'
    write(tmp_path, "lhfleet.toml", text)
    with pytest.raises(ConfigError, match="unknown key 'maxScore'"):
        load_config(folder=tmp_path)


def test_lighthouserc_found_in_folder(tmp_path: Path) -> None:
    write(tmp_path, "lighthouserc.json", json.dumps(LHCI_CONFIG))
    config = load_config(folder=tmp_path)
    assert require_assertions(config).source.endswith("lighthouserc.json ci.assert")


def test_dot_lighthouserc_found_in_folder(tmp_path: Path) -> None:
    write(tmp_path, ".lighthouserc.json", json.dumps(LHCI_CONFIG))
    assert load_config(folder=tmp_path).assertions is not None


def test_toml_without_assert_uses_lighthouserc(tmp_path: Path) -> None:
    write(tmp_path, "lhfleet.toml", "runs = 5\n")
    write(tmp_path, "lighthouserc.json", json.dumps(LHCI_CONFIG))
    config = load_config(folder=tmp_path)
    assert config.job == {"runs": 5}
    assert config.assertions is not None


def test_lighthouserc_unknown_section_is_named(tmp_path: Path) -> None:
    write(tmp_path, "lighthouserc.json", json.dumps({"ci": {"asert": {}}}))
    with pytest.raises(ConfigError, match=r"ci\.asert"):
        load_config(folder=tmp_path)


def test_lighthouserc_without_ci_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, "lighthouserc.json", json.dumps({"assert": {}}))
    with pytest.raises(ConfigError, match="ci key"):
        load_config(folder=tmp_path)


def test_lighthouserc_js_is_not_read(tmp_path: Path) -> None:
    path = write(tmp_path, "lighthouserc.js", "module.exports = {};")
    with pytest.raises(ConfigError, match="JSON only"):
        load_config(path)


def test_missing_given_config_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_no_assertions_says_where_to_add(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[assert\] table"):
        require_assertions(load_config(folder=tmp_path))


@click.command()
@config_option
@click.option("--runs", type=RUNS, default="3")
@click.option("--preset", default="mobile")
def probe(runs: int | str, preset: str) -> None:
    click.echo(f"{runs} {preset} {current_config().path is not None}")


def test_command_line_overrides_config(tmp_path: Path) -> None:
    config = write(tmp_path, "lhfleet.toml", 'runs = 7\npreset = "desktop"\n')
    result = CliRunner().invoke(probe, ["--config", str(config), "--runs", "2"])
    assert result.output == "2 desktop True\n"


def test_config_auto_runs(tmp_path: Path) -> None:
    config = write(tmp_path, "lhfleet.toml", 'runs = "auto"\n')
    result = CliRunner().invoke(probe, ["--config", str(config)])
    assert result.output == "auto mobile True\n"


def test_bad_config_is_usage_error(tmp_path: Path) -> None:
    config = write(tmp_path, "lhfleet.toml", "colour = 1\n")
    result = CliRunner().invoke(probe, ["--config", str(config)])
    assert result.exit_code == 2
    assert "unknown key 'colour'" in result.output


def test_run_rejects_unknown_key(tmp_path: Path) -> None:
    write(tmp_path, "lhfleet.toml", "run = 3\n")
    completed = lhfleet("run", "http://127.0.0.1:9/", "--dry-run", cwd=tmp_path)
    assert completed.returncode == 2
    assert "unknown key 'run'" in completed.stderr


def test_run_rejects_bad_target_spread(tmp_path: Path) -> None:
    write(tmp_path, "lhfleet.toml", 'target_spread = "performance:cv=-1"\n')
    completed = lhfleet("run", "http://127.0.0.1:9/", "--dry-run", cwd=tmp_path)
    assert completed.returncode == 2
    assert "use a number above 0" in completed.stderr


def test_compare_metrics_list_becomes_text(tmp_path: Path) -> None:
    write(tmp_path, "lhfleet.toml", '[compare]\nmetrics = ["lcp", "tbt"]\n')
    assert compare_defaults(load_config(folder=tmp_path)) == {"metrics": "lcp,tbt"}
