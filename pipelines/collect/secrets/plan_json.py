"""Scrubbing plan JSON (``terraform show -json``): the text rules on every string, plus whole-value
redaction under credential-named keys, under Terraform's own ``*_sensitive`` masks and for sensitive
root variables."""

from __future__ import annotations

from typing import Any

from pipelines.collect.secrets.kinds import _PLACEHOLDER_ONLY, _PRIORITY, Finding, placeholder
from pipelines.collect.secrets.text import scrub_text
from pipelines.collect.secrets.values import _kind_for, _name_tier

# Plan JSON: value key -> the key of its sensitivity mask (terraform show -json).
_MASK_PAIRS = {"after": "after_sensitive", "before": "before_sensitive", "values": "sensitive_values"}
# Keys under a credential-named key that describe it rather than hold it.
_META_KEYS = frozenset({"description", "type", "sensitive", "nullable", "references", "ephemeral"})


def _pointer(parent: str, key: object) -> str:
    return f"{parent}/{str(key).replace('~', '~0').replace('/', '~1')}"


def _mask_child(mask: Any, key: object) -> Any:
    if mask is True:
        return True
    if isinstance(mask, dict):
        return mask.get(key)
    if isinstance(mask, list) and isinstance(key, int) and key < len(mask):
        return mask[key]
    return None


class _JsonScrubber:
    """One walk over a decoded JSON value; collects findings with JSON-pointer paths."""

    def __init__(self, root: Any, root_path: str) -> None:
        self.findings: list[Finding] = []
        self.root_path = root_path
        self.sensitive_variables = self._sensitive_variables(root)

    @staticmethod
    def _sensitive_variables(root: Any) -> frozenset[str]:
        """Root-module variables declared ``sensitive = true`` (their values sit in ``variables``)."""
        try:
            declared = root["configuration"]["root_module"]["variables"]
            return frozenset(k for k, v in declared.items() if isinstance(v, dict) and v.get("sensitive") is True)
        except (KeyError, TypeError, AttributeError):
            return frozenset()

    def walk(self, value: Any, ptr: str, name: str | None, sensitive: bool, mask: Any) -> Any:
        sensitive = sensitive or mask is True
        if isinstance(value, str):
            return self._string(value, ptr, name, sensitive)
        if isinstance(value, list):
            return [self.walk(v, _pointer(ptr, i), name, sensitive, _mask_child(mask, i)) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return self._dict(value, ptr, name, sensitive, mask)
        return value

    def _dict(self, value: dict[Any, Any], ptr: str, name: str | None, sensitive: bool, mask: Any) -> dict[Any, Any]:
        masks = {k: value.get(m) for k, m in _MASK_PAIRS.items() if k in value}
        holds_sensitive = value.get("sensitive") is True
        pair_name = value.get("name")
        pair_name = pair_name if isinstance(pair_name, str) and _name_tier(pair_name) else None
        at_variables = ptr == _pointer(self.root_path, "variables")
        out: dict[Any, Any] = {}
        for key, child in value.items():
            new_key = key
            if isinstance(key, str):
                new_key, found = scrub_text(key, ptr)
                self.findings += [Finding(f.kind, ptr, 0) for f in found]
                base, n = new_key, 2
                while new_key in out:  # two keys that scrub to the same placeholder
                    new_key, n = f"{base}_{n}", n + 1
            child_name = name if key not in _META_KEYS else None
            if isinstance(key, str) and _name_tier(key) is not None:
                child_name = key
            if key == "value" and pair_name:
                child_name = pair_name
            child_sensitive = (
                sensitive
                or (holds_sensitive and key in ("value", "default"))
                or (at_variables and key in self.sensitive_variables)
            )
            child_mask = masks.get(key) if key in masks else _mask_child(mask, key)
            out[new_key] = self.walk(child, _pointer(ptr, new_key), child_name, child_sensitive, child_mask)
        return out

    def _string(self, value: str, ptr: str, name: str | None, sensitive: bool) -> str:
        scrubbed, found = scrub_text(value, ptr)
        kind = _kind_for(name, value) if name is not None else None
        if kind is None and sensitive and value.strip() and not _PLACEHOLDER_ONLY.fullmatch(value):
            kind = "sensitive_value"
        if kind is not None:
            kind = min([kind, *(f.kind for f in found)], key=_PRIORITY.__getitem__)
            self.findings.append(Finding(kind, ptr, 0))
            return placeholder(kind)
        self.findings += [Finding(f.kind, ptr, 0) for f in found]
        return scrubbed


def scrub_json(obj: Any, path: str = "") -> tuple[Any, list[Finding]]:
    """Scrub a decoded JSON value (a ``terraform show -json`` plan) into a new object.

    Strings go through the text detectors; strings under credential-named keys, under keys that
    Terraform's ``*_sensitive`` masks mark, and the values of sensitive root variables are
    replaced whole. Findings carry a JSON pointer (prefixed by ``path``) and line 0.
    """
    scrubber = _JsonScrubber(obj, path)
    result = scrubber.walk(obj, path, None, False, None)
    return result, scrubber.findings
