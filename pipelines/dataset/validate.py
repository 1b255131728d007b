"""Validate OpenAI chat-format JSONL: a superset of the checks in OpenAI's fine-tuning cookbook.

Per line: blank lines, JSON, the record shape (known keys only, roles, content, ``weight`` 0/1 on assistant
turns only, at least one assistant turn) and, with the training tokenizer, the rendered length against a
token cap and whether any trainable (assistant) tokens survive truncation. Per file: a warning under 50
examples. ``check_example`` is the per-example part, reused by the dataset build job.

    python -m pipelines.dataset.validate data/train.jsonl --tokenizer models/tiny --max-tokens 2048

prints ``FILE:LINE: code: message`` per error, then a summary; exits 1 on any error, 0 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

MIN_EXAMPLES = 50  # OpenAI's recommended minimum; fewer is a warning, not an error
TOP_LEVEL_KEYS = ("messages", "tools", "parallel_tool_calls", "functions")
ROLES = ("system", "developer", "user", "assistant", "tool")
MESSAGE_KEYS = ("role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call", "refusal")

OverLimit = Literal["fail", "warn"]
Problem = tuple[str, str]  # (code, message)


@dataclass(frozen=True)
class Issue:
    line_no: int  # 1-based; 0 for a whole-file issue
    code: str
    message: str


@dataclass(frozen=True)
class TokenStats:
    n: int
    min: int
    mean: float
    p50: int
    p95: int
    max: int
    total_trainable: int  # assistant tokens that carry loss, after truncation to max_tokens when set
    n_over_limit: int


@dataclass
class Report:
    n_lines: int = 0
    n_examples: int = 0  # lines that passed every check
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    tokens: TokenStats | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    def error_counts(self) -> dict[str, int]:
        """Errors per code, sorted by code."""
        counts: dict[str, int] = {}
        for e in self.errors:
            counts[e.code] = counts.get(e.code, 0) + 1
        return dict(sorted(counts.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "n_lines": self.n_lines,
            "n_examples": self.n_examples,
            "error_counts": self.error_counts(),
            "errors": [asdict(e) for e in self.errors],
            "warnings": [asdict(w) for w in self.warnings],
            "tokens": asdict(self.tokens) if self.tokens else None,
        }


# ---------------------------------------------------------------- per example


def _content_problem(i: int, m: Mapping[str, Any]) -> Problem | None:
    """Content must be present (assistant tool/function calls may omit it) and text or a list of text parts."""
    role = m.get("role")
    content = m.get("content")
    if content is None:
        if role == "assistant" and (m.get("tool_calls") or m.get("function_call")):
            return None
        return "missing_content", f"message {i} ({role}) has no content"
    if isinstance(content, str):
        return None
    if isinstance(content, list) and all(
        isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content
    ):
        return None
    return "bad_content", f"message {i} content must be a string or a list of text parts, got {type(content).__name__}"


def _message_problems(i: int, m: Any) -> list[Problem]:
    """Problems of message ``i`` (1-based)."""
    if not isinstance(m, Mapping):
        return [("bad_message", f"message {i} must be an object, got {type(m).__name__}")]
    out: list[Problem] = []
    unknown = sorted(str(k) for k in m if k not in MESSAGE_KEYS)
    if unknown:
        out.append(("unknown_message_key", f"message {i} has unknown keys {unknown}; allowed: {list(MESSAGE_KEYS)}"))
    role = m.get("role")
    if role not in ROLES:
        what = "has no role" if role is None else f"has unknown role {role!r}"
        out.append(("unknown_role", f"message {i} {what}; allowed: {', '.join(ROLES)}"))
    problem = _content_problem(i, m)
    if problem:
        out.append(problem)
    if "weight" in m:
        w = m["weight"]
        if role != "assistant":
            out.append(("bad_weight", f"message {i}: weight is only allowed on assistant messages, not {role!r}"))
        elif isinstance(w, bool) or w not in (0, 1):
            out.append(("bad_weight", f"message {i}: weight must be 0 or 1, got {w!r}"))
    return out


def check_example(obj: Any) -> list[Problem]:
    """Every structural problem of one example (a parsed JSONL record), as ``(code, message)``; empty = valid."""
    if not isinstance(obj, Mapping):
        return [("not_object", f"each line must be a JSON object, got {type(obj).__name__}")]
    out: list[Problem] = []
    unknown = sorted(str(k) for k in obj if k not in TOP_LEVEL_KEYS)
    if unknown:
        out.append(("unknown_key", f"unknown top-level keys {unknown}; allowed: {list(TOP_LEVEL_KEYS)}"))
    if "messages" not in obj:
        return [*out, ("missing_messages", "no 'messages' key: each line needs {\"messages\": [...]}")]
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        return [*out, ("bad_messages", "'messages' must be a non-empty list of messages")]
    if "tools" in obj and not isinstance(obj["tools"], list):
        out.append(("bad_tools", "'tools' must be a list"))
    for i, m in enumerate(messages, 1):
        out += _message_problems(i, m)
    assistants = [m for m in messages if isinstance(m, Mapping) and m.get("role") == "assistant"]
    if not assistants:
        out.append(("no_assistant", "no assistant message: there is nothing to train on"))
    elif all(m.get("weight", 1) == 0 for m in assistants):
        out.append(("no_trainable_tokens", "every assistant message has weight 0: there is nothing to train on"))
    return out


def _text_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages with content flattened to text (content parts joined) for tokenization."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(p["text"] for p in content)
        out.append({**m, "content": content or ""})
    return out


def token_problems(
    count: Any, max_tokens: int | None, over_limit: OverLimit = "fail"
) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) of one example's ``TokenCount`` against the cap."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    if max_tokens is not None and count.n_tokens > max_tokens:
        problem = ("too_long", f"{count.n_tokens} tokens > max {max_tokens}; it would be truncated")
        (errors if over_limit == "fail" else warnings).append(problem)
    trainable = count.trainable_within(max_tokens) if max_tokens is not None else count.n_trainable
    if trainable == 0:
        where = f" within the first {max_tokens} tokens" if max_tokens is not None else ""
        errors.append(("no_trainable_tokens", f"no assistant (trainable) tokens{where}"))
    return errors, warnings


# ---------------------------------------------------------------- per file


def _percentile(sorted_values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile (deterministic, an actual value of the data)."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _token_stats(lengths: list[int], trainable: int, n_over: int) -> TokenStats | None:
    if not lengths:
        return None
    s = sorted(lengths)
    return TokenStats(
        n=len(s),
        min=s[0],
        mean=round(sum(s) / len(s), 2),
        p50=_percentile(s, 50),
        p95=_percentile(s, 95),
        max=s[-1],
        total_trainable=trainable,
        n_over_limit=n_over,
    )


def validate_lines(
    lines: Iterable[str | bytes],
    tokenizer: Any = None,
    max_tokens: int | None = None,
    over_limit: OverLimit = "fail",
) -> Report:
    """Check every line (with or without its ``\\n``); line numbers are 1-based.

    With a tokenizer, valid examples are rendered with its chat template to count tokens.
    """
    if over_limit not in ("fail", "warn"):
        raise ValueError(f"over_limit must be 'fail' or 'warn', got {over_limit!r}")
    if max_tokens is not None and tokenizer is None:
        raise ValueError("max_tokens needs a tokenizer: tokens are counted with the training tokenizer's chat template")
    from pipelines.dataset.tokens import count_tokens

    report = Report()
    lengths: list[int] = []
    trainable = n_over = 0
    seen: dict[str, int] = {}
    for line_no, raw in enumerate(lines, 1):
        report.n_lines = line_no
        problems, warns, obj = _parse_line(raw)
        if not problems:
            problems = check_example(obj)
        if not problems and tokenizer is not None:
            count = count_tokens(tokenizer, _text_messages(obj["messages"]))
            problems, token_warns = token_problems(count, max_tokens, over_limit)
            warns += token_warns
            if not problems:
                lengths.append(count.n_tokens)
                trainable += count.trainable_within(max_tokens) if max_tokens is not None else count.n_trainable
                n_over += max_tokens is not None and count.n_tokens > max_tokens
        if not problems:
            digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()
            if digest in seen:
                warns.append(("duplicate", f"same example as line {seen[digest]}"))
            seen.setdefault(digest, line_no)
            report.n_examples += 1
        report.errors += [Issue(line_no, c, m) for c, m in problems]
        report.warnings += [Issue(line_no, c, m) for c, m in warns]
    if report.n_examples < MIN_EXAMPLES:
        report.warnings.append(
            Issue(0, "few_examples", f"{report.n_examples} valid examples; at least {MIN_EXAMPLES} are recommended")
        )
    if tokenizer is not None:
        report.tokens = _token_stats(lengths, trainable, n_over)
    return report


def _parse_line(raw: str | bytes) -> tuple[list[Problem], list[Problem], Any]:
    """(errors, warnings, parsed object) of one raw line."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            return [("invalid_utf8", f"not UTF-8: {e}")], [], None
    text = raw.rstrip("\n").rstrip("\r")
    if not text.strip():
        return [("blank_line", "blank line: JSONL allows no empty lines")], [], None
    try:
        return [], [], json.loads(text)
    except json.JSONDecodeError as e:
        return [("invalid_json", f"not valid JSON: {e}")], [], None


