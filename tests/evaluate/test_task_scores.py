"""The other tasks' scores, exact on hand-computed cases, and attacked the way a model could game them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipelines.dataset.tasks import rego_policy
from pipelines.evaluate import tasks as T


def test_token_f1_and_rouge_l_by_hand() -> None:
    t = T.tokens
    assert t("Root cause: DNS-TTL_low, 42x!") == ["root", "cause", "dns", "ttl_low", "42x"]
    assert T.token_f1(t("a b c"), t("a b d")) == pytest.approx(2 / 3)
    assert T.token_f1(t("a a"), t("a")) == pytest.approx(2 / 3)  # a repeated word counts once per reference use
    assert T.token_f1([], []) == 1.0 and T.token_f1(t("a"), []) == 0.0 and T.token_f1([], t("a")) == 0.0
    assert T.lcs_length(t("a b c d"), t("a c d e")) == 3
    assert T.rouge_l(t("a b c d"), t("a c d e")) == pytest.approx(0.75)
    # order matters to ROUGE-L, not to bag-of-words F1: the shuffled answer loses only under ROUGE-L
    assert T.rouge_l(t("d c b a"), t("a b c d")) == pytest.approx(0.25)
    assert T.token_f1(t("d c b a"), t("a b c d")) == 1.0


def test_records_metrics_are_configurable() -> None:
    ref = "Root cause:\nexpired cert\n\nResolution:\nrenewed it"
    assert T.score_records(ref, ref).score == 1.0
    assert T.score_records("root   cause: expired cert resolution: renewed it", ref, "exact").score == 0.0
    assert T.score_records(ref.replace("\n", " "), ref, "exact").score == 1.0  # whitespace is normalized
    half = T.score_records("expired cert", ref, "token_f1").score  # 2 of 7 reference tokens, all precise
    assert half == pytest.approx(2 * 1 * (2 / 7) / (1 + 2 / 7))
    # padding the answer with every reference word in reverse order keeps recall but ROUGE-L sees the order
    rev = " ".join(reversed(T.tokens(ref)))
    assert T.score_records(rev, ref, "token_f1").score == 1.0 and T.score_records(rev, ref).score < 0.3


REPORT = {
    "summary": "Ran terraform plan in infra/prod: 3 to add.",
    "key_successes": [{"desc": "plan ran", "specifics": "3 to add", "adjacent_context": "after init"}],
    "blockers": [],
    "resources": ["infra/prod", "terraform plan"],
}


def _ans(**change: Any) -> str:
    return json.dumps({**REPORT, **change})


def test_terminal_reports_score_field_overlap_only_when_schema_valid() -> None:
    ref = json.dumps(REPORT)
    same = T.score_terminal_report(_ans(), ref)
    assert (same.score, same.status, same.valid) == (1.0, "ok", True)
    # summary exact, successes empty vs one item (0), blockers empty on both sides (1), resources {a,b} vs {a,c}
    part = T.score_terminal_report(_ans(key_successes=[], resources=["infra/prod", "terraform apply"]), ref)
    assert part.score == pytest.approx((1 + 0 + 1 + 0.5) / 4) and part.valid
    for bad, why in [
        ("{not json", "not JSON"),
        (json.dumps({k: v for k, v in REPORT.items() if k != "blockers"}), "'blockers' is a required property"),
        (_ans(extra="x"), "Additional properties"),
        (_ans(resources="infra/prod terraform plan"), "is not of type 'array'"),  # a string for the set
        (_ans(resources=["infra/prod", "infra/prod", "terraform plan"]), "non-unique"),  # repeating to gain
    ]:
        s = T.score_terminal_report(bad, ref)
        assert (s.score, s.status, s.valid) == (0.0, "invalid", False) and why in (s.reason or ""), (bad, s)
    # stuffing every reference word into the summary costs precision there and scores nothing elsewhere
    words = " ".join(T.tokens(ref))
    stuffed = T.score_terminal_report(_ans(summary=words, key_successes=[], resources=[]), ref)
    assert stuffed.valid and stuffed.score < 0.5


@pytest.fixture(scope="module")
def query() -> tuple[dict[str, Any], dict[str, Any]]:
    """A real query of the embedded KICS tree, as its two examples (write_policy, write_tests)."""
    cfg = rego_policy.Config()
    row = next(r for r in rego_policy.sources(cfg) if r["path"].endswith("s3_bucket_without_versioning"))
    policy, tests = rego_policy.examples(row, cfg)
    return policy, tests


def _user(ex: dict[str, Any]) -> str:
    return next(m["content"] for m in ex["messages"] if m["role"] == "user")


def test_rego_answers_are_run_against_real_tests(query: tuple[dict[str, Any], dict[str, Any]]) -> None:
    policy, tests = query
    ref_policy, ref_tests = policy["messages"][-1]["content"], tests["messages"][-1]["content"]
    ok = T.score_rego("write_policy", ref_policy, _user(policy), ref_tests)
    assert (ok.score, ok.status) == (1.0, "ok")
    ok = T.score_rego("write_tests", ref_tests, _user(tests), None)
    assert (ok.score, ok.status) == (1.0, "ok")
    assert T.query_from_prompt(_user(tests)) == policy["messages"][-1]["content"].rstrip() + "\n"
    empty = T.score_rego("write_policy", "", _user(policy), ref_tests)
    assert empty.score == 0.0 and empty.status == "compile_error"
    # a policy that flags every bucket passes the positives but fires on the negatives
    flag_all = ref_policy.split("CxPolicy[result]")[0] + (
        "CxPolicy[result] {\n\tresource := input.document[i].resource.aws_s3_bucket[name]\n\tresult := {\n"
        '\t\t"documentId": input.document[i].id,\n\t\t"resourceType": "aws_s3_bucket",\n'
        '\t\t"resourceName": name,\n\t\t"searchKey": sprintf("aws_s3_bucket[%s]", [name]),\n'
        '\t\t"issueType": "MissingAttribute",\n\t\t"keyExpectedValue": "x",\n\t\t"keyActualValue": "y",\n\t}\n}\n'
    )
    gamed = T.score_rego("write_policy", flag_all, _user(policy), ref_tests)
    assert gamed.score == 0.0 and gamed.status in ("fires_on_negative", "wrong_lines"), gamed
    # tests that expect nothing: the reference query finds what they do not expect
    no_expect = ref_tests.rsplit("# file: test/positive_expected_result.json", 1)[0]
    no_expect += "# file: test/positive_expected_result.json\n[]\n"
    assert T.score_rego("write_tests", no_expect, _user(tests), None).score == 0.0
    bad = T.score_rego("write_tests", "no headers at all", _user(tests), None)
    assert (bad.score, bad.status) == (0.0, "invalid_tests")
    # write_policy needs its query's tests; without them the row says how to get them
    missing = T.score_rego("write_policy", ref_policy, _user(policy), None)
    assert missing.status == "error" and "subtasks [write_policy, write_tests]" in (missing.reason or "")


def test_summaries_count_pass_valid_and_status() -> None:
    s = T.summarize([T.TaskScore(1.0, "ok", True), T.TaskScore(0.5, "ok", True), T.TaskScore(0.0, "invalid", False)])
    assert s == {"n": 3, "score": 0.5, "pass_rate": pytest.approx(1 / 3), "valid_rate": pytest.approx(2 / 3),
                 "status": {"invalid": 1, "ok": 2}}  # fmt: skip
    assert T.summarize([T.TaskScore(0.0, "compile_error")])["valid_rate"] is None
    assert T.summarize([])["n"] == 0
