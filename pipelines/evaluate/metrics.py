"""Plan-prediction metrics: a predicted answer against terraform's real resource changes.

One example is compared as two multisets: of (address, actions) pairs and of addresses alone. Matching is
multiset intersection, so order never matters and a pair predicted twice counts once as a hit and once as a
false positive (a duplicate is an error the user would see). Replacement keeps its order at pair level:
``["delete", "create"]`` and ``["create", "delete"]`` (create_before_destroy) are different answers there, but
both are the ``replace`` action category in the per-action breakdown, whose pairs are (address, category).

Per-example precision is TP / (TP + FP), 1 when nothing was predicted and nothing was missed; recall likewise;
F1 their harmonic mean (0 when both are 0). An answer that does not parse or does not fit the schema is a miss:
no predicted pairs, precision = recall = F1 = 0 and no exact match, even when the truth is empty. Micro scores
sum TP / FP / FN over examples; macro scores average the per-example ones. Bootstrap intervals resample
examples with replacement (seeded), percentile method.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "plan_prediction.schema.json"
ACTIONS = ("create", "update", "delete", "replace")


def category(actions: Sequence[str]) -> str:
    """create / update / delete / replace (either order) / the actions joined with '+' for anything else."""
    a = list(actions)
    if sorted(a) == ["create", "delete"]:
        return "replace"
    return a[0] if len(a) == 1 else "+".join(a)


@cache
def _validator() -> Any:
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    return jsonschema.Draft202012Validator(schema)


def parse_prediction(text: str) -> tuple[list[dict[str, Any]] | None, str | None]:
    """(resource changes, None), or (None, why the answer is invalid: ``invalid_json: …`` / ``schema: …``)."""
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, TypeError) as e:
        return None, f"invalid_json: {e}"
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        return None, f"schema: {where}: {e.message[:200]}"
    return [{"address": c["address"], "actions": list(c["actions"])} for c in doc["resource_changes"]], None


@dataclass(frozen=True)
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, o: Counts) -> Counts:
        return Counts(self.tp + o.tp, self.fp + o.fp, self.fn + o.fn)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else (1.0 if self.fn == 0 else 0.0)

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else (1.0 if self.fp == 0 else 0.0)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def match(pred: Iterable[Any], truth: Iterable[Any]) -> Counts:
    p, t = Counter(pred), Counter(truth)
    tp = sum((p & t).values())
    return Counts(tp, sum(p.values()) - tp, sum(t.values()) - tp)


def _pairs(changes: Iterable[Mapping[str, Any]]) -> list[tuple[str, tuple[str, ...]]]:
    return [(c["address"], tuple(c["actions"])) for c in changes]


def status_of(error: str | None, finished: bool, parse_error: str | None, closed: bool = False) -> str:
    """error: no answer; ok: valid as written; closed: cut at the budget, valid once closed after its last
    complete change; invalid: ended by itself but does not parse/validate; cut: ran into the budget."""
    if error:
        return "error"
    if parse_error is None:
        return "closed" if closed else "ok"
    return "invalid" if finished else "cut"


def answer_of(text: str, finished: bool, constrained: bool) -> tuple[str, bool]:
    """(the text to score, whether it was closed): a cut constrained answer is closed after its last change."""
    if constrained and not finished:
        from pipelines.evaluate.decoding import close_at_budget

        closed = close_at_budget(text)
        if closed is not None and parse_prediction(closed)[1] is None:
            return closed, True
    return text, False


@dataclass(frozen=True)
class Answer:
    answer: str  # what is scored: the text, or a cut constrained answer closed after its last change
    changes: list[dict[str, Any]] | None  # None: no valid answer (a miss)
    parse_error: str | None
    status: str  # ok | closed | invalid | cut | error (status_of)


def read_answer(text: str, finished: bool, constrained: bool, error: str | None = None) -> Answer:
    """A predictor's output as evaluation scores it (and Serve's /predict answers it)."""
    if error:
        return Answer("", None, "no answer: " + error, "error")
    answer, closed = answer_of(text, finished, constrained)
    changes, parse_error = parse_prediction(answer)
    return Answer(answer, changes, parse_error, status_of(None, finished, parse_error, closed))


@dataclass(frozen=True)
class ExampleScore:
    valid: bool
    pairs: Counts  # (address, actions)
    addresses: Counts
    by_action: dict[str, Counts]  # (address, category) pairs of each category present on either side
    exact: bool

    @property
    def f1(self) -> float:
        return self.pairs.f1 if self.valid else 0.0

    def as_row(self) -> dict[str, Any]:
        """Flat columns for predictions.parquet."""
        return {
            "valid": self.valid,
            "exact_match": self.exact,
            "precision": self.pairs.precision if self.valid else 0.0,
            "recall": self.pairs.recall if self.valid else 0.0,
            "f1": self.f1,
            "address_f1": self.addresses.f1 if self.valid else 0.0,
            "tp": self.pairs.tp,
            "fp": self.pairs.fp,
            "fn": self.pairs.fn,
        }


def score_example(pred: Sequence[Mapping[str, Any]] | None, truth: Sequence[Mapping[str, Any]]) -> ExampleScore:
    """One example; ``pred`` None is an invalid answer (a miss)."""
    valid = pred is not None
    p = list(pred or [])
    pairs = match(_pairs(p), _pairs(truth))
    addresses = match((c["address"] for c in p), (c["address"] for c in truth))
    cats = {category(c["actions"]) for c in [*p, *truth]}
    by_action = {
        k: match(
            ((c["address"], k) for c in p if category(c["actions"]) == k),
            ((c["address"], k) for c in truth if category(c["actions"]) == k),
        )
        for k in sorted(cats)
    }
    exact = valid and Counter(_pairs(p)) == Counter(_pairs(truth))
    return ExampleScore(valid, pairs, addresses, by_action, exact)


def _sum(counts: Iterable[Counts]) -> Counts:
    total = Counts()
    for c in counts:
        total += c
    return total


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


@dataclass(frozen=True)
class Summary:
    n: int
    valid_rate: float
    exact_match: float
    micro_precision: float
    micro_recall: float
    micro_f1: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    address_micro_f1: float
    address_macro_f1: float
    by_action: dict[str, dict[str, float]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(scores: Sequence[ExampleScore]) -> Summary:
    micro = _sum(s.pairs for s in scores)
    addr = _sum(s.addresses for s in scores)
    by_action: dict[str, dict[str, float]] = {}
    for k in sorted({k for s in scores for k in s.by_action}):
        c = _sum(s.by_action[k] for s in scores if k in s.by_action)
        by_action[k] = {"precision": c.precision, "recall": c.recall, "f1": c.f1, "support": float(c.tp + c.fn)}
    return Summary(
        n=len(scores),
        valid_rate=_mean([float(s.valid) for s in scores]),
        exact_match=_mean([float(s.exact) for s in scores]),
        micro_precision=micro.precision,
        micro_recall=micro.recall,
        micro_f1=micro.f1,
        macro_precision=_mean([s.pairs.precision if s.valid else 0.0 for s in scores]),
        macro_recall=_mean([s.pairs.recall if s.valid else 0.0 for s in scores]),
        macro_f1=_mean([s.f1 for s in scores]),
        address_micro_f1=addr.f1,
        address_macro_f1=_mean([s.addresses.f1 if s.valid else 0.0 for s in scores]),
        by_action=by_action,
    )


def bootstrap(
    scores: Sequence[ExampleScore],
    stat: Callable[[Sequence[ExampleScore]], float],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` over examples resampled with replacement."""
    if not scores:
        return (0.0, 0.0)
    rng = random.Random(seed)
    n = len(scores)
    values = sorted(stat([scores[rng.randrange(n)] for _ in range(n)]) for _ in range(n_resamples))
    lo = int((1 - level) / 2 * n_resamples)
    hi = min(n_resamples - 1, int((1 + level) / 2 * n_resamples))
    return values[lo], values[hi]


