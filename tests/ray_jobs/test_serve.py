"""The Serve application over real HTTP on the session's Ray cluster, queried with the real ``openai`` client,
``requests`` and the README's curl commands.

Models: the tiny base of ``fake_run`` (the evaluate tests' random LoRA adapter, served as ``fake``) and two
LoRA adapters trained here, for a few seconds each, to answer every question with ``alpha ...`` or
``bravo ...``. Nothing is faked: Serve, the proxy, the replicas and the models are real.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pyarrow.parquet as pq
import pytest
import requests
import torch

from pipelines.evaluate.predict import files_from_prompt
from ray_jobs import evaluate
from schemas.config import load_config

KEY = "test-key-123"
ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = ["what is terraform?", "plan the module please", "hello there", "explain the answer"]


def _train_adapter(base: Path, tok_dir: Path, out: Path, answer: str) -> Path:
    """A LoRA adapter trained (assistant tokens only) to answer every QUESTION with ``answer``."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pipelines.dataset.tokens import load_tokenizer, render_with_spans

    tok = load_tokenizer(tok_dir)
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base)),
                           LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))  # fmt: skip
    batch = []
    for q in QUESTIONS:
        ids, spans = render_with_spans(tok, [{"role": "user", "content": q}, {"role": "assistant", "content": answer}])
        labels = [-100] * len(ids)
        for s, e in spans:
            labels[s:e] = ids[s:e]
        batch.append((torch.tensor([ids]), torch.tensor([labels])))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    for _ in range(150):
        for ids, labels in batch:
            loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(tok_dir)).save_pretrained(str(out))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(plan_data: Path, fake_run: str) -> Iterator[dict[str, Any]]:
    from ray import serve

    from serve.app import build_app
    from serve.config import AppArgs

    base = plan_data / "models" / "tiny-base-test"
    tok = plan_data / "models" / "tiny"
    adapters = plan_data / "serve-adapters"
    paths = {n: _train_adapter(base, tok, adapters / n, f"{n} {n} {n}") for n in ("alpha", "bravo")}
    args = AppArgs(
        base_model=str(base),
        models=[
            {"name": "fake", "path": str(plan_data / "runs" / "fake" / "adapter")},
            *({"name": n, "path": str(p), "task": "chat"} for n, p in paths.items()),
        ],
        plan_model="fake",
        batching={"max_batch_size": 8, "batch_wait_timeout_s": 0.05},
        autoscaling={
            "min_replicas": 1,
            "max_replicas": 2,
            "target_ongoing_requests": 2,
            "upscale_delay_s": 0.5,
            "downscale_delay_s": 3,
            "look_back_period_s": 2,
            "metrics_interval_s": 0.5,
        },
        limits={"max_body_bytes": 100_000, "max_tokens": 256, "request_timeout_s": 60},
        default_max_tokens=48,
        model_num_cpus=0.5,
    )
    os.environ["TFPREDICT_API_KEY"] = KEY  # forwarded to the replicas by build_app
    port = _free_port()
    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(build_app(args), name="tfpredict", route_prefix="/")
        yield {"url": f"http://127.0.0.1:{port}", "args": args, "data": plan_data}
    finally:
        serve.delete("tfpredict")
        serve.shutdown()
        os.environ.pop("TFPREDICT_API_KEY", None)


def _post(served: dict[str, Any], path: str, body: Any, key: str | None = KEY,
          headers_extra: dict[str, str] | None = None, **kw: Any) -> requests.Response:  # fmt: skip
    headers = {**({"Authorization": f"Bearer {key}"} if key else {}), **(headers_extra or {})}
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return requests.post(served["url"] + path, data=data, headers={**headers, "Content-Type": "application/json"},
                         timeout=120, **kw)  # fmt: skip


def _client(served: dict[str, Any]) -> openai.OpenAI:
    return openai.OpenAI(base_url=served["url"] + "/v1", api_key=KEY, max_retries=0)


