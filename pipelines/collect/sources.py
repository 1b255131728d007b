"""Where repositories come from: the Source record, URL safety checks, manifests, local dirs, dedupe.

Every stage after this one clones or reads what a Source names, so the URL check is a security
boundary: git's remote helpers (``ext::``, ``fd::``) run commands, an entry starting with ``-`` is
read as a command-line option, and plain ``http://`` can be tampered with in transit. Bad entries
are configuration errors: they are collected and raised together so the user fixes them in one go.
The GitHub and Azure DevOps listings live in ``github.py`` and ``azure_devops.py``.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from pipelines.ids import normalize_url, repo_id, synthetic_repo_id

logger = logging.getLogger(__name__)

ALLOWED_SCHEMES: frozenset[str] = frozenset({"https", "ssh", "file"})
KINDS = ("git", "local")
ORIGINS = ("url", "manifest", "local", "github", "azure_devops", "synthetic")
MANIFEST_SUFFIXES = ("", ".txt", ".csv", ".yaml", ".yml")

_TRANSPORT = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")  # git's <transport>::<address> remote helpers
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^/:]+):(?P<path>(?!//).+)$")
_YAML_ENTRY_KEYS = ("url", "ref", "labels", "license")


class SourceError(ValueError):
    """A source list cannot be built: bad URLs, a broken manifest, a failed API listing."""


class SourceApiError(SourceError):
    """A repository-hosting API (GitHub, Azure DevOps) refused or failed a listing request."""


class _Labels(Mapping[str, str]):
    """Read-only, hashable str->str mapping so that Source stays a frozen, hashable value."""

    __slots__ = ("_items",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._items = tuple(sorted((str(k), str(v)) for k, v in (data or {}).items()))

    def __getitem__(self, key: str) -> str:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Labels):
            return self._items == other._items
        return Mapping.__eq__(self, other)

    def __repr__(self) -> str:
        return repr(dict(self._items))


@dataclass(frozen=True)
class Source:
    """One repository (or plain directory) to collect; a row of the collect stage's input."""

    url: str
    kind: Literal["git", "local"]
    ref: str | None = None
    origin: str = "url"
    labels: Mapping[str, str] = field(default_factory=dict)
    license: str | None = None
    history: bool = False
    trusted: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SourceError(f"Source kind must be one of {KINDS}, got {self.kind!r}")
        if self.origin not in ORIGINS:
            raise SourceError(f"Source origin must be one of {ORIGINS}, got {self.origin!r}")
        if self.history and not self.trusted:
            raise SourceError(
                f"history mode applies commits locally, so it is only allowed for trusted (our own) repos; "
                f"{self.url!r} is not trusted: set history=False"
            )
        object.__setattr__(self, "labels", _Labels(self.labels))
        object.__setattr__(self, "ref", self.ref or None)

    def to_row(self) -> dict[str, Any]:
        """Flat dict for a Ray Data / Parquet row; labels as sorted-key JSON, plus repo_id."""
        return {
            "url": self.url,
            "kind": self.kind,
            "ref": self.ref,
            "origin": self.origin,
            "labels": json.dumps(dict(self.labels), sort_keys=True),
            "license": self.license,
            "history": self.history,
            "trusted": self.trusted,
            "repo_id": self.repo_id,
        }

    @property
    def repo_id(self) -> str:
        """Hash of the normalized URL; a synthetic repo is named by its corpus seed and name instead, so
        its id (and with it its dataset split) does not depend on where the corpus was written."""
        if self.origin == "synthetic" and "synthetic" in self.labels:
            return synthetic_repo_id(self.labels.get("seed", "0"), self.labels["synthetic"])
        return repo_id(self.url)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Source:
        """Inverse of to_row (repo_id is derived, so it is ignored)."""
        labels = row.get("labels") or {}
        if isinstance(labels, str):
            labels = json.loads(labels)
        return cls(
            url=row["url"],
            kind=row["kind"],
            ref=row.get("ref") or None,
            origin=row.get("origin") or "url",
            labels=labels,
            license=row.get("license") or None,
            history=bool(row.get("history", False)),
            trusted=bool(row.get("trusted", False)),
        )


