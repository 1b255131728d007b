"""terminal_report: a terminal transcript → a structured report of what happened (JSON, ``schemas/terminal_report``).

Sources: ``n_synthetic`` generated sessions (``pipelines/dataset/terminal.py``; a row is only
``{kind, seed, index, family}`` and ``examples()`` regenerates the session, so rows stay tiny and the work
spreads over workers) plus, with ``transcripts_dir``, real transcripts: every ``*.log``/``*.txt`` below it
(sorted by path) with its answer in ``<name>.report.json`` beside it (``deploy.log`` → ``deploy.report.json``).
File rows carry the texts, so workers need no shared filesystem. A transcript whose report is missing is
dropped as ``no_report``; one whose report is not JSON or fails the schema as ``invalid_report``.

User turn: a one-line instruction, then the transcript in a fenced block (raw, with ANSI codes and ``\\r``
redraws, unless ``strip_ansi``: then :func:`pipelines.dataset.terminal.clean`). Assistant turn: the report as
canonical JSON (keys sorted, compact separators), validated against the schema.

Truncation rule (``max_transcript_chars``): a longer transcript keeps its head and its tail, each about half of
the budget, cut back to whole lines (a single line longer than its half is cut mid-line), with one marker line
``[... N lines cut ...]`` between them (N counts the lines dropped, partial ones included); the result never
exceeds the budget. The report still describes the whole session, so the label ``truncated`` marks such rows.

Group (leakage unit): ``terminal:<family>:<index>`` for synthetic rows, the file path for real ones;
provider (stratum): the family, ``real`` for files; complexity bucket: transcript length (low/medium/high).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from pathlib import Path
from typing import Any

import jsonschema
from pydantic import Field, field_validator

import schemas
from pipelines.dataset import terminal
from pipelines.dataset.example import SkipSource, chat, make_example
from schemas.config import ConfigError, Strict

logger = logging.getLogger(__name__)

NAME = "terminal_report"
SCHEMA_PATH = Path(schemas.__file__).parent / "terminal_report.schema.json"
SUFFIXES = (".log", ".txt")
REPORT_SUFFIX = ".report.json"
REAL_PROVIDER = "real"
LENGTH_BUCKETS = ((2000, "low"), (6000, "medium"))  # chars below which a transcript is low / medium, else high
SYSTEM_PROMPT = (
    "You are a DevOps assistant. Read the terminal session and report on it as one JSON object: "
    '{"summary": str, "key_successes": [{"desc", "specifics", "adjacent_context"}], '
    '"blockers": [{"desc", "impact", "owner_hint", "resolution_hint"}], "resources": [str]}. '
    "Be factual and specific (numbers, names, ports from the transcript). Blockers are only problems still "
    "unresolved at the end; a problem fixed during the session is a success. Resources are the files, URLs, "
    "hosts, ports, packages and commands the session touched, as they appear, in order of first appearance."
)
INSTRUCTION = "Report on this terminal session."
MARKER = "[... {n} lines cut ...]"


class Config(Strict):
    n_synthetic: int = Field(200, ge=0)  # generated sessions (round-robin over the families)
    seed: int = 0  # the synthetic sessions depend only on (seed, index, family)
    families: list[str] | None = None  # scenario families to use; None = all (terminal.FAMILIES)
    transcripts_dir: str | None = None  # real transcripts: *.log / *.txt, each with <name>.report.json beside it
    strip_ansi: bool = False  # give the model the clean rendering (no ANSI codes, \r redraws collapsed)
    max_transcript_chars: int = Field(24000, ge=200)  # longer transcripts keep head + tail (see module docs)
    system_prompt: str = SYSTEM_PROMPT

    @field_validator("families")
    @classmethod
    def _known_families(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else terminal.check_families(value)


# ---------------------------------------------------------------- the schema


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    """The report schema's validator (loaded once per process)."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def report_errors(report: Any) -> list[str]:
    """Schema violations of a report, as ``"<json path>: <message>"`` (empty when it is valid)."""
    errors = sorted(_validator().iter_errors(report), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{e.json_path}: {e.message}" for e in errors]


def canonical_report(report: dict[str, Any]) -> str:
    """The assistant turn: keys sorted, compact separators, non-ASCII kept as is."""
    return json.dumps(report, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------- sources


def _report_path(path: Path) -> Path:
    """``deploy.log`` → ``deploy.report.json`` in the same directory."""
    return path.with_name(path.stem + REPORT_SUFFIX)


def _read_text(path: Path) -> str:
    """A file's text; bytes that are not UTF-8 become U+FFFD (terminal logs are not always clean)."""
    return path.read_bytes().decode("utf-8", errors="replace")


def sources(cfg: Config) -> list[dict[str, Any]]:
    """Synthetic rows (index order), then one row per transcript file (sorted by path)."""
    names = terminal.check_families(cfg.families)
    rows: list[dict[str, Any]] = [
        {"kind": "synthetic", "seed": cfg.seed, "index": i, "family": terminal.family_for(i, names)}
        for i in range(cfg.n_synthetic)
    ]
    if cfg.transcripts_dir is None:
        return rows
    root = Path(cfg.transcripts_dir).expanduser()
    if not root.is_dir():
        raise ConfigError(f"terminal_report.transcripts_dir: {root} is not a directory (point it at the transcripts)")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    for path in files:
        rp = _report_path(path)
        rows.append(
            {
                "kind": "file",
                "path": str(path),
                "transcript": _read_text(path),
                "report": _read_text(rp) if rp.is_file() else None,
            }
        )
    logger.info("terminal_report: %d synthetic rows, %d transcript files under %s", cfg.n_synthetic, len(files), root)
    return rows


# ---------------------------------------------------------------- rendering


def truncate_transcript(text: str, max_chars: int) -> tuple[str, int]:
    """``text`` cut to at most ``max_chars`` keeping head and tail (the module docstring's rule); (text, lines cut)."""
    if len(text) <= max_chars:
        return text, 0
    worst_marker = len(MARKER.format(n=text.count("\n") + 1)) + 2  # the marker line and up to two newlines
    budget = max(0, max_chars - worst_marker)
    head = text[: budget - budget // 2]
    if "\n" in head:
        head = head[: head.rfind("\n") + 1]
    tail = text[len(text) - budget // 2 :] if budget // 2 else ""
    if "\n" in tail:
        tail = tail[tail.find("\n") + 1 :]
    middle = text[len(head) : len(text) - len(tail)]
    n_cut = len(middle.splitlines())
    sep = "" if not head or head.endswith("\n") else "\n"
    return f"{head}{sep}{MARKER.format(n=n_cut)}\n{tail}", n_cut


def fence_for(text: str) -> str:
    """A backtick fence longer than any backtick run inside ``text`` (so the block cannot end early)."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def render_user(transcript: str) -> str:
    """The user turn: the instruction, then the transcript in a fenced block."""
    fence = fence_for(transcript)
    body = transcript if transcript.endswith("\n") else transcript + "\n"
    return f"{INSTRUCTION}\n\n{fence}text\n{body}{fence}"


def length_bucket(n_chars: int) -> str:
    """low / medium / high by transcript length (the complexity stratum of this task)."""
    return next((name for limit, name in LENGTH_BUCKETS if n_chars < limit), "high")


def outcome_of(report: dict[str, Any]) -> str:
    """``success`` (no blockers), ``partial`` (blockers and successes) or ``failed`` (blockers only)."""
    if not report["blockers"]:
        return "success"
    return "partial" if report["key_successes"] else "failed"


# ---------------------------------------------------------------- examples


def _load_file_report(row: dict[str, Any]) -> dict[str, Any]:
    """The answer of a transcript file, schema-checked; a missing or bad one is a SkipSource."""
    path = row["path"]
    if row["report"] is None:
        raise SkipSource(f"no_report: {path} has no {_report_path(Path(path)).name} beside it")
    try:
        report = json.loads(row["report"])
    except json.JSONDecodeError as e:
        raise SkipSource(f"invalid_report: {_report_path(Path(path)).name} is not JSON ({e})") from e
    errors = report_errors(report)
    if errors:
        raise SkipSource(f"invalid_report: {_report_path(Path(path)).name}: {'; '.join(errors[:3])}")
    return report


def examples(row: dict[str, Any], cfg: Config) -> list[dict[str, Any]]:
    """One example per row: the (optionally cleaned, possibly truncated) transcript → the canonical report."""
    if row["kind"] == "synthetic":
        sc = terminal.make_scenario(row["seed"], row["index"], row["family"])
        transcript, report, family = sc.transcript, sc.report, sc.family
        errors = report_errors(report)
        if errors:  # a generator bug, not a data problem: fail loudly
            raise RuntimeError(f"terminal family {family} produced an invalid report: {errors}")
        group, source_id, provider = f"terminal:{family}:{sc.index}", f"terminal:{sc.seed}:{sc.index}", family
    else:
        report = _load_file_report(row)
        transcript, family = row["transcript"], REAL_PROVIDER
        group = source_id = row["path"]
        provider = REAL_PROVIDER
    text = terminal.clean(transcript) if cfg.strip_ansi else transcript
    shown, n_cut = truncate_transcript(text, cfg.max_transcript_chars)
    labels = {
        "kind": row["kind"],
        "family": family,
        "outcome": outcome_of(report),
        "n_successes": len(report["key_successes"]),
        "n_blockers": len(report["blockers"]),
        "n_resources": len(report["resources"]),
        "chars": len(text),
        "truncated": n_cut > 0,
        "lines_cut": n_cut,
        "ansi": "\x1b" in shown,
    }
    return [
        make_example(
            NAME,
            chat(cfg.system_prompt, render_user(shown), canonical_report(report)),
            group=group,
            source_id=source_id,
            provider=provider,
            complexity_bucket=length_bucket(len(text)),
            labels=labels,
        )
    ]
