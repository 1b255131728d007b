"""Predictors without a cluster: the static baseline reads exactly the files the prompt shows, and a predictor
that raises or hangs on some prompts yields error rows for those and answers for the rest."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from pipelines.dataset.tasks import plan_prediction
from pipelines.evaluate.metrics import parse_prediction
from pipelines.evaluate.predict import (
    EMPTY,
    Messages,
    Prediction,
    Predictor,
    Static,
    Trivial,
    files_from_prompt,
    predict_safely,
)

FILES = [
    {"path": "infra/main.tf", "content": 'resource "terraform_data" "a" {\n  count = 2\n}\n'},
    {"path": "infra/vars.tf", "content": 'variable "x" {\n  default = 1\n}\n'},
]


def _prompt(history: bool, tok_dir: Path) -> list[dict[str, str]]:
    row = {
        "path": "infra", "files": FILES, "resource_changes": [], "repo_id": "r", "workspace_id": "w",
        "providers": [], "complexity_bucket": "small", "prior": "abc" if history else None,
        "prior_files": [FILES[0]] if history else None, "commit_sha": "c", "planner": "terraform",
        "source_url": "file:///x", "plan_status": "ok",
    }  # fmt: skip
    ex = plan_prediction._example(row, plan_prediction.Config(tokenizer=str(tok_dir)), FILES, [], {})
    return ex["messages"][:-1]


def test_the_static_baseline_sees_the_prompts_files(tiny_tok_dir: Path) -> None:
    for history in (False, True):
        user = _prompt(history, tiny_tok_dir)[-1]["content"]
        root, files = files_from_prompt(user)
        assert root == "infra" and files == {f["path"]: f["content"] for f in FILES}
    [p] = Static().predict([_prompt(False, tiny_tok_dir)])
    pred, err = parse_prediction(p.text)
    assert err is None and p.error is None
    assert pred == [
        {"address": "terraform_data.a[0]", "actions": ["create"]},
        {"address": "terraform_data.a[1]", "actions": ["create"]},
    ]
    assert Trivial().predict([_prompt(False, tiny_tok_dir)]) == [Prediction(text=EMPTY)]


class Flaky(Predictor):
    """Raises on prompts that say 'boom', hangs on 'hang' (until released), answers the rest."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def predict(self, prompts: Sequence[Messages]) -> list[Prediction]:
        out = []
        for p in prompts:
            text = p[-1]["content"]
            if "boom" in text:
                raise RuntimeError("model exploded")
            if "hang" in text:
                self.release.wait(30)
            out.append(Prediction(text=EMPTY))
        return out


def test_a_raising_or_hanging_predictor_gives_error_rows_and_the_rest_answer() -> None:
    prompts = [[{"role": "user", "content": c}] for c in ("ok 1", "boom", "ok 2", "hang", "ok 3")]
    flaky = Flaky()
    try:
        got = predict_safely(flaky, prompts, timeout_s=0.5)
    finally:
        flaky.release.set()
    assert [g.error for g in got] == [
        None,
        "RuntimeError: model exploded",
        None,
        "timeout: the predictor did not answer in time",
        None,
    ]
    assert [g.text for g in got] == [EMPTY, "", EMPTY, "", EMPTY]
    assert not got[1].finished and not got[3].finished


def test_predictor_configs_fit_their_task_and_the_reference_answers_from_the_rows() -> None:
    import pytest
    from pydantic import ValidationError

    from pipelines.evaluate.predict import PredictorConfig, make, predict_rows

    for bad, why in [
        ({"kind": "hf", "model": "m", "constrained": True, "task": "records"}, "records has no answer schema"),
        ({"kind": "hf", "model": "m", "constrained": True, "task": "rego_policy"}, "rego_policy has no answer schema"),
        ({"kind": "static", "task": "terminal_report"}, "only answers plan_prediction"),
    ]:
        with pytest.raises(ValidationError, match=why):
            PredictorConfig(name="x", **bad)
    assert Trivial().predict([[]])[0].text == EMPTY and Trivial("records").predict([[]])[0].text == ""
    rows = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": f"answer {i}"}]}
            for i in range(3)]  # fmt: skip
    ref = PredictorConfig(name="reference", kind="reference")
    assert [p.text for p in predict_rows(make(ref), ref, rows)] == ["answer 0", "answer 1", "answer 2"]
    triv = PredictorConfig(name="trivial", kind="trivial", task="terminal_report")
    assert [p.text for p in predict_rows(make(triv), triv, rows)] == ["", "", ""]


def test_a_constrained_model_follows_its_tasks_schema(tiny_model_dir: Path) -> None:
    """task=terminal_report: every finished answer of the untrained model validates against that schema, not
    the plan's; the plan predictor on the same prompt writes plan JSON."""
    import json

    import jsonschema

    from pipelines.evaluate.decoding import load_schema
    from pipelines.evaluate.predict import HF, PredictorConfig

    prompt = [[{"role": "user", "content": "$ terraform plan\nPlan: 3 to add.\nReport this session."}]]
    common = {"kind": "hf", "model": str(tiny_model_dir), "constrained": True, "max_new_tokens": 200}
    term = HF(PredictorConfig(name="t", task="terminal_report", **common)).predict(prompt)[0]
    plan = HF(PredictorConfig(name="p", **common)).predict(prompt)[0]
    assert plan.text.startswith('{"resource_changes":[')
    assert term.text.startswith("{") and not term.text.startswith('{"resource_changes"')
    if term.finished:
        jsonschema.validate(json.loads(term.text), load_schema("terminal_report"))
    else:  # at the budget: a prefix of the schema's canonical key order
        assert term.text.startswith('{"blockers":['), term.text[:80]
