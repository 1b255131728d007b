"""The mitigation loop on the session's Ray cluster, nothing faked: evaluate → weakest error category → a fresh
collect of the synthetic corpus (real git, real terraform plans) → the dataset stage → the category's slice →
training continued from the last adapter on Ray Train → evaluate again → the round table → stop.

What this does not show yet (issue 9, acceptance 5): that a round *raises* F1 on the weakest category. The tiny
models do not learn these 1,500-token plan prompts fast enough on CPU for that (measured: LoRA r=16 on 7 change
examples, loss 4.1 after 60 steps; r=128 at lr 0.004, loss 0.53 and F1 0.05 after 70 steps; a full fine-tune of
this test's 64-wide base on the round's own 18 examples, lr 2e-3, 60 steps: loss 1.1 and F1 0.000 on 6 of them), so the
round here trains 4 steps from a deliberately broken model (a LoRA adapter with random weights) and the test
checks the loop's mechanics and bookkeeping exactly; the full-fine-tune path of a round is checked by
``test_a_round_continues_an_adapter_on_its_base_or_a_full_model_as_the_new_base``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from ray_jobs import mitigate
from schemas.config import load_config
from tests.ray_jobs.conftest import SYNTH

# the round collects a smaller corpus than the session's (the same generator settings, 3 of its 6 repos)
ROUND_SYNTH = {**SYNTH, "n_repos": 3}


@pytest.fixture(scope="module")
def weak(fake_run: str) -> str:
    """The deliberately weakened model: runs/fake, a LoRA adapter with random weights (conftest)."""
    return fake_run


def loop(data: Path, run: str, *overrides: str) -> dict[str, Any]:
    args = [f"output_dir={data}", f"run={run}", "split=train", f"synthetic={json.dumps(ROUND_SYNTH)}",
            "synthetic_history=true", "examples_per_round=200", "replay=3", "train={max_steps: 4}",
            "evaluate={max_new_tokens: 24, batch_size: 8, bootstrap: 0, limit: 6}", *overrides]  # fmt: skip
    return mitigate.run(load_config(mitigate.MitigateConfig, mitigate.DEFAULT_CONFIG, args))


def test_one_round_targets_the_weakest_category_continues_the_adapter_and_stops_at_the_round_limit(
    plan_data: Path, weak: str
) -> None:
    r = loop(plan_data, weak, "name=fix", "threshold=1.0", "max_rounds=1")
    assert r["stop"] == "round limit: 1 round(s) of training" and [x["round"] for x in r["rounds"]] == [0, 1]
    first, second = r["rounds"]
    cat = first["weakest"]
    assert cat == mitigate.weakest(first["errors"]) and first["errors"][cat] == max(first["errors"].values())
    made = first["next"]
    assert made["category"] == cat and made["slice"] == mitigate.slice_of(cat) and made["steps"] == 4
    # the targeted examples are exactly the generated examples of that slice (all of them: 200 > what 6 repos give)
    gen = plan_data / "mitigate" / "fix" / "round-0" / "datasets"
    rows = [x for s in ("train", "val", "test") for x in pq.read_table(gen / "generated" / f"{s}.parquet").to_pylist()]
    want = mitigate.targeted(rows, made["slice"], 10_000, 0)
    got = pq.read_table(gen / "targeted" / "train.parquet").to_pylist()
    assert made["targeted"] == len(want) > 0 and made["replay"] == 3 and len(got) == len(want) + 3
    assert {x["example_id"] for x in want} <= {x["example_id"] for x in got}
    # the round continued the weak adapter with the weak run's own settings
    assert second["run"] == r["final_run"] == "fix-r1"
    cfg = json.loads((plan_data / "runs" / "fix-r1" / "train_config.json").read_text())
    assert cfg["init_adapter"] == str(plan_data / "runs" / "fake" / "adapter")
    assert cfg["method"] == "lora" and cfg["learning_rate"] == 0.01 and cfg["max_steps"] == 4  # its own settings
    base = json.loads((plan_data / "runs" / "fake" / "adapter" / "adapter_config.json").read_text())
    assert cfg["base_model"] == base["base_model_name_or_path"]
    moved = second["targeted"]
    assert moved["slice"] == made["slice"] and moved["f1_before"] == first["slice_f1"][made["slice"]]
    assert moved["f1_after"] == second["slice_f1"][made["slice"]]
    table = (Path(r["report_dir"]) / "rounds.md").read_text()
    assert f"{moved['f1_before']:.3f} → {moved['f1_after']:.3f}" in table and "stopped: round limit" in table
    assert f"| 0 | fake | {first['micro_f1']:.3f} |" in table and f"| 1 | fix-r1 | {second['micro_f1']:.3f} |" in table
    assert json.loads((Path(r["report_dir"]) / "rounds.json").read_text())["rounds"] == r["rounds"]


def test_the_loop_stops_at_the_threshold_before_training(plan_data: Path, weak: str) -> None:
    r = loop(plan_data, weak, "name=met", "threshold=0.0", "max_rounds=3")
    assert r["stop"].startswith("threshold reached: micro F1") and len(r["rounds"]) == 1
    assert r["final_run"] == "fake" and not (plan_data / "runs" / "met-r1").exists()


def test_a_missing_run_is_named_with_the_fix(plan_data: Path) -> None:
    with pytest.raises(SystemExit, match=r"runs/nope has neither adapter/ nor model/: train the run first"):
        loop(plan_data, "nope", "name=x")


def test_weakest_and_targeted_by_hand() -> None:
    assert mitigate.weakest({"missed_resource": 3, "expansion": 3, "cut": 1}) == "missed_resource"  # tie: order
    assert mitigate.weakest({}) is None and mitigate.weakest({"cut": 0}) is None
    assert [mitigate.slice_of(c) for c in ("expansion", "module_address", "wrong_action", "cut")] == [
        "count_for_each", "module", "change", "all"]  # fmt: skip

    def ex(i: int, addr: str, sub: str = "plan", task: str = "plan_prediction") -> dict[str, Any]:
        answer = json.dumps({"resource_changes": [{"actions": ["create"], "address": addr}]})
        return {
            "example_id": f"e{i}",
            "task": task,
            "subtask": sub,
            "messages": [{"role": "assistant", "content": answer}],
        }

    rows = [ex(3, "a.b[0]"), ex(1, "module.m.a.b"), ex(2, "a.b", "change"), ex(4, "a.b[1]", task="records")]
    assert [r["example_id"] for r in mitigate.targeted(rows, "count_for_each", 9, 0)] == ["e3"]
    assert [r["example_id"] for r in mitigate.targeted(rows, "all", 9, 0)] == ["e1", "e2", "e3"]
    assert [r["example_id"] for r in mitigate.targeted(rows, "change", 9, 0)] == ["e2"]
    assert len(mitigate.targeted(rows, "all", 2, 0)) == 2  # a seeded sample when there are more


def _run(root: Path, name: str, method: str, weights: str) -> Path:
    """runs/<name> as the train job leaves it: its settings, and adapter/ (LoRA) or model/ + base.json (full)."""
    from ray_jobs.train import TrainConfig

    run = root / "runs" / name
    (run / weights).mkdir(parents=True)
    (run / "train_config.json").write_text(json.dumps(TrainConfig(method=method, learning_rate=0.003).model_dump()))
    if weights == "adapter":
        (run / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/bases/b"}))
    else:
        (run / "model" / "config.json").write_text("{}")
        (run / "base.json").write_text(json.dumps({"base_model": "/bases/raw"}))
    return run


def test_a_round_continues_an_adapter_on_its_base_or_a_full_model_as_the_new_base(tmp_path: Path) -> None:
    lo, fu = _run(tmp_path, "lo", "qlora", "adapter"), _run(tmp_path, "fu", "full", "model")
    cfg = load_config(mitigate.MitigateConfig, None, [f"output_dir={tmp_path}", "name=m", "train={max_steps: 7}"])
    a = mitigate.round_config(cfg, 0, "lo", tmp_path / "d")
    assert (a.name, a.base_model, a.init_adapter, a.method) == ("m-r1", "/bases/b", str(lo / "adapter"), "qlora")
    assert (a.learning_rate, a.max_steps, a.dataset_dir) == (0.003, 7, str(tmp_path / "d"))  # own settings + override
    assert a.tasks == ["plan_prediction"]  # trained and validated on what the round targets, whatever the run had
    f = mitigate.round_config(cfg, 1, "fu", tmp_path / "d")
    assert (f.name, f.base_model, f.init_adapter, f.method) == ("m-r2", str(fu / "model"), None, "full")
    # evaluation reads the same layout: the full model is the fine-tuned predictor, base.json the untrained base
    from ray_jobs import evaluate

    ecfg = evaluate.EvaluateConfig(output_dir=str(tmp_path), run="fu", baselines=["base"], constrained=[True])
    base, tuned = evaluate.default_predictors(ecfg)
    assert (base.model, base.adapter) == ("/bases/raw", None)
    assert (tuned.name, tuned.model, tuned.adapter, tuned.method) == (
        "fine-tuned (constrained)", str(fu / "model"), None, "full")  # fmt: skip
    (tmp_path / "runs" / "half").mkdir()  # a run that never exported: the error names the fix
    with pytest.raises(SystemExit, match=r"runs/half has neither adapter/ nor model/: train the run first"):
        evaluate.default_predictors(ecfg.model_copy(update={"run": "half"}))
