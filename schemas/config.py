"""Typed job configs: YAML file + ``key=value`` overrides → a pydantic model, every error listed at once."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config file or override is wrong; the message lists every problem and how to fix it."""


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors (typos must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["plan.timeout_s=30", "sources.urls=[a, b]"]`` → nested dict; values are YAML scalars/lists."""
    out: dict[str, Any] = {}
    bad = [o for o in overrides if "=" not in o or not o.split("=", 1)[0].strip()]
    if bad:
        raise ConfigError(f"overrides must look like key.sub=value; got {bad}")
    for item in overrides:
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override of {p!r}")
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        merged[k] = _merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def _read(path: str | Path | None, overrides: Sequence[str]) -> tuple[dict[str, Any], str]:
    data: dict[str, Any] = {}
    where = "defaults"
    if path is not None:
        where = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError as e:
            raise ConfigError(f"config file {path} does not exist") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from e
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of settings, got {type(loaded).__name__}")
        data = loaded or {}
    return _merge(data, parse_overrides(overrides)), where


def _error_lines(e: ValidationError) -> list[str]:
    lines = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        hint = (
            " (unknown key: check the spelling against the documented settings)"
            if err["type"] == "extra_forbidden"
            else ""
        )
        lines.append(f"{loc}: {err['msg']}{hint}")
    return lines


def _drop(data: dict[str, Any], loc: Sequence[Any]) -> bool:
    """Remove the setting at ``loc`` (or the deepest mapping key on its path); False if nothing was removed."""
    node: Any = data
    for i, key in enumerate(loc):
        if not isinstance(node, dict) or key not in node:
            return False
        if i == len(loc) - 1 or not isinstance(node[key], dict):
            del node[key]
            return True
        node = node[key]
    return False


def load_config_lenient(
    model: type[M], path: str | Path | None = None, overrides: Sequence[str] = ()
) -> tuple[M | None, list[str]]:
    """Like :func:`load_config`, but returns ``(model, errors)``: the model is built with every invalid or
    unknown setting left at its default, so that checks of the rest can still run and every problem of a
    config can be reported at once. ``model`` is None when even that fails."""
    data, _ = _read(path, overrides)
    errors: list[str] = []
    for _ in range(100):
        try:
            return model.model_validate(data), errors
        except ValidationError as e:
            if not errors:
                errors = _error_lines(e)
            if not any(_drop(data, err["loc"]) for err in e.errors()):
                return None, errors
    return None, errors


def load_config(model: type[M], path: str | Path | None = None, overrides: Sequence[str] = ()) -> M:
    """Load ``path`` (YAML mapping; optional) with overrides applied on top, validated by ``model``."""
    data, where = _read(path, overrides)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        lines = _error_lines(e)
        raise ConfigError(f"{where}: {len(lines)} config error(s):\n" + "\n".join(f"  {x}" for x in lines)) from e
