"""plan_prediction task: file order, the token-budget rule, history (change) examples, drop reasons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipelines.dataset.example import SkipSource
from pipelines.dataset.tasks import plan_prediction as pp
from pipelines.dataset.tokens import build_tiny_tokenizer
from schemas.tables import conform

WORDS = lambda text: len(text.split())  # noqa: E731 - a transparent token counter for the budget rule


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> str:
    texts = ['resource "null_resource" "a" {\n  count = 2\n}\n', '{"resource_changes":[]}'] * 20
    return str(build_tiny_tokenizer(texts, tmp_path_factory.mktemp("tok"), vocab_size=300))


def change(address: str, *actions: str) -> dict[str, Any]:
    name = address.rsplit(".", maxsplit=1)[-1].split("[", maxsplit=1)[0]
    return {
        "address": address,
        "module_address": None,
        "type": "null_resource",
        "name": name,
        "provider": "registry.terraform.io/hashicorp/null",
        "actions": list(actions),
    }


def plans_row(**kw: Any) -> dict[str, Any]:
    row = {
        "workspace_id": "w1",
        "repo_id": "r1",
        "source_url": "file:///r1",
        "commit_sha": "c1",
        "prior": None,
        "path": "infra",
        "plan_status": "ok",
        "plan_error": None,
        "planner": "terraform",
        "providers": ["registry.terraform.io/hashicorp/null", "terraform.io/builtin/terraform"],
        "complexity_bucket": "low",
        "files": [
            {"path": "infra/variables.tf", "content": 'variable "n" {\n  default = 2\n}\n'},
            {"path": "infra/terraform.tfvars", "content": "n = 2\n"},
            {"path": "README.md", "content": "# not terraform\n"},
            {"path": "modules/m/main.tf", "content": 'resource "null_resource" "b" {}\n'},
            {"path": "infra/main.tf", "content": 'resource "null_resource" "a" {\n  count = var.n\n}\n'},
        ],
        "resource_changes": [change("null_resource.a[1]", "create"), change("null_resource.a[0]", "create")],
    }
    return {**row, **kw}


def test_file_order_is_root_tf_then_tfvars_then_modules() -> None:
    order = [f["path"] for f in pp.file_order(plans_row()["files"], "infra")]
    assert order == ["infra/main.tf", "infra/variables.tf", "infra/terraform.tfvars", "modules/m/main.tf"]


def test_budget_rule_keeps_whole_files_cuts_one_at_a_line_and_names_the_rest() -> None:
    chunks = [("# file: a.tf", "a b c"), ("# file: b.tf", "l1 x\nl2 x\nl3 x\nl4 x"), ("# file: c.tf", "z")]
    text, cut = pp._fit(chunks, budget=16, count=WORDS)
    assert cut
    assert text == ("# file: a.tf\na b c\n\n# file: b.tf\nl1 x\n# [truncated: 3 more lines]\n# [omitted files: c.tf]\n")
    assert WORDS(text) - WORDS("# [omitted files: c.tf]") == 16
    whole, cut = pp._fit(chunks, budget=100, count=WORDS)
    assert not cut and whole == "# file: a.tf\na b c\n\n# file: b.tf\nl1 x\nl2 x\nl3 x\nl4 x\n\n# file: c.tf\nz\n"


def test_header_is_never_cut_even_when_no_line_fits() -> None:
    text, cut = pp._fit([("# file: big.tf", "w " * 50)], budget=5, count=WORDS)
    assert cut and text == "# file: big.tf\n# [truncated: 1 more lines]\n"


def test_fresh_example_has_contract_turns(tokenizer: str) -> None:
    [ex] = pp.examples(plans_row(), pp.Config(tokenizer=tokenizer))
    system, user, assistant = ex["messages"]
    assert system == {"role": "system", "content": pp.SYSTEM_PROMPT}
    assert user["content"] == (
        "Root module: infra\n\n"
        '# file: infra/main.tf\nresource "null_resource" "a" {\n  count = var.n\n}\n\n'
        '# file: infra/variables.tf\nvariable "n" {\n  default = 2\n}\n\n'
        "# file: infra/terraform.tfvars\nn = 2\n\n"
        '# file: modules/m/main.tf\nresource "null_resource" "b" {}\n'
    )
    assert json.loads(assistant["content"]) == {
        "resource_changes": [
            {"actions": ["create"], "address": "null_resource.a[0]"},
            {"actions": ["create"], "address": "null_resource.a[1]"},
        ]
    }
    assert (ex["task"], ex["subtask"], ex["group"], ex["source_id"], ex["provider"]) == (
        "plan_prediction",
        "plan",
        "r1",
        "w1",
        "null",
    )
    assert json.loads(ex["labels"])["truncated"] is False


def test_history_row_becomes_a_change_example_with_a_diff(tokenizer: str) -> None:
    before = plans_row()["files"]
    after = [dict(f) for f in before]
    after[0] = {"path": "infra/variables.tf", "content": 'variable "n" {\n  default = 1\n}\n'}
    row = plans_row(
        workspace_id="w2",
        commit_sha="c2",
        prior="c1",
        files=after,
        prior_files=before,
        resource_changes=[change("null_resource.a[1]", "delete")],
    )
    [ex] = pp.examples(row, pp.Config(tokenizer=tokenizer))
    user = ex["messages"][1]["content"]
    assert ex["subtask"] == "change" and ex["messages"][0]["content"] == pp.SYSTEM_PROMPT_CHANGE
    assert "# changes since the applied commit (unified diff)\n# diff\n--- a/infra/variables.tf\n" in user
    assert "-  default = 2\n+  default = 1\n" in user
    assert json.loads(ex["messages"][2]["content"])["resource_changes"] == [
        {"actions": ["delete"], "address": "null_resource.a[1]"}
    ]


@pytest.mark.parametrize(
    ("row", "cfg", "reason"),
    [
        ({"plan_status": "timeout", "plan_error": "plan: deadline"}, {}, "plan_timeout"),
        ({"planner": "static"}, {}, "static_label"),
        ({"prior": "c0", "prior_files": None}, {}, "prior_missing"),
        ({"prior": "c0", "prior_files": []}, {"include_history": False}, "history_excluded"),
        ({}, {"max_input_tokens": 40}, "input_over_budget"),
    ],
)
def test_rows_that_cannot_be_examples_say_why(row: dict, cfg: dict, reason: str, tokenizer: str) -> None:
    with pytest.raises(SkipSource) as e:
        pp.examples(plans_row(**row), pp.Config(tokenizer=tokenizer, **cfg))
    assert e.value.reason == reason


def test_static_rows_kept_when_asked_and_marked(tokenizer: str) -> None:
    [ex] = pp.examples(plans_row(planner="static"), pp.Config(tokenizer=tokenizer, include_static=True))
    assert json.loads(ex["labels"])["planner"] == "static"


def test_truncated_input_kept_when_asked(tokenizer: str) -> None:
    [ex] = pp.examples(plans_row(), pp.Config(tokenizer=tokenizer, max_input_tokens=40, keep_truncated=True))
    assert json.loads(ex["labels"])["truncated"] is True
    assert "# [truncated: " in ex["messages"][1]["content"]


def test_sources_attach_the_applied_commits_files(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    base = {c: None for c in conform([], "plans").schema.names}
    fresh = {**base, **plans_row(), "collected_at": datetime(2024, 1, 1, tzinfo=UTC)}
    hist = {
        **fresh,
        "workspace_id": "w0",
        "commit_sha": "c2",
        "prior": "c1",
        "files": [{"path": "infra/main.tf", "content": "# new\n"}],
    }
    pq.write_table(conform([fresh, hist], "plans"), tmp_path / "plans.parquet")
    rows = pp.sources(pp.Config(plans_path=str(tmp_path / "plans.parquet")))
    assert [r["workspace_id"] for r in rows] == ["w0", "w1"]
    assert rows[0]["prior_files"] == fresh["files"] and rows[1]["prior_files"] is None


def test_provider_stratum() -> None:
    assert pp.provider_stratum(["registry.terraform.io/hashicorp/aws", "terraform.io/builtin/terraform"]) == "aws"
    assert pp.provider_stratum(["terraform.io/builtin/terraform"]) == "terraform"


def test_augmented_copies_are_relabelled_rewrites_in_the_same_group(tokenizer: str) -> None:
    cfg = pp.Config(tokenizer=tokenizer, augment_copies=2, augment_ops=["rename"])
    original, *copies = pp.examples(plans_row(), cfg)
    assert len(copies) == 2 and len({c["example_id"] for c in [original, *copies]}) == 3
    for k, c in enumerate(copies, 1):
        labels = json.loads(c["labels"])
        assert (labels["augmented"], labels["augment_ops"], c["group"]) == (k, ["rename"], "r1")
        answer = json.loads(c["messages"][2]["content"])["resource_changes"]
        renamed = answer[0]["address"].split("[")[0]  # null_resource.<new name>
        assert (
            renamed != "null_resource.a"
            and f'resource "null_resource" "{renamed.split(".")[1]}"' in c["messages"][1]["content"]
        )
        assert [a["address"] for a in answer] == [f"{renamed}[0]", f"{renamed}[1]"]
    assert pp.examples(plans_row(), cfg) == [original, *copies]  # deterministic
    history = plans_row(prior="c0", prior_files=plans_row()["files"])
    assert len(pp.examples(history, cfg)) == 1  # history rows are not augmented