def check_url(url: str, allowed_schemes: Iterable[str] = ALLOWED_SCHEMES) -> str | None:
    """Why ``url`` may not be cloned, or None when it is a safe git URL under ``allowed_schemes``."""
    allowed = {s.lower() for s in allowed_schemes}
    if not url.strip():
        return "empty entry: remove it"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "contains whitespace or control characters: percent-encode them or fix the entry"
    if url.startswith("-"):
        return "starts with '-', which git would read as a command-line option: remove the leading '-'"
    if m := _TRANSPORT.match(url):
        return (
            f"git transport '{m[0]}' is not allowed (remote helpers such as ext:: and fd:: run "
            f"commands): use an https:// or ssh:// URL"
        )
    if m := _SCHEME.match(url):
        return _check_scheme_url(url, m[1].lower(), allowed)
    m = _SCP_LIKE.match(url)
    if m and not url.startswith(("/", ".", "~")):
        if "ssh" not in allowed:
            return f"scp-like ssh address is not allowed here (allowed schemes: {_fmt(allowed)})"
        if m["host"].startswith("-") or (m["user"] or "").startswith("-") or m["path"].startswith("-"):
            return "a user, host or path starting with '-' would be read as an ssh option: fix the entry"
        return None
    return (
        "is a local path, not a URL: write file:///absolute/path for a local git repository, "
        "or list a plain directory under local_dirs"
    )


def _check_scheme_url(url: str, scheme: str, allowed: set[str]) -> str | None:
    rest = url[len(scheme) + 3 :]
    if scheme == "http" and "http" not in allowed:
        return f"plain http:// is not allowed (no transport security): use https://{rest}"
    if scheme not in allowed:
        return f"scheme '{scheme}://' is not allowed: use one of {_fmt(allowed)}"
    try:
        parts = urlsplit(url)
        host, user, password = parts.hostname, parts.username, parts.password
        _ = parts.port  # raises on a malformed port
    except ValueError as e:
        return f"malformed URL ({e}): fix the host or port"
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            return "file:// URL must name an absolute path: file:///absolute/path"
        return None
    if not host:
        return f"{scheme}:// URL has no host: use {scheme}://host/owner/repo"
    if host.startswith("-") or (user or "").startswith("-"):
        return "a host or user starting with '-' would be read as an ssh option: fix the entry"
    if password:
        return (
            "contains a password or token, which would be written to repos.parquet: remove it and "
            "use a git credential helper"
        )
    if not parts.path.strip("/"):
        return f"{scheme}:// URL has no repository path: use {scheme}://{host}/owner/repo"
    return None


def _fmt(schemes: Iterable[str]) -> str:
    return ", ".join(f"{s}://" for s in sorted(schemes)) or "(none)"


def _raise_all(what: str, problems: list[str]) -> None:
    if problems:
        noun = "problem" if len(problems) == 1 else "problems"
        raise SourceError(f"{what}: {len(problems)} {noun}:\n" + "\n".join(f"  {p}" for p in problems))


def from_urls(
    urls: Iterable[str], ref: str | None = None, *, allowed_schemes: Iterable[str] = ALLOWED_SCHEMES
) -> list[Source]:
    """Sources for git URLs given directly (CLI/config); every bad entry is reported in one error."""
    allowed = frozenset(allowed_schemes)
    sources: list[Source] = []
    problems: list[str] = []
    for i, raw in enumerate(urls, start=1):
        url = raw.strip()
        if reason := check_url(url, allowed):
            problems.append(f"url #{i} {raw!r}: {reason}")
        else:
            sources.append(Source(url=url, kind="git", ref=ref, origin="url"))
    _raise_all("bad source URLs", problems)
    return sources