# ---------------------------------------------------------------- 1: the openai client, the README's curl
def test_the_openai_client_lists_models_chats_streams_and_gets_schema_valid_json(served: dict[str, Any]) -> None:
    c = _client(served)
    assert [m.id for m in c.models.list().data] == ["base", "fake", "alpha", "bravo"]
    msgs = [{"role": "user", "content": "what is terraform?"}]
    r = c.chat.completions.create(model="alpha", messages=msgs, max_tokens=12, temperature=0)  # type: ignore[arg-type]
    text = r.choices[0].message.content or ""
    assert text.startswith("alpha alpha"), text
    assert r.usage is not None and r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    chunks = list(c.chat.completions.create(model="alpha", messages=msgs, max_tokens=12, temperature=0,  # type: ignore[arg-type]
                                            stream=True, stream_options={"include_usage": True}))  # fmt: skip
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert streamed == text and len([ch for ch in chunks if ch.choices and ch.choices[0].delta.content]) > 1
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == r.choices[0].finish_reason
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == r.usage.completion_tokens
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"},
              "color": {"enum": ["red", "green", "blue"]}}, "required": ["ok", "color"]}  # fmt: skip
    for model in ("base", "fake", "bravo"):  # the untrained base and adapters that never saw JSON
        r = c.chat.completions.create(model=model, messages=msgs, max_tokens=64, temperature=0,  # type: ignore[arg-type]
                                      response_format={"type": "json_schema",
                                                       "json_schema": {"name": "a", "schema": schema}})  # fmt: skip
        assert r.choices[0].finish_reason == "stop", r.choices[0].message.content
        jsonschema.validate(json.loads(r.choices[0].message.content or ""), schema)
    r = c.chat.completions.create(model="base", messages=msgs, max_tokens=200, temperature=0,  # type: ignore[arg-type]
                                  response_format={"type": "json_object"})  # fmt: skip
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(r.choices[0].message.content or ""), dict)
    # completions, sampled with a seed: the same seed, the same text
    a, b = (c.completions.create(model="bravo", prompt="bravo", max_tokens=8, temperature=1.0, seed=7) for _ in "ab")
    assert a.choices[0].text == b.choices[0].text and a.choices[0].text
    plain = c.completions.create(model="alpha", prompt="alpha", max_tokens=8, temperature=0)
    parts = list(c.completions.create(model="alpha", prompt="alpha", max_tokens=8, temperature=0, stream=True))
    assert "".join(p.choices[0].text for p in parts if p.choices) == plain.choices[0].text
    s = c.chat.completions.create(model="alpha", messages=msgs, max_tokens=12, temperature=0, stop=["pha"])  # type: ignore[arg-type]
    assert (s.choices[0].message.content, s.choices[0].finish_reason) == ("al", "stop")


def _readme_curls() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("<!-- serve-examples -->")[1]
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def test_the_readmes_curl_examples_run(served: dict[str, Any]) -> None:
    blocks = _readme_curls()
    assert len(blocks) >= 5
    env = {**os.environ, "TFPREDICT_URL": served["url"], "TFPREDICT_API_KEY": KEY}
    for block in blocks:
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", block], env=env, capture_output=True, text=True,
                             timeout=120, check=False)  # fmt: skip
        assert out.returncode == 0, (block, out.stderr)
        body = out.stdout.strip()
        if body.startswith("data:"):  # a streamed answer
            assert body.endswith("data: [DONE]")
        elif body.startswith("{"):
            doc = json.loads(body)
            assert "error" not in doc, (block, doc)
        else:
            assert "tfpredict_requests" in body  # /metrics


