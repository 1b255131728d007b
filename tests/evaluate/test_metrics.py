"""Plan-prediction metrics on hand-computed cases (pure functions, no Ray)."""

from __future__ import annotations

import json

import pytest

from pipelines.evaluate.metrics import (
    Counts,
    align,
    bootstrap,
    by_group,
    category,
    confusion,
    errors_of,
    intervals,
    parse_prediction,
    resource_of,
    score_example,
    slices_of,
    summarize,
    without_module,
)


def rc(*pairs: tuple[str, list[str]]) -> list[dict[str, object]]:
    return [{"address": a, "actions": act} for a, act in pairs]


A = ("null_resource.a", ["create"])
B = ("null_resource.b", ["update"])
C = ("module.m.terraform_data.c[0]", ["delete", "create"])
C_CBD = ("module.m.terraform_data.c[0]", ["create", "delete"])
D = ("null_resource.d", ["delete"])


def test_perfect_and_unordered() -> None:
    s = score_example(rc(C, B, A), rc(A, B, C))
    assert s.valid and s.exact and s.pairs == Counts(3, 0, 0) and s.f1 == 1.0


def test_empty_prediction_and_empty_truth() -> None:
    both = score_example([], [])
    assert (both.pairs.precision, both.pairs.recall, both.f1, both.exact) == (1.0, 1.0, 1.0, True)
    nothing_predicted = score_example([], rc(A, B))
    assert nothing_predicted.pairs == Counts(0, 0, 2)
    assert (nothing_predicted.pairs.precision, nothing_predicted.pairs.recall, nothing_predicted.f1) == (0.0, 0.0, 0.0)
    hallucinated = score_example(rc(A), [])
    assert hallucinated.pairs == Counts(0, 1, 0)
    assert (hallucinated.pairs.precision, hallucinated.pairs.recall, hallucinated.f1, hallucinated.exact) == (
        0.0, 0.0, 0.0, False,
    )  # fmt: skip


def test_partial_hand_computed() -> None:
    # truth A B C; predicted A (right), B with the wrong action, D (hallucinated)
    s = score_example(rc(A, ("null_resource.b", ["delete"]), D), rc(A, B, C))
    assert s.pairs == Counts(1, 2, 2)
    assert s.pairs.precision == pytest.approx(1 / 3) and s.pairs.recall == pytest.approx(1 / 3)
    assert s.f1 == pytest.approx(1 / 3)
    assert s.addresses == Counts(2, 1, 1)  # a and b found, d extra, c missed
    assert s.by_action == {
        "create": Counts(1, 0, 0),
        "delete": Counts(0, 2, 0),
        "replace": Counts(0, 0, 1),
        "update": Counts(0, 0, 1),
    }


def test_duplicates_in_the_prediction_are_false_positives() -> None:
    s = score_example(rc(A, A, B), rc(A, B))
    assert s.pairs == Counts(2, 1, 0) and not s.exact
    assert s.pairs.precision == pytest.approx(2 / 3) and s.pairs.recall == 1.0
    assert s.f1 == pytest.approx(0.8)
    assert s.addresses == Counts(2, 1, 0)


def test_replace_order_matters_per_pair_not_per_category() -> None:
    assert category(["delete", "create"]) == category(["create", "delete"]) == "replace"
    s = score_example(rc(C_CBD), rc(C))
    assert s.pairs == Counts(0, 1, 1) and s.addresses == Counts(1, 0, 0)
    assert s.by_action == {"replace": Counts(1, 0, 0)}
    # delete + create as two rows is not a replacement: a duplicate address and two wrong actions
    c_del, c_add = ("module.m.terraform_data.c[0]", ["delete"]), ("module.m.terraform_data.c[0]", ["create"])
    split = score_example(rc(c_del, c_add), rc(C))
    assert split.pairs == Counts(0, 2, 1) and split.addresses == Counts(1, 1, 0)
    assert split.by_action == {"create": Counts(0, 1, 0), "delete": Counts(0, 1, 0), "replace": Counts(0, 0, 1)}


