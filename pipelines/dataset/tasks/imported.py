"""imported: a user's existing chat data (OpenAI JSONL, ShareGPT, Alpaca) → examples of this dataset.

``paths`` are files, directories (their ``*.jsonl``/``*.json`` files) or glob patterns, expanded in sorted
order. A ``.jsonl`` file holds one record per line; a ``.json`` file a list of records (the usual Alpaca
and ShareGPT exports). Each record is one source row carrying its own JSON text, so workers need no shared
filesystem and one bad record drops alone: ``invalid_json``, ``unknown_format`` (``format: auto`` found no
known shape), ``bad_record`` (the importer's message says what is missing) or the validator's code
(``no_assistant``, ``unknown_role``, ...; see :mod:`pipelines.dataset.validate`).

Leakage unit: the record itself (``<path>#<index>``), unless the record carries a ``group_field`` (default
``group_key``): records sharing that value land in the same split, across files too.
"""

from __future__ import annotations

import glob
import json
import logging
from pathlib import Path
from typing import Any, Literal

from pipelines.dataset.example import SkipSource, make_example
from pipelines.dataset.formats import from_alpaca, from_sharegpt
from pipelines.dataset.validate import check_example
from schemas.config import ConfigError, Strict

logger = logging.getLogger(__name__)

NAME = "imported"
FORMATS = ("openai", "sharegpt", "alpaca")
SUFFIXES = (".jsonl", ".json")


class Config(Strict):
    paths: list[str] = []  # files, directories or globs; empty → no examples (the embedded default has none)
    format: Literal["auto", "openai", "sharegpt", "alpaca"] = "auto"
    group_field: str = "group_key"  # a record field naming its leakage group (used when present)


def expand_paths(paths: list[str]) -> list[Path]:
    """Files named by ``paths`` (files, directories, globs), sorted and without repeats."""
    out: list[Path] = []
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir():
            out += sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
        elif path.is_file():
            out.append(path)
        else:
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True) if Path(m).is_file())
            if not matches:
                raise ConfigError(f"imported: {p} matches no file (give a .jsonl/.json file, a directory or a glob)")
            out += matches
    return list(dict.fromkeys(out))


def _file_rows(path: Path) -> list[dict[str, Any]]:
    """One row per record: ``{"path", "index", "line", "text"}`` (line = 1-based line in a .jsonl, else 0)."""
    rows: list[dict[str, Any]] = []
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"imported: {path} is not valid JSON ({e}); JSON Lines files must end in .jsonl") from e
        records = data if isinstance(data, list) else [data]
        for i, rec in enumerate(records):
            text = json.dumps(rec, ensure_ascii=False, sort_keys=True)
            rows.append({"path": str(path), "index": i, "line": 0, "text": text})
        return rows
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                text = None  # dropped by examples() as invalid_utf8, counted like any other bad record
            if text != "":
                rows.append({"path": str(path), "index": len(rows), "line": line_no, "text": text})
    return rows


def sources(cfg: Config) -> list[dict[str, Any]]:
    """Every record of every file, in (sorted path, position) order."""
    rows = [r for path in expand_paths(cfg.paths) for r in _file_rows(path)]
    logger.info("imported: %d records from %d path(s)", len(rows), len(cfg.paths))
    return rows


def detect_format(obj: Any) -> str | None:
    """openai / sharegpt / alpaca from a record's shape; None when it matches none."""
    if not isinstance(obj, dict):
        return None
    if "conversations" in obj:
        return "sharegpt"
    messages = obj.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        return "sharegpt" if "from" in messages[0] else "openai"
    if "instruction" in obj and "output" in obj:
        return "alpaca"
    return None


def to_messages(obj: Any, fmt: str) -> list[dict[str, Any]]:
    """A record in format ``fmt`` → OpenAI messages (ValueError saying what is wrong)."""
    if fmt == "sharegpt":
        return from_sharegpt(obj)
    if fmt == "alpaca":
        return from_alpaca(obj)
    if not isinstance(obj, dict) or "messages" not in obj:
        raise ValueError("an OpenAI chat record needs a 'messages' list")
    return obj["messages"]


def examples(row: dict[str, Any], cfg: Config) -> list[dict[str, Any]]:
    """The record's conversation, validated like an OpenAI fine-tuning line."""
    where = f"{row['path']}:{row['line'] or row['index']}"
    if row["text"] is None:
        raise SkipSource(f"invalid_utf8: {where}: the line is not UTF-8 text")
    try:
        obj = json.loads(row["text"])
    except json.JSONDecodeError as e:
        raise SkipSource(f"invalid_json: {where}: {e}") from e
    fmt = detect_format(obj) if cfg.format == "auto" else cfg.format
    if fmt is None:
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise SkipSource(f"unknown_format: {where}: not OpenAI, ShareGPT or Alpaca (keys {keys})")
    try:
        messages = to_messages(obj, fmt)
    except ValueError as e:
        raise SkipSource(f"bad_record: {where}: {e}") from e
    problems = check_example({"messages": messages})
    if problems:
        code, message = problems[0]
        raise SkipSource(f"{code}: {where}: {message}")
    group = obj.get(cfg.group_field) if isinstance(obj, dict) else None
    return [
        make_example(
            NAME,
            messages,
            group=str(group) if group not in (None, "") else f"{row['path']}#{row['index']}",
            source_id=f"{row['path']}#{row['index']}",
            subtask=fmt,
            provider=Path(row["path"]).name,
            labels={"format": fmt},
        )
    ]
