"""Load a monitoring config: a YAML file deep-merged over the documented defaults (defaults.yml).

    cfg = load("monitoring.yml")      # or load(None) for the defaults alone
    cfg["selectors"]["django"], cfg["thresholds"]["slow_request_ratio"], cfg["for"]["RedisDown"]

An unknown key, or a value whose type differs from the default's, raises ConfigError naming the
key path (`thresholds.slow_request_ratio`). Numbers are interchangeable (0 and 0.5 are both numbers).
"""

import copy
import re
from importlib import resources
from pathlib import Path

import yaml

__all__ = ["COMPONENTS", "ConfigError", "defaults", "load", "merge"]

# Every component a config may list (one rule module each, see rules/__init__.py).
COMPONENTS = ("gunicorn", "django", "celery", "jobs", "redis", "nginx", "meta")


class ConfigError(ValueError):
    """The monitoring config names an unknown key or has a value of the wrong type."""


def defaults():
    """Return a fresh copy of the documented defaults."""
    text = resources.files(__package__).joinpath("defaults.yml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def load(path=None):
    """Return the config of the YAML file at path merged over the defaults (the defaults if None)."""
    overrides = {}
    if path is not None:
        try:
            overrides = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return merge(overrides, source=str(path) if path is not None else "config")


def merge(overrides, source="config"):
    """Return the defaults with overrides (a dict shaped like defaults.yml) deep-merged in, validated."""
    if not isinstance(overrides, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, not {_kind(overrides)}")
    cfg = _merge(defaults(), overrides, ())
    _validate(cfg)
    return cfg


# Keys of earlier releases, with what replaced them (0.2.0 -> 0.3.0).
_RENAMED = {
    "links.runbook_base_url": "links.runbook_base_url was replaced by links.runbook_url, a template with {{alert}}: "
                              "for the old base write runbook_url: {value!r} + '{{alert}}.md'",
}


def _merge(base, override, path):
    merged = copy.deepcopy(base)
    for key, value in override.items():
        where = ".".join((*path, str(key)))
        if where in _RENAMED:
            raise ConfigError(_RENAMED[where].format(value=value))
        if key not in base:
            known = ", ".join(sorted(map(str, base)))
            raise ConfigError(f"unknown key {where!r} (known here: {known})")
        default = base[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: expected a mapping, got {_kind(value)}")
            merged[key] = _merge(default, value, (*path, str(key)))
        elif isinstance(default, list):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
            merged[key] = list(value)
        else:
            if not _same_type(default, value):
                raise ConfigError(f"{where}: expected {_kind(default)}, got {_kind(value)} ({value!r})")
            merged[key] = value
    return merged


def _same_type(default, value):
    number = (int, float)
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, number):
        return isinstance(value, number)
    return isinstance(value, type(default))


def _kind(value):
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "null" if value is None else type(value).__name__


def _validate(cfg):
    from .lib import SelectorError, label_names  # lib imports nothing from here

    for name in cfg["components"]:
        if name not in COMPONENTS:
            raise ConfigError(f"components: unknown component {name!r} (known: {', '.join(COMPONENTS)})")
    if len(set(cfg["components"])) != len(cfg["components"]):
        raise ConfigError("components: a component is listed twice")
    for key, text in [*((f"selectors.{k}", v) for k, v in cfg["selectors"].items()),
                      ("common_selector", cfg["common_selector"])]:
        try:
            label_names(text)
        except SelectorError as exc:
            raise ConfigError(f"{key}: {exc}") from exc
    runbook = cfg["links"]["runbook_url"]
    if "{alert}" not in runbook:
        raise ConfigError(f"links.runbook_url: {runbook!r} has no {{alert}} (the alert name goes there, "
                          "e.g. https://wiki.example.org/runbooks/{alert})")
    for key in ("runbook_url", "grafana_base_url"):
        if not re.match(r"^https?://[^/\s]+", cfg["links"][key]):
            raise ConfigError(f"links.{key}: {cfg['links'][key]!r} is not an http(s) URL")
    source = cfg["links"].get("source_url", "")
    if source and "{path}" not in source:
        raise ConfigError(f"links.source_url: {source!r} has no {{path}} (a project file's path goes there, "
                          "e.g. https://git.example.org/shop/blob/main/{path}), or '' for no links")
    for name in cfg["group_by"]:
        if not name.isidentifier():
            raise ConfigError(f"group_by: {name!r} is not a label name")