def test_invalid_json_is_a_miss_even_on_an_empty_truth() -> None:
    for text in ['{"resource_changes": [', "not json", '{"changes": []}', '{"resource_changes": [{"address": "x"}]}']:
        pred, err = parse_prediction(text)
        assert pred is None and err is not None
    assert parse_prediction("not json")[1].startswith("invalid_json: ")  # type: ignore[union-attr]
    assert parse_prediction('{"changes": []}')[1].startswith("schema: (root): ")  # type: ignore[union-attr]
    noop = '{"resource_changes": [{"address": "null_resource.a", "actions": ["noop"]}]}'
    assert parse_prediction(noop)[1].startswith("schema: resource_changes/0/actions: ")  # type: ignore[union-attr]
    bad = score_example(None, [])
    assert (bad.valid, bad.f1, bad.exact) == (False, 0.0, False)
    miss = score_example(None, rc(A, B))
    assert miss.pairs == Counts(0, 0, 2) and miss.f1 == 0.0
    ok, err = parse_prediction(json.dumps({"resource_changes": rc(A, C)}))
    assert err is None and ok == rc(A, C)


def test_micro_and_macro_by_hand() -> None:
    scores = [
        score_example(rc(A, B), rc(A, B)),  # 2 tp: P=R=F1=1
        score_example(rc(A), rc(A, B, C)),  # 1 tp, 2 fn: P=1, R=1/3, F1=0.5
        score_example(None, rc(D)),  # invalid: 1 fn, all 0
        score_example([], []),  # empty = empty: 1
    ]
    s = summarize(scores)
    assert s.n == 4 and s.valid_rate == 0.75 and s.exact_match == 0.5
    # micro: tp 3, fp 0, fn 3
    assert (s.micro_precision, s.micro_recall, s.micro_f1) == (1.0, 0.5, pytest.approx(2 / 3))
    assert s.macro_precision == pytest.approx((1 + 1 + 0 + 1) / 4)
    assert s.macro_recall == pytest.approx((1 + 1 / 3 + 0 + 1) / 4)
    assert s.macro_f1 == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert s.by_action["create"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2.0}
    assert s.by_action["update"]["recall"] == 0.5 and s.by_action["delete"]["recall"] == 0.0
    groups = by_group(scores, ["aws", "null", "null", "aws"])
    assert list(groups) == ["aws", "null"] and groups["aws"].macro_f1 == 1.0
    assert groups["null"].macro_f1 == pytest.approx(0.25)


def test_bootstrap_intervals_on_known_cases() -> None:
    perfect = [score_example(rc(A), rc(A))] * 10
    assert intervals(perfect) == {"micro_f1": [1.0, 1.0], "macro_f1": [1.0, 1.0], "exact_match": [1.0, 1.0]}
    # two examples, F1 1 and 0: a resample of 2 has mean 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4, so the
    # 95% percentile interval is [0, 1]; a 40% interval is [0.5, 0.5] (the middle half is all 0.5)
    two = [score_example(rc(A), rc(A)), score_example([], rc(A))]
    mean = lambda s: sum(x.f1 for x in s) / len(s)  # noqa: E731
    assert bootstrap(two, mean, n_resamples=4000, seed=1) == (0.0, 1.0)
    assert bootstrap(two, mean, n_resamples=4000, seed=1, level=0.4) == (0.5, 0.5)
    # reproducible by seed
    assert bootstrap(two, mean, seed=3) == bootstrap(two, mean, seed=3)
    assert bootstrap([], mean) == (0.0, 0.0)