# ---------------------------------------------------------------- 2: /predict is the evaluation stage
def test_predict_and_the_endpoint_predictor_agree_with_local_evaluation(served: dict[str, Any]) -> None:
    data = served["data"]
    endpoint = {"name": "endpoint", "kind": "openai", "base_url": served["url"] + "/v1", "model": "fake",
                "api_key_env": "TFPREDICT_API_KEY", "max_new_tokens": 48}  # fmt: skip
    overrides = [f"output_dir={data}", "run=fake", "name=serve-check", "max_new_tokens=48", "baselines=[]",
                 "variants=[plan]", "tasks=[]", "bootstrap=0", f"predictors=[{json.dumps(endpoint)}]"]  # fmt: skip
    cfg = load_config(evaluate.EvaluateConfig, evaluate.DEFAULT_CONFIG, overrides)
    m = evaluate.run(cfg)
    rows = pq.read_table(Path(m["report_dir"]) / "predictions.parquet").to_pylist()
    by = {(r["predictor"], r["example_id"]): r for r in rows}
    local, remote = m["predictors"]["fine-tuned"], m["predictors"]["endpoint"]
    for k in ("micro_f1", "macro_f1", "exact_match", "valid_rate"):
        assert remote[k] == local[k], k
    ids = sorted({r["example_id"] for r in rows})
    assert ids
    for i in ids:
        assert by[("endpoint", i)]["error"] is None  # the key reached the predictor's actors
        assert by[("endpoint", i)]["text"] == by[("fine-tuned", i)]["text"]
    # /predict with the files of each test workspace: the constrained local answer, parsed the same way
    test = {r["example_id"]: r for r in pq.read_table(data / "datasets" / "default" / "test.parquet").to_pylist()}
    for i in ids:
        user = test[i]["messages"][1]["content"]
        root, files = files_from_prompt(user)
        got = _post(served, "/predict", {"files": files, "root": root, "max_tokens": 48})
        assert got.status_code == 200, got.text
        p, ref = got.json(), by[("fine-tuned (constrained)", i)]
        assert p["raw"] == ref["text"] and p["status"] == ref["status"], i
        assert p["resource_changes"] == json.loads(ref["answer"])["resource_changes"]
        assert p["valid"] and p["model"] == "fake"


def test_validate_scores_against_expected_or_the_real_plan(served: dict[str, Any]) -> None:
    code = 'resource "terraform_data" "a" {\n  input = "x"\n}\nresource "terraform_data" "b" {}\n'
    truth = [
        {"address": "terraform_data.a", "actions": ["create"]},
        {"address": "terraform_data.b", "actions": ["create"]},
    ]
    given = _post(served, "/validate", {"terraform_code": code, "expected": truth}).json()
    planned = _post(served, "/validate", {"terraform_code": code}).json()
    assert planned["expected_source"] == "terraform" and given["expected_source"] == "request"
    assert planned["expected"] == truth  # terraform planned exactly these, in the sandbox
    pred = {(c["address"], tuple(c["actions"])) for c in given["prediction"]["resource_changes"]}
    tp = len(pred & {(c["address"], tuple(c["actions"])) for c in truth})
    precision = tp / len(pred) if pred else 0.0  # nothing predicted, something missed: 0
    assert given["precision"] == pytest.approx(precision) and given["recall"] == pytest.approx(tp / 2)
    assert given["exact_match"] == (pred == {(c["address"], tuple(c["actions"])) for c in truth})
    bad = _post(served, "/validate", {"terraform_code": 'resource "nosuch_thing" "x" {}\n'})
    assert bad.status_code == 422 and "expected" in bad.json()["error"]["message"]


