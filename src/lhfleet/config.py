"""The config file: ``lhfleet.toml`` job defaults and assertions, or a lighthouserc.

``lhfleet.toml`` is looked for in the working directory unless ``--config``
names a file. Its top-level keys are defaults of ``lhfleet run``; its
``[assert]`` table is an assert section in Lighthouse CI's format, and its
``[compare]`` table holds defaults of ``lhfleet compare``. A
``lighthouserc.json`` or ``.lighthouserc.json`` (given with ``--config`` or
found in the working directory) supplies its ``ci.assert`` section. Any
unknown key is an error that names it.
"""

from __future__ import annotations

import json
import logging
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lhfleet.assertions import AssertConfig, parse_assert_config
from lhfleet.errors import ConfigError

logger = logging.getLogger(__name__)

CONFIG_NAME = "lhfleet.toml"
LHCI_NAMES = ("lighthouserc.json", ".lighthouserc.json")
LHCI_UNSUPPORTED = (
    "lighthouserc.js",
    ".lighthouserc.js",
    "lighthouserc.yml",
    ".lighthouserc.yml",
    "lighthouserc.yaml",
    ".lighthouserc.yaml",
)
LHCI_SECTIONS = ("collect", "assert", "upload", "server", "wizard")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _texts(value: Any) -> bool:
    return _text(value) or (
        isinstance(value, list) and all(isinstance(item, str) for item in value)
    )


def _headers(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(item, str) for item in value.values()
    )


def _hooks(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _runs(value: Any) -> bool:
    return value == "auto" or _whole(value)


Check = tuple[Callable[[Any], bool], str]

JOB_KEYS: dict[str, Check] = {
    "runs": (_runs, 'a whole number above 0, or "auto"'),
    "min_runs": (_whole, "a whole number above 0"),
    "max_runs": (_whole, "a whole number above 0"),
    "target_spread": (_text, 'a string such as "performance:cv=0.05"'),
    "representative": (_text, 'a string: "lighthouse" or a score or metric key'),
    "preset": (_text, 'a string: "mobile" or "desktop"'),
    "categories": (_texts, "a list of category ids"),
    "timeout": (_number, "a number of seconds"),
    "retries": (lambda value: _whole(value) or value == 0, "a whole number"),
    "concurrency": (_runs, 'a whole number above 0, or "auto"'),
    "chrome_flags": (_texts, "a list of Chrome flags"),
    "headers": (_headers, "a table of header names to string values"),
    "contention_ratio": (_number, "a number above 0 and at most 1"),
    "engine": (_text, 'a string: "local" or "celery"'),
    "store": (_text, "a job store URL, such as postgresql://HOST/lhfleet"),
    "reports": (_text, "a folder, or a URL such as s3://BUCKET/PREFIX"),
    "broker": (_text, "a broker URL, such as redis://HOST:6379/0"),
    "hooks": (
        _hooks,
        'an array of tables such as [[hooks]] type = "webhook", url = "https://..."',
    ),
}
"""Top-level keys of lhfleet.toml: defaults of ``lhfleet run``."""

COMPARE_KEYS: dict[str, Check] = {
    "confidence": (_number, "a number between 0 and 1, such as 0.95"),
    "min_change": (lambda value: _number(value) or value == 0, "a share such as 0.05"),
    "metrics": (_texts, "a list of score and metric keys"),
}
TABLES = ("assert", "compare")


@dataclass(frozen=True)
class Config:
    """What a config file says; empty when there is none."""

    path: Path | None = None
    job: dict[str, Any] = field(default_factory=dict)
    compare: dict[str, Any] = field(default_factory=dict)
    assertions: AssertConfig | None = None

    def option_defaults(self) -> dict[str, Any]:
        """Return the job defaults as click option defaults (``default_map``)."""
        defaults: dict[str, Any] = {}
        for key, value in self.job.items():
            if key == "headers":
                defaults["extra_headers"] = json.dumps(value)
            elif key == "hooks":
                defaults["hooks"] = [json.dumps(hook) for hook in value]
            elif key in ("categories", "chrome_flags"):
                joiner = "," if key == "categories" else " "
                defaults[key] = value if isinstance(value, str) else joiner.join(value)
            else:
                defaults[key] = str(value) if key in ("runs", "concurrency") else value
        return defaults


def compare_defaults(config: Config) -> dict[str, Any]:
    """Return the ``[compare]`` table as click option defaults."""
    defaults = dict(config.compare)
    if isinstance(defaults.get("metrics"), list):
        defaults["metrics"] = ",".join(defaults["metrics"])
    return defaults


def find_config(given: Path | None, folder: Path | None = None) -> Path | None:
    """Return the config file to read: the one given, else one in ``folder``."""
    if given is not None:
        if not given.is_file():
            raise ConfigError(
                f"The config file {given} does not exist. Check the path given "
                "with --config."
            )
        return given
    folder = folder or Path.cwd()
    for name in (CONFIG_NAME, *LHCI_NAMES):
        if (folder / name).is_file():
            return folder / name
    return None


def load_config(given: Path | None = None, folder: Path | None = None) -> Config:
    """Read the config file that applies, or return an empty Config."""
    path = find_config(given, folder)
    if path is None:
        return Config()
    if path.name in LHCI_UNSUPPORTED:
        raise ConfigError(
            f"{path}: lhfleet reads lighthouserc files in JSON only. Save the "
            "same settings as lighthouserc.json and pass it with --config."
        )
    logger.info("reading the config file %s", path)
    if path.suffix == ".json":
        return _read_lighthouserc(path)
    return _read_toml(path, folder or Path.cwd())


def _read_toml(path: Path, folder: Path) -> Config:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"Cannot read the config file {path}: {error}.") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}.") from error
    job = {key: value for key, value in data.items() if key not in TABLES}
    _check_keys(job, JOB_KEYS, path, "")
    compare = data.get("compare", {})
    if not isinstance(compare, dict):
        raise ConfigError(f"{path}: compare must be a table ([compare]).")
    _check_keys(compare, COMPARE_KEYS, path, "compare.")
    assertions = None
    if "assert" in data:
        assertions = parse_assert_config(data["assert"], f"{path} [assert]")
    else:
        assertions = _lighthouserc_beside(folder)
    return Config(path, job, compare, assertions)