# ---------------------------------------------------------------- error analysis
def test_addresses_lose_instance_keys_and_module_paths_even_with_brackets_and_dots_inside_keys() -> None:
    assert resource_of('module.a["x"].aws_s3_bucket.b[0]') == "module.a.aws_s3_bucket.b"
    assert resource_of('aws_s3_bucket.b["a.b]c"]') == "aws_s3_bucket.b"  # "]" and "." inside a quoted key
    assert resource_of('aws_s3_bucket.b["say \\"hi\\"]"]') == "aws_s3_bucket.b"  # escaped quotes inside
    assert without_module("module.a.module.b[1].aws_vpc.this") == "aws_vpc.this"
    assert without_module('module.net["eu.west"].aws_vpc.this[0]') == "aws_vpc.this[0]"
    assert without_module("data.aws_ami.ubuntu") == "data.aws_ami.ubuntu"
    assert without_module("aws_instance.module") == "aws_instance.module"  # a resource *named* module


def test_every_error_kind_by_hand() -> None:
    truth = rc(
        ("null_resource.ok", ["create"]),
        ("null_resource.act", ["update"]),
        ("aws_instance.web[0]", ["create"]),
        ("aws_instance.web[1]", ["create"]),
        ("module.net.aws_vpc.this", ["create"]),
        ("null_resource.gone", ["delete"]),
    )
    pred = rc(
        ("null_resource.ok", ["create"]),
        ("null_resource.act", ["delete", "create"]),  # wrong action
        ("aws_instance.web", ["create"]),  # count not expanded: web[0] and web[1] missed, web extra
        ("module.network.aws_vpc.this", ["create"]),  # module path wrong
        ("null_resource.ghost", ["create"]),  # hallucinated
    )  # null_resource.gone: missed
    got = sorted((a.truth, a.pred, a.error) for a in align(pred, truth))
    assert got == sorted([
        ("create", "create", None),
        ("update", "replace", "wrong_action"),
        ("create", "absent", "expansion"),
        ("create", "absent", "expansion"),
        ("absent", "create", "expansion"),
        ("create", "absent", "module_address"),
        ("absent", "create", "module_address"),
        ("absent", "create", "hallucinated_resource"),
        ("delete", "absent", "missed_resource"),
    ])  # fmt: skip
    assert errors_of("ok", pred, truth) == {"wrong_action": 1, "expansion": 3, "module_address": 2,
                                            "hallucinated_resource": 1, "missed_resource": 1}  # fmt: skip
    assert errors_of("ok", truth, truth) == {}


def test_an_answer_that_is_not_valid_is_one_error_of_its_status() -> None:
    truth = rc(A, B)
    assert errors_of("invalid", None, truth) == {"invalid_json": 1}
    assert errors_of("cut", None, truth) == {"cut": 1}
    assert errors_of("error", None, truth) == {"no_answer": 1}
    assert errors_of("invalid", None, []) == {"invalid_json": 1}  # even when there was nothing to predict


def test_duplicates_and_a_second_instance_of_a_correct_resource() -> None:
    # predicting A twice: one correct, one extra of a resource the truth has → an expansion (count) error
    assert errors_of("ok", rc(A, A), rc(A)) == {"expansion": 1}
    # the truth has web[0], web[1]; the answer only web[0] → web[1] missed as a count error, not a random miss
    truth = rc(("aws_instance.web[0]", ["create"]), ("aws_instance.web[1]", ["create"]))
    assert errors_of("ok", truth[:1], truth) == {"expansion": 1}
    # one address, two truth entries with different actions is impossible in a plan, but must not crash
    assert errors_of("ok", rc(A), rc(A, ("null_resource.a", ["update"]))) == {"expansion": 1}


def test_confusion_counts_every_address_once_and_skips_invalid_answers() -> None:
    truth = rc(A, B, D)
    pred = rc(A, ("null_resource.b", ["delete"]), ("null_resource.x", ["update"]))
    m = confusion([(pred, truth), (None, rc(A))])
    assert m == {"absent": {"update": 1}, "create": {"create": 1}, "delete": {"absent": 1}, "update": {"delete": 1}}


def test_slices() -> None:
    assert slices_of(rc(A), "fresh") == ["all", "fresh"]
    assert slices_of(rc(C), "change") == ["all", "change", "count_for_each", "module"]
    assert slices_of([], "change") == ["all", "change"]