def from_local_dirs(paths: Iterable[str | Path]) -> list[Source]:
    """Sources for plain directories read from disk (not cloned); every missing one is reported."""
    sources: list[Source] = []
    problems: list[str] = []
    for p in paths:
        path = Path(p).expanduser().resolve()
        if not path.exists():
            problems.append(f"{str(p)!r}: does not exist ({path})")
        elif not path.is_dir():
            problems.append(f"{str(p)!r}: is not a directory ({path})")
        else:
            sources.append(Source(url=str(path), kind="local", origin="local"))
    _raise_all("bad local_dirs", problems)
    return sources


def dedupe(sources: Iterable[Source]) -> list[Source]:
    """Keep the first Source for each (normalized URL, ref), in order; log how many were dropped."""
    seen: set[tuple[str, str | None]] = set()
    kept: list[Source] = []
    dropped = 0
    for s in sources:
        key = (normalize_url(s.url), s.ref)
        if key in seen:
            dropped += 1
            continue
        seen.add(key)
        kept.append(s)
    logger.info("dedupe: kept %d sources, dropped %d duplicates", len(kept), dropped)
    return kept


# ---------------------------------------------------------------- manifests


def from_manifest(path: str | Path, *, allowed_schemes: Iterable[str] = ALLOWED_SCHEMES) -> list[Source]:
    """Sources listed in a manifest: ``.txt``/no extension, ``.csv`` or ``.yaml``/``.yml``.

    Relative local paths resolve against the manifest's directory; they must be git repositories
    (plain directories belong under ``local_dirs``). All problems are reported together, in file
    order, each with the file and line (or entry) number.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise SourceError(
            f"{path}: unknown manifest format {suffix!r}: use .txt (or no extension), .csv, .yaml or .yml"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SourceError(f"{path}: cannot read manifest ({e.strerror or e}): check the path") from e
    allowed = frozenset(allowed_schemes)
    if suffix == ".csv":
        entries, problems = _csv_entries(path, text)
    elif suffix in (".yaml", ".yml"):
        entries, problems = _yaml_entries(path, text)
    else:
        entries, problems = _txt_entries(path, text)
    sources: list[Source] = []
    for e in entries:
        url, reason = _resolve_entry(e.url, path.parent, allowed)
        if reason:
            problems.append((e.pos, f"{e.where}: {e.url!r}: {reason}"))
        else:
            sources.append(Source(url=url, kind="git", origin="manifest", **e.fields))
    _raise_all(f"bad manifest {path}", [msg for _, msg in sorted(problems)])
    if not sources:
        logger.warning("manifest %s lists no sources", path)
    return sources


@dataclass(frozen=True)
class _Entry:
    pos: int  # line or entry number, to report problems in file order
    where: str  # "file:line" or "file: entry N (line L)"
    url: str
    fields: dict[str, Any]  # ref, license, labels


_Problems = list[tuple[int, str]]


def _resolve_entry(entry: str, base: Path, allowed: frozenset[str]) -> tuple[str, str | None]:
    """(url, None) for an allowed URL or a local git repo (as a file:// URL); (entry, reason) otherwise."""
    if not _looks_like_path(entry):
        return entry, check_url(entry, allowed)
    path = (base / Path(entry).expanduser()).resolve()
    if not path.is_dir():
        return entry, f"local path {path} does not exist or is not a directory"
    if not (path / ".git").exists():
        return entry, f"{path} is a plain directory, not a git repository: list it under local_dirs instead"
    url = path.as_uri()
    return url, check_url(url, allowed)


def _looks_like_path(entry: str) -> bool:
    if not entry or "://" in entry or entry.startswith("-") or _TRANSPORT.match(entry):
        return False
    return entry.startswith(("/", ".", "~")) or not _SCP_LIKE.match(entry)


def _txt_entries(path: Path, text: str) -> tuple[list[_Entry], _Problems]:
    entries: list[_Entry] = []
    problems: _Problems = []
    for n, line in enumerate(text.splitlines(), start=1):
        fields: list[str] = []
        for tok in line.split():
            if tok.startswith("#"):  # comment to the end of the line
                break
            fields.append(tok)
        if not fields:
            continue
        if len(fields) > 2:
            problems.append((n, f"{path}:{n}: expected 'URL [REF]', got {len(fields)} fields: {line.strip()!r}"))
            continue
        ref = fields[1] if len(fields) == 2 else None
        entries.append(_Entry(n, f"{path}:{n}", fields[0], {"ref": ref}))
    return entries, problems


def _csv_entries(path: Path, text: str) -> tuple[list[_Entry], _Problems]:
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in reader.fieldnames or []]
    if "url" not in header:
        raise SourceError(
            f"{path}:1: the CSV header must have a 'url' column (optional: ref, license; any other "
            f"column becomes a label); got {header}"
        )
    reader.fieldnames = header
    entries: list[_Entry] = []
    problems: _Problems = []
    for row in reader:
        n = reader.line_num
        if None in row:
            problems.append((n, f"{path}:{n}: more fields than the header has columns"))
            continue
        values = {k: (v or "").strip() for k, v in row.items()}
        if not any(values.values()):
            continue
        if not values["url"]:
            problems.append((n, f"{path}:{n}: empty url"))
            continue
        labels = {k: v for k, v in values.items() if k not in ("url", "ref", "license") and v}
        fields = {
            "ref": values.get("ref") or None,
            "license": values.get("license") or None,
            "labels": labels,
        }
        entries.append(_Entry(n, f"{path}:{n}", values["url"], fields))
    return entries, problems