HEADLINE: dict[str, Callable[[Sequence[ExampleScore]], float]] = {
    "micro_f1": lambda s: summarize(s).micro_f1,
    "macro_f1": lambda s: _mean([x.f1 for x in s]),
    "exact_match": lambda s: _mean([float(x.exact) for x in s]),
}


def intervals(scores: Sequence[ExampleScore], *, n_resamples: int = 1000, seed: int = 0) -> dict[str, list[float]]:
    return {k: list(bootstrap(scores, f, n_resamples=n_resamples, seed=seed)) for k, f in HEADLINE.items()}


def by_group(scores: Sequence[ExampleScore], keys: Sequence[str]) -> dict[str, Summary]:
    """Summaries per group value (provider, complexity bucket, task variant), groups sorted."""
    groups: dict[str, list[ExampleScore]] = {}
    for s, k in zip(scores, keys, strict=True):
        groups.setdefault(k, []).append(s)
    return {k: summarize(v) for k, v in sorted(groups.items())}


# ---------------------------------------------------------------- error analysis
# Why an answer is wrong, address by address. A valid answer is aligned with the truth: equal (address, actions)
# pairs are correct; an address on both sides with other actions is ``wrong_action``; what is left on one side
# only is, in this order, ``expansion`` (the same resource with other count/for_each instance keys on the other
# side, or none), ``module_address`` (the same resource under another module path), else ``missed_resource`` or
# ``hallucinated_resource``. An answer that is not valid is one error of its status: ``invalid_json`` (ended
# but does not parse/validate), ``cut`` (ran into the token budget) or ``no_answer`` (the predictor failed).
ERRORS = (
    "invalid_json", "cut", "no_answer", "missed_resource", "hallucinated_resource", "wrong_action", "expansion",
    "module_address",
)  # fmt: skip
_INSTANCE_KEY = re.compile(r"\[(?:\"(?:[^\"\\]|\\.)*\"|[^\]\"]*)\]")
_MODULE_PATH = re.compile(r"^(?:module\.[^.\[]+(?:\[(?:\"(?:[^\"\\]|\\.)*\"|[^\]\"]*)\])?\.)+")
ABSENT = "absent"


