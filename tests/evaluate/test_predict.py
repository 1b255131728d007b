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
