"""Local paths inside a repository: the one resolver for module sources, and the path check file functions use.

Discovery (which files a workspace carries), screening (what is blocked), analysis and the static planner all
decide what ``module "x" { source = "..." }`` points at here, so they cannot disagree about a source that climbs
out of the repository. Terraform's own rules (``internal/addrs/module_source.go``): a source is local only when
it starts with ``./``, ``../``, ``.\\`` or ``..\\``; backslashes are read as slashes and the path is cleaned
lexically. Everything else is fetched by ``terraform init`` (registry, ``git::``, URLs, ``s3::`` ...).

Paths are repo-relative POSIX strings with ``"."`` for the repository root. A path "leaves the repository"
when any spelling of it does: absolute (``/``, ``\\``, ``C:\\``), home (``~``), or a ``..`` that climbs above
the root after cleaning, also once backslashes become slashes and ``%2e%2e``-style escapes are decoded
(terraform does not decode them, but go-getter and people do; a pre-filter fails closed).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

LOCAL_PREFIXES = ("./", "../", ".\\", "..\\")
TF_SUFFIXES = (".tf", ".tf.json")
_ABSOLUTE = re.compile(r"^(?:[/\\~]|[A-Za-z]:(?:[/\\]|$))")  # /x, \x, ~/x, ~user, C:\x, C:/x, C:
_ESCAPE = re.compile(r"\\(U[0-9A-Fa-f]{8}|u[0-9A-Fa-f]{4}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}

# kind -> reason code; every kind but "local" blocks the workspace
REASON_CODES = {
    "remote": "remote_module",
    "outside": "module_source_outside_repo",
    "missing": "module_source_missing",
    "not_literal": "module_source_not_literal",
}


def decode_escapes(text: str) -> str:
    """Undo HCL/JSON string escapes (``\\"``, ``\\\\``, ``\\n``, ``\\u002e`` ...) once; unknown ones keep the char."""

    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        if e[0] in "uU" and len(e) > 1:
            try:
                return chr(int(e[1:], 16))
            except (ValueError, OverflowError):
                return m.group(0)
        return _SIMPLE_ESCAPES.get(e, e)

    return _ESCAPE.sub(one, text)


def repo_path(base: str, rel: str) -> str | None:
    """``base/rel`` cleaned to a repo-relative path, or None when any spelling of it leaves the repository."""
    if _ABSOLUTE.match(rel):
        return None
    spellings = [rel.replace("\\", "/")]
    decoded = spellings[0]
    for _ in range(3):  # %252e -> %2e -> .
        decoded = unquote(decoded).replace("\\", "/")
        spellings.append(decoded)
    out = None
    for s in spellings:
        if _ABSOLUTE.match(s):
            return None
        joined = posixpath.normpath(posixpath.join("" if base == "." else base, s))
        if joined == ".." or joined.startswith("../") or posixpath.isabs(joined):
            return None
        out = out or joined
    return out


def module_dirs(paths: Iterable[str]) -> frozenset[str]:
    """Directories ("." for the root) that hold ``.tf`` / ``.tf.json`` files: where a local module can be."""
    return frozenset(posixpath.dirname(posixpath.normpath(p)) or "." for p in paths if p.endswith(TF_SUFFIXES))


@dataclass(frozen=True)
class ModuleSource:
    """Where one module source points: ``local`` (``dir`` holds the module) or why the workspace is blocked."""

    kind: str  # local | remote | outside | missing | not_literal
    source: Any
    dir: str | None = None  # repo-relative target, for local and missing

    @property
    def blocked(self) -> bool:
        return self.kind != "local"

    def reason(self, where: str) -> str:
        """Screen reason for a blocked source; ``where`` names the call, e.g. ``main.tf module.x``."""
        shown = json.dumps(str(self.source)[:120])
        detail = {
            "outside": f"source {shown} resolves outside the repository",
            "missing": f"source {shown} resolves to {json.dumps(self.dir)}: no such module directory in the "
            "workspace (no .tf or .tf.json files there)",
            "not_literal": f"source {shown} is not a literal string (terraform init rejects it)",
        }
        if self.kind == "remote":  # unchanged since rules version 1
            return f"remote_module: {where} source {str(self.source)[:80]!r} would be fetched by init"
        return f"{REASON_CODES[self.kind]}: {where} {detail[self.kind]}"


def resolve_source(caller_dir: str, source: Any, tf_dirs: Iterable[str]) -> ModuleSource:
    """Resolve a module ``source`` called from ``caller_dir`` against the directories that hold modules."""
    if not isinstance(source, str) or "${" in source or "%{" in source:
        return ModuleSource("not_literal", source)
    if source.startswith(LOCAL_PREFIXES):
        target = repo_path(caller_dir, source)
        if target is None:
            return ModuleSource("outside", source)
        return ModuleSource("local" if target in tf_dirs else "missing", source, target)
    if _ABSOLUTE.match(source):  # go-getter would copy a host directory ("file" detector)
        return ModuleSource("outside", source)
    return ModuleSource("remote", source)


def _bodies(value: Any) -> Iterator[dict[str, Any]]:
    """A block level as python-hcl2 gives it (a list of dicts) or as Terraform JSON allows (a dict or a list)."""
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict):
            yield item


def labelled(value: Any, n_labels: int) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """(labels, body) of the blocks under one block-type key, e.g. ``data`` with 2 labels -> (("http", "x"), {...})."""
    for item in _bodies(value):
        if n_labels == 0:
            yield (), item
            continue
        for label, inner in item.items():
            for rest, body in labelled(inner, n_labels - 1):
                yield (str(label), *rest), body


def module_calls(doc: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(call name, source value) of a parsed file's module blocks (terraform reads them at the top level only)."""
    for (name,), body in labelled(doc.get("module"), 1):
        yield name, body.get("source")