def iter_file_lines(path: str | Path) -> Iterable[bytes]:
    """Raw lines of a file split on ``\\n`` only (a final newline does not start an extra line)."""
    with open(path, "rb") as f:
        yield from f


def validate_file(
    path: str | Path, tokenizer: Any = None, max_tokens: int | None = None, over_limit: OverLimit = "fail"
) -> Report:
    """``validate_lines`` over a file; an unreadable file is one ``unreadable`` error."""
    try:
        return validate_lines(iter_file_lines(path), tokenizer, max_tokens, over_limit)
    except OSError as e:
        return Report(errors=[Issue(0, "unreadable", f"cannot read the file: {e.strerror or e}")])


# ---------------------------------------------------------------- command


def format_report(path: str, report: Report) -> list[str]:
    """Human lines: ``FILE:LINE: code: message`` per error, ``FILE:LINE: warning: code: message`` per
    warning, then a summary (and token statistics when counted)."""

    def where(line_no: int) -> str:
        return f"{path}:{line_no}" if line_no else path

    out = [f"{where(e.line_no)}: {e.code}: {e.message}" for e in report.errors]
    out += [f"{where(w.line_no)}: warning: {w.code}: {w.message}" for w in report.warnings]
    counts = ", ".join(f"{c}={n}" for c, n in report.error_counts().items())
    status = "OK" if report.ok else "FAILED"
    out.append(
        f"{path}: {status}: {report.n_lines} lines, {report.n_examples} valid examples, "
        f"{len(report.errors)} errors{f' ({counts})' if counts else ''}, {len(report.warnings)} warnings"
    )
    t = report.tokens
    if t:
        out.append(
            f"{path}: tokens per example min={t.min} mean={t.mean} p50={t.p50} p95={t.p95} max={t.max}; "
            f"trainable tokens total={t.total_trainable}; over limit={t.n_over_limit}"
        )
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tfpredict-validate", description="Validate OpenAI chat-format JSONL fine-tuning files."
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--tokenizer", metavar="DIR", help="tokenizer directory (with a chat template) to count tokens")
    p.add_argument("--max-tokens", type=int, metavar="N", help="token cap per example (needs --tokenizer)")
    p.add_argument("--over-limit", choices=("fail", "warn"), default="fail", help="an example over the cap is ...")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the human report")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Validate the files; exit status 1 on any error, 0 otherwise (2 on bad arguments)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.max_tokens is not None and not args.tokenizer:
        parser.error("--max-tokens needs --tokenizer (tokens are counted with the training tokenizer)")
    tokenizer = None
    if args.tokenizer:
        from pipelines.dataset.tokens import load_tokenizer

        try:
            tokenizer = load_tokenizer(args.tokenizer)
        except (OSError, ValueError) as e:
            print(f"error: cannot load tokenizer {args.tokenizer}: {e}", file=sys.stderr)
            return 2
    reports = {f: validate_file(f, tokenizer, args.max_tokens, args.over_limit) for f in args.files}
    ok = all(r.ok for r in reports.values())
    if args.json:
        print(json.dumps({"ok": ok, "files": {f: r.to_dict() for f, r in reports.items()}}, indent=2))
    else:
        for f, r in reports.items():
            print("\n".join(format_report(f, r)))
        print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