# ---------------------------------------------------------------- 3: two adapters on one replica
def test_two_adapters_answer_each_with_its_own_behaviour_even_in_one_batch(served: dict[str, Any]) -> None:
    def ask(model: str, q: str) -> str:
        r = _post(served, "/v1/chat/completions", {"model": model, "max_tokens": 10, "temperature": 0,
                                                    "messages": [{"role": "user", "content": q}]})  # fmt: skip
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["message"]["content"]

    assert _replicas() == 1  # one model replica holds the base and both adapters
    jobs = [(m, q) for q in QUESTIONS for m in ("alpha", "bravo")]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda j: ask(*j), jobs))
    for (m, _), a in zip(jobs, answers, strict=True):
        assert a.startswith(f"{m} {m}"), (m, a)
    assert _replicas() == 1
    health = requests.get(served["url"] + "/health", timeout=30).json()  # no key needed
    assert health["status"] == "ok" and health["models"] == ["base", "fake", "alpha", "bravo"]
    assert {"alpha", "bravo"} <= set(health["model_replica"]["adapters"])
    r = _post(served, "/v1/chat/completions", {"model": "charlie", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["available"] == ["base", "fake", "alpha", "bravo"] and "charlie" in err["message"]


# ---------------------------------------------------------------- 4: bad requests
def test_bad_requests_get_clear_errors_and_the_next_request_is_answered(served: dict[str, Any]) -> None:
    chat = {"model": "base", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    cases: list[tuple[str, Any, str | None, int, str]] = [
        ("/v1/chat/completions", '{"model": "base", "messages": [', KEY, 422, "not valid JSON"),
        ("/v1/chat/completions", {**chat, "max_tokens": "many"}, KEY, 422, "max_tokens"),
        ("/v1/chat/completions", {**chat, "messages": "hi"}, KEY, 422, "messages"),
        ("/v1/chat/completions", {**chat, "messages": []}, KEY, 422, "messages"),
        ("/v1/chat/completions", {**chat, "temperature": -1}, KEY, 422, "temperature"),
        ("/v1/chat/completions", {**chat, "n": 3}, KEY, 422, "n"),
        ("/v1/chat/completions", {**chat, "response_format": {"type": "json_schema"}}, KEY, 422, "json_schema"),
        ("/v1/chat/completions", {**chat, "max_tokens": 5000}, KEY, 413, "limits.max_tokens=256"),
        (
            "/v1/chat/completions",
            {**chat, "messages": [{"role": "user", "content": "x" * 200_000}]},
            KEY,
            413,
            "limits.max_body_bytes",
        ),
        ("/v1/chat/completions", chat, None, 401, "missing API key"),
        ("/v1/chat/completions", chat, "wrong", 401, "wrong API key"),
        ("/v1/chat/completions", chat, KEY + "x", 401, "wrong API key"),
        ("/v1/completions", {"model": "base", "prompt": ""}, KEY, 422, "prompt"),
        ("/predict", {"terraform_code": "   \n"}, KEY, 422, "terraform_code is empty"),
        ("/predict", {}, KEY, 422, "exactly one of terraform_code"),
        ("/predict", {"files": {"README.md": "# hi"}}, KEY, 422, "no .tf"),
        ("/predict", {"terraform_code": "x", "max_tokenz": 3}, KEY, 422, "max_tokenz"),
        ("/predict", {"terraform_code": 'resource "a" "b" {}', "model": "nope"}, KEY, 404, "nope"),
        (
            "/validate",
            {"terraform_code": "x", "expected": [{"address": "a.b", "actions": ["explode"]}]},
            KEY,
            422,
            "expected.0.actions",
        ),
    ]
    for path, body, key, code, words in cases:
        r = _post(served, path, body, key=key)
        assert r.status_code == code, (path, body if len(str(body)) < 200 else "...", r.status_code, r.text[:300])
        err = r.json()["error"]
        assert words in err["message"] or words == err.get("param"), (words, err)
        assert "Traceback" not in r.text and 'File "' not in r.text
    r = requests.get(served["url"] + "/metrics", timeout=30)
    assert r.status_code == 401  # metrics are behind the key too
    ok = _post(served, "/v1/chat/completions", chat)
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] is not None
    metrics = requests.get(served["url"] + "/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=30).text
    assert re.search(r'tfpredict_requests_total\{code="401",route="/v1/chat/completions"\} [1-9]', metrics), metrics
    assert 'tfpredict_errors_total{code="413"}' in metrics


# ---------------------------------------------------------------- 5, 6: load, autoscaling, a killed replica
def _replicas(states: tuple[str, ...] = ("RUNNING",)) -> int:
    from ray import serve

    got = serve.status().applications["tfpredict"].deployments["ModelServer"].replica_states
    return sum(int(got.get(s, 0)) for s in states)


def _load(served: dict[str, Any], n: int, clients: int, on_progress: Any = None,
          max_tokens: int = 24) -> list[requests.Response | str]:  # fmt: skip
    body = {"model": "bravo", "max_tokens": max_tokens, "temperature": 0,
            "messages": [{"role": "user", "content": "hello"}]}  # fmt: skip

    def one(k: int) -> requests.Response | str:
        try:
            return _post(served, "/v1/chat/completions", {**body, "seed": k})
        except requests.RequestException as e:  # a lost request would show here (a hang ends at the timeout)
            return f"{type(e).__name__}: {e}"

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        futs = [pool.submit(one, k) for k in range(n)]
        if on_progress is not None:
            on_progress(futs)
        return [f.result() for f in futs]


def test_a_bounded_load_gives_no_errors_and_replicas_scale_up_then_down(served: dict[str, Any]) -> None:
    seen = []

    def watch(futs: list[concurrent.futures.Future[Any]]) -> None:
        while not all(f.done() for f in futs):
            seen.append((_replicas(), _replicas(("STARTING", "UPDATING", "RUNNING"))))
            time.sleep(0.25)

    out = _load(served, 200, 16, watch, max_tokens=48)
    bad = [r if isinstance(r, str) else (r.status_code, r.text[:200]) for r in out
           if isinstance(r, str) or r.status_code != 200]  # fmt: skip
    assert not bad, bad[:5]
    assert all(r.json()["choices"][0]["message"]["content"].startswith("bravo") for r in out)  # type: ignore[union-attr]
    # a new replica starts slowly while the load holds both cores (its process imports torch and loads the model):
    # when it is still starting after the 200, keep the load on until it serves (bounded in time)
    deadline = time.time() + 120
    while max(r for r, _ in seen) < 2 and time.time() < deadline:
        more = _load(served, 64, 16, watch, max_tokens=48)
        assert all(not isinstance(r, str) and r.status_code == 200 for r in more)
    import ray
    from ray import serve

    why = (seen[-8:], ray.available_resources(), serve.status().applications["tfpredict"].deployments["ModelServer"])
    assert max(r for r, _ in seen) == 2, why  # scaled above min_replicas=1 under the load (and served)
    deadline = time.time() + 60
    while _replicas() > 1 and time.time() < deadline:
        time.sleep(1)
    assert _replicas() == 1  # and back down after it
    metrics = requests.get(served["url"] + "/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=30).text
    sizes = re.findall(r'tfpredict_batch_size_bucket\{le="1.0"\} ([0-9.e+]+)', metrics)
    total = re.findall(r"tfpredict_batch_size_count ([0-9.e+]+)", metrics)
    assert float(total[0]) >= 200 and float(sizes[0]) < float(total[0])  # requests were batched together


def test_killing_a_replica_under_load_loses_no_request(served: dict[str, Any]) -> None:
    import ray

    killed: list[str] = []

    def kill_midway(futs: list[concurrent.futures.Future[Any]]) -> None:
        while sum(f.done() for f in futs) < 10:
            time.sleep(0.05)
        names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if "ModelServer" in a["name"]]
        assert names
        ray.kill(ray.get_actor(names[0], namespace="serve"), no_restart=True)
        killed.append(names[0])

    out = _load(served, 100, 8, kill_midway, max_tokens=48)
    lost = [r for r in out if isinstance(r, str)]
    assert not lost, lost[:3]
    codes = [r.status_code for r in out]  # type: ignore[union-attr]
    for r in out:
        assert isinstance(r, requests.Response)
        doc = r.json()
        if r.status_code == 200:
            assert doc["choices"][0]["message"]["content"].startswith("bravo")
        else:  # an explicit error, never a silent drop
            assert r.status_code in (500, 503) and doc["error"]["message"], (r.status_code, r.text)
    assert codes.count(200) > 10  # requests after the kill were answered too (by the replacement)
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if "ModelServer" in a["name"]]
    assert killed and killed[0] not in names and names  # the killed replica is gone, another serves
    r = _post(served, "/v1/chat/completions", {"model": "bravo", "max_tokens": 4,
                                                "messages": [{"role": "user", "content": "hello"}]})  # fmt: skip
    assert r.status_code == 200  # recovered


def test_access_logs_name_each_request_and_never_its_body(served: dict[str, Any]) -> None:
    import ray

    secret = "SECRET-d41d8cd98f00b204"  # in the body only: it must reach the model and never the logs
    r = _post(served, "/v1/chat/completions", {"model": "base", "max_tokens": 2,
                                                "messages": [{"role": "user", "content": secret}]},
              headers_extra={"x-request-id": "req-log-check-1"})  # fmt: skip
    assert r.status_code == 200 and r.headers["x-request-id"] == "req-log-check-1"
    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    deadline, lines = time.time() + 30, []
    while time.time() < deadline and not lines:
        text = "".join(p.read_text(errors="replace") for p in logs.rglob("*") if p.suffix in (".log", ".out", ".err"))
        lines = [line for line in text.splitlines() if '"request_id": "req-log-check-1"' in line]
        time.sleep(0.5)
    assert lines, "no access log line for the request"
    entry = json.loads(lines[0][lines[0].index("{") :])
    assert entry["status"] == 200 and entry["path"] == "/v1/chat/completions" and entry["model"] == "base"
    assert secret not in text


def test_a_request_past_its_timeout_gets_504_and_the_service_goes_on(served: dict[str, Any]) -> None:
    from ray import serve

    from serve.app import build_app

    slow = served["args"].model_copy(update={"limits": served["args"].limits.model_copy(
        update={"request_timeout_s": 0.001}), "autoscaling": {"min_replicas": 1, "max_replicas": 1},
        "model_num_cpus": 0.25})  # fmt: skip
    serve.run(build_app(type(slow)(**slow.model_dump())), name="slow", route_prefix="/slow")
    try:
        r = _post(served, "/slow/v1/chat/completions", {"model": "base", "max_tokens": 64,
                                                         "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert r.status_code == 504 and "limits.request_timeout_s=0.001" in r.json()["error"]["message"], r.text
    finally:
        serve.delete("slow")
    ok = _post(served, "/v1/chat/completions", {"model": "base", "max_tokens": 2,
                                                 "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert ok.status_code == 200


def test_guards_hold_against_indirection(served: dict[str, Any]) -> None:
    """The limits and the key, attacked around their edges: a chunked body with no length, the budget under its
    other name, a prompt under the byte cap but over the token cap, the key elsewhere than its header, paths
    that look like /health, hostile file paths and file reads for the sandboxed planner."""
    url, chat = served["url"], {"model": "base", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    big = json.dumps({**chat, "messages": [{"role": "user", "content": "x" * 150_000}]}).encode()
    chunks = iter([big[i : i + 8192] for i in range(0, len(big), 8192)])
    auth = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    r = requests.post(url + "/v1/chat/completions", data=chunks, headers=auth, timeout=60)
    assert r.status_code == 413 and "limits.max_body_bytes" in r.json()["error"]["message"]  # chunked, no length
    r = _post(served, "/v1/chat/completions", {**chat, "max_completion_tokens": 5000})
    assert r.status_code == 413 and r.json()["error"]["param"] == "max_completion_tokens"
    words = " ".join(f"w{i}" for i in range(12_000))  # ~70 KB: under the body cap, over 8,192 prompt tokens
    r = _post(served, "/v1/completions", {"model": "base", "prompt": words, "max_tokens": 2})
    assert r.status_code == 413 and "limits.max_prompt_tokens" in r.json()["error"]["message"], r.text[:300]
    r = _post(served, "/v1/chat/completions", {**chat, "messages": [{"role": "user", "content": words}]}, key=KEY)
    assert r.status_code == 413
    for attempt in (
        requests.get(url + f"/v1/models?api_key={KEY}", timeout=30),
        requests.get(url + "/v1/models", headers={"X-API-Key": KEY}, timeout=30),
        requests.get(url + "/v1/models", headers={"Authorization": f"Basic {KEY}"}, timeout=30),
        requests.get(url + "/v1/models", headers={"Authorization": f"Bearer {KEY[:-1]}"}, timeout=30),
        requests.get(url + "/health/../v1/models", timeout=30),
        requests.get(url + "/v1/models/", timeout=30, allow_redirects=False),
    ):
        assert attempt.status_code in (401, 404), (attempt.url, attempt.status_code)
        assert '"data"' not in attempt.text
    # /validate plans the code with real terraform in the sandbox: a path out of the workspace is refused, and a
    # file the code reads never comes back (the answer holds addresses and actions, no values)
    r = _post(served, "/validate", {"files": {"../../escape.tf": 'resource "terraform_data" "x" {}\n'}})
    assert r.status_code == 422 and "expected" in r.json()["error"]["message"]
    assert not (Path("/") / "escape.tf").exists()
    read = 'resource "terraform_data" "leak" {\n  input = file("/etc/passwd")\n}\n'
    r = _post(served, "/validate", {"terraform_code": read})
    assert "root:" not in r.text and r.status_code in (200, 422)