def _lighthouserc_beside(folder: Path) -> AssertConfig | None:
    for name in LHCI_NAMES:
        if (folder / name).is_file():
            return _read_lighthouserc(folder / name).assertions
    return None


def _check_keys(
    table: dict[str, Any], known: dict[str, Check], path: Path, prefix: str
) -> None:
    for key, value in table.items():
        if key not in known:
            tables = " ([assert], [compare])" if not prefix else ""
            raise ConfigError(
                f"{path}: unknown key {prefix}{key!r}. The known keys are "
                f"{', '.join(known)}{tables}."
            )
        valid, expected = known[key]
        if not valid(value):
            raise ConfigError(f"{path}: {prefix}{key} is {value!r}; use {expected}.")


def _read_lighthouserc(path: Path) -> Config:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"Cannot read {path}: {error}.") from error
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"{path} is not valid JSON: {error.msg} at line {error.lineno}, "
            f"column {error.colno}."
        ) from error
    ci = data.get("ci") if isinstance(data, dict) else None
    if not isinstance(ci, dict):
        raise ConfigError(
            f"{path}: expected an object with a ci key, as Lighthouse CI reads it."
        )
    for key in ci:
        if key not in LHCI_SECTIONS:
            raise ConfigError(
                f"{path}: unknown key ci.{key}; Lighthouse CI knows "
                f"{', '.join(LHCI_SECTIONS)}."
            )
    if "assert" not in ci:
        return Config(path)
    return Config(
        path, assertions=parse_assert_config(ci["assert"], f"{path} ci.assert")
    )


def require_assertions(config: Config) -> AssertConfig:
    """Return the config's assertions, or raise saying where they can come from."""
    if config.assertions is None:
        where = f"{config.path} has" if config.path else "no config file was found, so"
        raise ConfigError(
            f"There are no assertions to check: {where} no assert section. Add an "
            f"[assert] table to {CONFIG_NAME}, or a ci.assert section to "
            "lighthouserc.json, in the working directory or with --config."
        )
    return config.assertions
