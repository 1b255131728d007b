"""The evaluate job on the session's Ray cluster: a real collect run and dataset build, then every predictor
over the test split on Ray Data actors. The "fine-tuned" model here is a LoRA adapter with random weights on a
tiny base built on the dataset's tokenizer, laid out as a train run (the train job itself is tested in
test_train.py; this tests evaluation, not learning). The OpenAI-compatible predictor talks to a loopback HTTP
stand-in for a vLLM-style server that fails or hangs on chosen prompts (named as such: no real model behind it).
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipelines.evaluate.metrics import Counts, parse_prediction
from ray_jobs import evaluate
from schemas.config import load_config
from tests.collect.fake_apis import LoopbackHttp


@pytest.fixture(scope="module")
def data(plan_data: Path, fake_run: str) -> Path:
    return plan_data


def evaluate_run(data: Path, *overrides: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cfg = load_config(
        evaluate.EvaluateConfig,
        evaluate.DEFAULT_CONFIG,
        [f"output_dir={data}", "run=fake", "max_new_tokens=48", "batch_size=4", "bootstrap=200", *overrides],
    )
    m = evaluate.run(cfg)
    rows = pq.read_table(Path(m["report_dir"]) / "predictions.parquet").to_pylist()
    assert json.loads((Path(m["report_dir"]) / "metrics.json").read_text())["predictors"] == m["predictors"]
    return m, rows


def test_every_example_gets_one_scored_row_per_predictor(data: Path) -> None:
    m, rows = evaluate_run(data)
    test = [r for r in pq.read_table(data / "datasets" / "default" / "test.parquet").to_pylist()
            if r["task"] == "plan_prediction"]  # fmt: skip
    names = ["trivial", "static", "base (constrained)", "base", "fine-tuned (constrained)", "fine-tuned"]
    assert list(m["predictors"]) == names and m["n_examples"] == len(test) > 0
    ids = sorted(r["example_id"] for r in test)
    for n in names:
        assert sorted(r["example_id"] for r in rows if r["predictor"] == n) == ids, n
    truth = {r["example_id"]: parse_prediction(r["messages"][-1]["content"])[0] for r in test}
    # trivial: F1 is 1 exactly where terraform planned no change, 0 elsewhere
    empty = sum(1 for t in truth.values() if not t) / len(truth)
    assert m["predictors"]["trivial"]["macro_f1"] == pytest.approx(empty)
    assert m["predictors"]["trivial"]["valid_rate"] == 1.0
    for n in names:
        p, rs = m["predictors"][n], [r for r in rows if r["predictor"] == n]
        c = Counts(sum(r["tp"] for r in rs), sum(r["fp"] for r in rs), sum(r["fn"] for r in rs))
        assert p["micro_f1"] == pytest.approx(c.f1), n  # metrics.json agrees with the rows
        assert p["valid_rate"] == pytest.approx(sum(r["status"] in ("ok", "closed") for r in rs) / len(rs)), n
        lo, hi = p["intervals"]["micro_f1"]
        assert lo <= p["micro_f1"] <= hi, n
        assert sum(g["n"] for g in p["by_provider"].values()) == len(rs)
        assert set(p["by_variant"]) <= {"plan", "change"}
    # the static planner reads the same files and knows HCL: far above the empty answer on this corpus
    assert m["predictors"]["static"]["micro_f1"] > m["predictors"]["trivial"]["micro_f1"]
    # constrained decoding: every answer is valid, as written (ok) or closed at the budget after its last complete
    # change (closed), even from random weights
    for n in ("base (constrained)", "fine-tuned (constrained)"):
        rs = [r for r in rows if r["predictor"] == n]
        assert {r["status"] for r in rs} <= {"ok", "closed"} and m["predictors"][n]["valid_rate"] == 1.0, n
        for r in rs:
            assert r["valid"] and parse_prediction(r["answer"])[1] is None
            assert r["answer"] == r["text"] if r["status"] == "ok" else r["text"].startswith(r["answer"][:-2])
            assert r["completion_tokens"] <= 48 - 2  # the closer's reserve was kept
    report = (Path(m["report_dir"]) / "report.html").read_text()
    assert all(f">{n}</td>" in report for n in names) and report.count("<img ") == 7
    free = [r for r in rows if r["predictor"] == "base"]
    assert all(r["status"] in ("invalid", "cut") and not r["valid"] for r in free)  # random weights, no constraint
    assert m["reference"] == "fine-tuned (constrained)"
    assert m["deltas"]["trivial"]["micro_f1"] == pytest.approx(
        m["predictors"]["fine-tuned (constrained)"]["micro_f1"] - m["predictors"]["trivial"]["micro_f1"]
    )


class FlakyServer(LoopbackHttp):
    """/v1/chat/completions that answers the empty plan, fails (500) on the ``fail`` prompts and hangs on ``hang``."""

    def __init__(self, fail: set[str], hang: set[str]) -> None:
        super().__init__()
        self.fail, self.hang = fail, hang

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        body = json.loads(h.rfile.read(int(h.headers["Content-Length"])))
        user = body["messages"][-1]["content"]
        if user in self.hang:
            time.sleep(3)
        if user in self.fail:
            out, code = {"error": {"message": "model crashed", "type": "server_error"}}, 500
        else:
            msg = {"role": "assistant", "content": '{"resource_changes":[]}'}
            out, code = {
                "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }, 200  # fmt: skip
        raw = json.dumps(out).encode()
        try:
            h.send_response(code)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(raw)))
            h.end_headers()
            h.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out on a hanging prompt and went away, as the test intends


def test_a_failing_or_hanging_endpoint_gives_error_rows_and_the_run_finishes(data: Path) -> None:
    # the train split's first 4 plan examples (by id, as limit=4 takes them): enough for a fail, a hang and answers
    rows = [r for r in pq.read_table(data / "datasets" / "default" / "train.parquet").to_pylist()
            if r["task"] == "plan_prediction"]  # fmt: skip
    first = sorted(rows, key=lambda r: r["example_id"])[:4]
    user = {r["example_id"]: r["messages"][-2]["content"] for r in first}
    assert len(user) == 4 and len(set(user.values())) == 4
    texts = list(user.values())
    fail, hang = {texts[0]}, {texts[1]}
    with FlakyServer(fail, hang) as server:
        pred = {"name": "endpoint", "kind": "openai", "base_url": f"{server.base_url}/v1", "model": "m",
                "timeout_s": 1.0, "batch_size": 4}  # fmt: skip
        m, rows = evaluate_run(
            data,
            "name=flaky",
            "run=null",
            "split=train",
            "limit=4",
            "baselines=[trivial]",
            f"predictors=[{json.dumps(pred)}]",
        )
    got = {r["example_id"]: r for r in rows if r["predictor"] == "endpoint"}
    assert sorted(got) == sorted(user)
    for eid, text in user.items():
        r = got[eid]
        if text in fail | hang:
            assert r["status"] == "error" and r["f1"] == 0.0 and r["error"], (eid, r["error"])
        else:
            assert r["status"] == "ok" and r["error"] is None
    assert any(r["status"] == "error" for r in got.values()) and any(r["status"] == "ok" for r in got.values())
    status = m["predictors"]["endpoint"]["status"]
    assert sum(status.values()) == len(user)


def test_the_other_tasks_are_scored_the_reference_answer_everywhere_perfect_the_empty_one_nothing(
    data: Path,
) -> None:
    """A second dataset of the session's corpus with the other three tasks (real KICS queries run by the checker,
    synthetic terminal reports, the records demo database): each example gets one scored row per predictor; the
    reference answers score 1 on every task (scoring accepts the truth: the write_policy answers pass the tests of
    their query's write_tests example), the empty answers score 0."""
    from ray_jobs import build_dataset

    mix = ["name=mix", f"output_dir={data}", "tasks={rego_policy: 1, terminal_report: 1, records: 1}",
           "terminal_report.n_synthetic=12", "records.limit=30", "split.min_groups=2"]  # fmt: skip
    build_dataset.run(load_config(build_dataset.BuildDatasetConfig, None, mix))
    cfg = load_config(evaluate.EvaluateConfig, evaluate.DEFAULT_CONFIG,
                      [f"output_dir={data}", "dataset=mix", "name=mix", "split=train", "run=null", "limit=4",
                       "baselines=[trivial, reference]", "bootstrap=0"])  # fmt: skip
    m = evaluate.run(cfg)
    rows = pq.read_table(Path(m["report_dir"]) / "task_predictions.parquet").to_pylist()
    split = pq.read_table(data / "datasets" / "mix" / "train.parquet").to_pylist()
    for task in ("rego_policy", "terminal_report", "records"):
        ids = sorted(r["example_id"] for r in split if r["task"] == task)[:4]
        assert len(ids) == 4, task
        for name in ("trivial", "reference"):
            got = sorted(r["example_id"] for r in rows if r["task"] == task and r["predictor"] == name)
            assert got == ids, (task, name)
        ref, triv = m["tasks"][task]["reference"], m["tasks"][task]["trivial"]
        assert (ref["n"], ref["score"], ref["pass_rate"]) == (4, 1.0, 1.0), (task, ref)
        assert (triv["n"], triv["score"]) == (4, 0.0), (task, triv)
    # limit=4 kept write_policy examples whose write_tests sibling it left out: their tests still came along
    kept = [r for r in split if r["example_id"] in {x["example_id"] for x in rows} and r["task"] == "rego_policy"]
    qid = {r["example_id"]: json.loads(r["labels"])["query_id"] for r in kept}
    policies = {qid[r["example_id"]] for r in kept if r["subtask"] == "write_policy"}
    assert policies - {qid[r["example_id"]] for r in kept if r["subtask"] == "write_tests"}
    assert m["tasks"]["terminal_report"]["reference"]["valid_rate"] == 1.0
    assert m["tasks"]["terminal_report"]["trivial"]["status"] == {"invalid": 4}
    assert set(m["tasks"]["rego_policy"]["trivial"]["status"]) <= {"compile_error", "invalid_tests"}
    assert m["n_examples"] == 0 and m["records_metric"] == "rouge_l"  # no plan examples in this dataset
    html = (Path(m["report_dir"]) / "report.html").read_text()
    assert "<h2>Other tasks</h2>" in html and "terminal_report" in html


def test_every_true_answer_of_the_corpus_is_writable_under_its_prompts_address_grammar(data: Path) -> None:
    """addresses=prompt must never make the truth unwritable: every plan answer of the session's corpus (fresh
    plans and changes, with modules, count and for_each) is accepted whole by the grammar of its own prompt."""
    import xgrammar as xgr
    from transformers import AutoTokenizer

    from pipelines.evaluate.decoding import _compiled_grammar, prompt_plan_grammar, stop_ids

    tok = AutoTokenizer.from_pretrained(str(data / "models" / "tiny"))
    stops = tuple(stop_ids(tok))
    n = 0
    for split in ("train", "val", "test"):
        for r in pq.read_table(data / "datasets" / "default" / f"{split}.parquet").to_pylist():
            if r["task"] != "plan_prediction":
                continue
            user = "\n".join(m["content"] for m in r["messages"][:-1] if m["role"] != "assistant")
            m = xgr.GrammarMatcher(_compiled_grammar(tok, len(tok), stops, prompt_plan_grammar(user)))
            assert m.accept_string(r["messages"][-1]["content"]) and m.is_completed(), r["example_id"]
            n += 1
    assert n > 10
