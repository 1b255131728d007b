"""Scores for the tasks beside plan prediction, one example at a time; every scorer returns a ``TaskScore`` and
never raises on what a model writes.

- **rego_policy** (KICS queries): ``write_policy`` — the answer is a query; it must compile and pass the query's
  reference tests (the positive/negative Terraform files and expected results that the same query's
  ``write_tests`` reference answer holds) with the project's checker (:func:`pipelines.dataset.rego.check_query`).
  ``write_tests`` — the answer is a test suite; it must parse and the reference query (in the prompt) must pass
  it. Score 1 when it passes, else 0; the checker's status (``compile_error``, ``positive_not_flagged`` ...) and
  reason are kept.
- **terminal_report**: the answer must parse as JSON and validate against ``schemas/terminal_report.schema.json``
  (else score 0, like an invalid plan); the score is the field-level overlap with the reference: the mean over
  the schema's fields of token F1 between the field's text in the answer and in the reference (all its string
  leaves, in order), except lists of strings (``resources``), which are compared as sets (F1 of exact items).
  A field empty on both sides scores 1.
- **records** (incident/audit resolutions): a reference-overlap metric chosen in the config: ``rouge_l`` (the
  F-measure of the longest common subsequence of word tokens, the default), ``token_f1`` (bag-of-words F1, as
  SQuAD scores answers) or ``exact`` (whitespace-normalized equality).

Tokens are lower-cased runs of letters, digits and ``_``; punctuation is not a token.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

TASKS = ("rego_policy", "terminal_report", "records")  # scored here; plan_prediction is pipelines.evaluate.metrics
RecordsMetric = Literal["rouge_l", "token_f1", "exact"]
_TOKEN = re.compile(r"[a-z0-9_]+")


@dataclass(frozen=True)
class TaskScore:
    score: float  # 0..1
    status: str  # ok (scored) | invalid (does not parse/validate) | a rego checker status | error (no answer)
    valid: bool | None = None  # parsed and schema-valid (terminal_report); None where the task has no schema
    reason: str | None = None


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def token_f1(pred: Sequence[str], ref: Sequence[str]) -> float:
    """Bag-of-words F1 of two token lists; both empty: 1."""
    if not pred and not ref:
        return 1.0
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    p, r = common / len(pred), common / len(ref)
    return 2 * p * r / (p + r)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (O(len(a) * len(b)) time, O(len(b)) memory)."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(pred: Sequence[str], ref: Sequence[str]) -> float:
    """ROUGE-L F-measure (beta 1) of two token lists; both empty: 1."""
    if not pred and not ref:
        return 1.0
    n = lcs_length(pred, ref)
    if n == 0:
        return 0.0
    p, r = n / len(pred), n / len(ref)
    return 2 * p * r / (p + r)


def score_records(answer: str, reference: str, metric: RecordsMetric = "rouge_l") -> TaskScore:
    if metric == "exact":
        same = " ".join(answer.split()) == " ".join(reference.split())
        return TaskScore(1.0 if same else 0.0, "ok")
    fn = rouge_l if metric == "rouge_l" else token_f1
    return TaskScore(fn(tokens(answer), tokens(reference)), "ok")


# ---------------------------------------------------------------- terminal reports
def _leaves(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for k in sorted(value) for s in _leaves(value[k])]
    if isinstance(value, list):
        return [s for v in value for s in _leaves(v)]
    return [] if value is None else [json.dumps(value)]


def field_overlap(pred: Any, ref: Any) -> float:
    """One field's overlap: set F1 for lists of strings, else token F1 of the string leaves."""
    strings = isinstance(ref, list) and isinstance(pred, list) and all(isinstance(x, str) for x in [*ref, *pred])
    if strings:
        p, r = set(pred), set(ref)
        if not p and not r:
            return 1.0
        common = len(p & r)
        return 0.0 if common == 0 else 2 * common / (len(p) + len(r))
    return token_f1(tokens(" ".join(_leaves(pred))), tokens(" ".join(_leaves(ref))))


def score_terminal_report(answer: str, reference: str) -> TaskScore:
    from pipelines.dataset.tasks.terminal_report import report_errors

    try:
        report = json.loads(answer)
    except ValueError as e:
        return TaskScore(0.0, "invalid", False, f"not JSON: {e}")
    errors = report_errors(report)
    if errors:
        return TaskScore(0.0, "invalid", False, "; ".join(errors[:3]))
    ref = json.loads(reference)
    fields = sorted(ref)
    overlap = sum(field_overlap(report.get(f), ref[f]) for f in fields) / max(len(fields), 1)
    return TaskScore(overlap, "ok", True)


# ---------------------------------------------------------------- rego
def query_from_prompt(user: str) -> str | None:
    """The reference query a write_tests prompt shows (everything after its ``# file: query.rego`` line)."""
    from pipelines.dataset import rego
    from pipelines.dataset.tasks.rego_policy import FILE_HEADER

    head = f"{FILE_HEADER}{rego.QUERY_FILE}\n"
    i = user.find(head)
    return None if i < 0 else user[i + len(head) :]


def score_rego(subtask: str, answer: str, user: str, reference_tests: str | None, timeout_s: float = 10.0) -> TaskScore:
    """write_policy: ``answer`` against ``reference_tests`` (a write_tests reference answer of the same query);
    write_tests: the query in ``user`` against the tests ``answer`` writes."""
    from pipelines.dataset.tasks import rego_policy as rp

    if subtask == "write_policy":
        if reference_tests is None:
            return TaskScore(0.0, "error", None, "no reference tests: build rego_policy with subtasks "
                             "[write_policy, write_tests] so each query's tests are in its split")  # fmt: skip
        try:
            suite = rp.parse_tests_answer(reference_tests)
        except ValueError as e:
            return TaskScore(0.0, "error", None, f"the reference tests do not parse: {e}")
        res = rp.check_against(answer, suite, timeout_s=timeout_s)
    elif subtask == "write_tests":
        query = query_from_prompt(user)
        if query is None:
            return TaskScore(0.0, "error", None, "the prompt holds no '# file: query.rego' section")
        res = rp.check_tests_answer(query, answer, timeout_s=timeout_s)
    else:
        return TaskScore(0.0, "error", None, f"unknown rego_policy subtask {subtask!r}")
    return TaskScore(1.0 if res.ok else 0.0, res.status, None, res.reason or None)


def summarize(scores: Sequence[TaskScore]) -> dict[str, Any]:
    """n, mean score, pass rate (score 1), valid rate (where the task has a schema) and status counts."""
    n = len(scores)
    valid = [s.valid for s in scores if s.valid is not None]
    return {
        "n": n,
        "score": sum(s.score for s in scores) / n if n else 0.0,
        "pass_rate": sum(s.score == 1.0 for s in scores) / n if n else 0.0,
        "valid_rate": (sum(valid) / len(valid)) if valid else None,
        "status": dict(sorted(Counter(s.status for s in scores).items())),
    }