def _yaml_entries(path: Path, text: str) -> tuple[list[_Entry], _Problems]:
    shape = "a YAML manifest is a list of repos or a mapping {repos: [...]}"
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)  # the same document, with line numbers
    except yaml.YAMLError as e:
        raise SourceError(f"{path}: invalid YAML: {' '.join(str(e).split())}") from e
    if data is None:
        return [], []
    if isinstance(data, dict):
        if set(data) != {"repos"} or not isinstance(data["repos"], list):
            raise SourceError(f"{path}: {shape}; got a mapping with keys {sorted(map(str, data))}")
        data = data["repos"]
        node = next(v for k, v in node.value if k.value == "repos")
    if not isinstance(data, list) or not isinstance(node, yaml.SequenceNode):
        raise SourceError(f"{path}: {shape}; got {type(data).__name__}")
    entries: list[_Entry] = []
    problems: _Problems = []
    for i, (raw, item_node) in enumerate(zip(data, node.value, strict=True), start=1):
        where = f"{path}: entry {i} (line {item_node.start_mark.line + 1})"
        item = {"url": raw} if isinstance(raw, str) else raw
        if not isinstance(item, dict):
            problems.append((i, f"{where}: expected a mapping {{url, ref?, labels?, license?}} or a URL string"))
            continue
        bad = _yaml_entry_problems(item)
        if bad:
            problems.extend((i, f"{where}: {b}") for b in bad)
            continue
        fields = {"ref": item.get("ref"), "license": item.get("license"), "labels": item.get("labels") or {}}
        entries.append(_Entry(i, where, item["url"], fields))
    return entries, problems


def _yaml_entry_problems(item: dict[Any, Any]) -> list[str]:
    problems = []
    unknown = sorted(str(k) for k in set(item) - set(_YAML_ENTRY_KEYS))
    if unknown:
        problems.append(f"unknown keys {unknown}: allowed are {list(_YAML_ENTRY_KEYS)} (put others under labels)")
    if not isinstance(item.get("url"), str):
        problems.append("'url' is missing or not a string")
    for key in ("ref", "license"):
        if item.get(key) is not None and not isinstance(item[key], str):
            problems.append(f'{key!r} must be a string: quote it ({key}: "{item[key]}")')
    labels = item.get("labels")
    if labels is not None and (
        not isinstance(labels, dict) or any(isinstance(v, dict | list) or v is None for v in labels.values())
    ):
        problems.append("'labels' must be a mapping of names to scalar values")
    return problems