def resource_of(address: str) -> str:
    """The address without instance keys: ``module.a["x"].aws_s3_bucket.b[0]`` → ``module.a.aws_s3_bucket.b``."""
    return _INSTANCE_KEY.sub("", address)


def without_module(address: str) -> str:
    """The resource part of an address: ``module.a.module.b[1].aws_vpc.this`` → ``aws_vpc.this``."""
    return _MODULE_PATH.sub("", address)


@dataclass(frozen=True)
class Aligned:
    """One address-level comparison: action categories on each side (``absent``: not there) and the error."""

    truth: str
    pred: str
    error: str | None  # None: correct


def align(pred: Sequence[Mapping[str, Any]], truth: Sequence[Mapping[str, Any]]) -> list[Aligned]:
    """Address-level alignment of a *valid* answer with the truth (deterministic order)."""
    p, t = Counter(_pairs(pred)), Counter(_pairs(truth))
    ok = p & t
    out = [Aligned(category(a), category(a), None) for (_addr, a), k in sorted(ok.items()) for _ in range(k)]
    p, t = p - ok, t - ok
    fp: list[tuple[str, tuple[str, ...]]] = sorted(p.elements())
    fn: list[tuple[str, tuple[str, ...]]] = sorted(t.elements())
    for addr in sorted({a for a, _ in fp} & {a for a, _ in fn}):  # same address, other actions
        ps, ts = [x for x in fp if x[0] == addr], [x for x in fn if x[0] == addr]
        for x, y in zip(ps, ts, strict=False):
            out.append(Aligned(category(y[1]), category(x[1]), "wrong_action"))
            fp.remove(x)
            fn.remove(y)
    pred_res = {resource_of(a) for a, _ in _pairs(pred)}
    truth_res = {resource_of(a) for a, _ in _pairs(truth)}
    pred_bare = {without_module(r) for r in pred_res}
    truth_bare = {without_module(r) for r in truth_res}
    for addr, a in fn:
        r = resource_of(addr)
        kind = ("expansion" if r in pred_res else "module_address" if without_module(r) in pred_bare
                else "missed_resource")  # fmt: skip
        out.append(Aligned(category(a), ABSENT, kind))
    for addr, a in fp:
        r = resource_of(addr)
        kind = ("expansion" if r in truth_res else "module_address" if without_module(r) in truth_bare
                else "hallucinated_resource")  # fmt: skip
        out.append(Aligned(ABSENT, category(a), kind))
    return out


def errors_of(status: str, pred: Sequence[Mapping[str, Any]] | None, truth: Sequence[Mapping[str, Any]]) -> Counter:
    """Error category → count for one example (``status`` as in predictions: ok | closed | invalid | cut | error;
    a closed answer is valid, so what closing dropped shows up as missed)."""
    if status not in ("ok", "closed") or pred is None:
        return Counter({{"cut": "cut", "error": "no_answer"}.get(status, "invalid_json"): 1})
    return Counter(a.error for a in align(pred, truth) if a.error)


def confusion(pairs: Iterable[tuple[Sequence[Mapping[str, Any]] | None, Sequence[Mapping[str, Any]]]]) -> dict:
    """Action confusion over valid answers: {truth category: {predicted category: count}}, ``absent`` included."""
    out: dict[str, Counter] = {}
    for pred, truth in pairs:
        if pred is None:
            continue
        for a in align(pred, truth):
            out.setdefault(a.truth, Counter())[a.pred] += 1
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


def slices_of(truth: Sequence[Mapping[str, Any]], variant: str) -> list[str]:
    """The example slices an example belongs to, for per-category F1: ``all``, its variant (plan / change),
    ``count_for_each`` (an instance key in the truth), ``module`` (a module address in the truth)."""
    out = ["all", variant]
    if any(resource_of(c["address"]) != c["address"] for c in truth):
        out.append("count_for_each")
    if any(c["address"].startswith("module.") for c in truth):
        out.append("module")
    return out


# the slice whose F1 shows an error category getting better (mitigation measures it there)
SLICE_OF_ERROR = {"wrong_action": "change", "expansion": "count_for_each", "module_address": "module"}
