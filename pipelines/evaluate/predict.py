"""Predictors: a batch of chat prompts in, one ``Prediction`` per prompt out, never an exception per example.

- ``trivial``: the empty answer (``{"resource_changes":[]}``; for the other tasks ``""``), the floor every model
  must beat;
- ``reference``: the example's own reference answer, the ceiling of every metric (a check that scoring accepts
  the truth: it must score 1 everywhere);
- ``static``: the HCL-only static planner on the files *shown in the prompt* (the model's own input, so the
  comparison is fair: what the prompt omits, the planner does not see either);
- ``hf``: a causal LM — a base model, a train run's adapter (on its base) or a merged model — with batched
  greedy generation, left padding, and optionally the schema-constrained decoder;
- ``openai``: any OpenAI-compatible endpoint (our Serve app, vLLM), ``response_format`` json_schema when
  constrained.
``task`` says which task's answers a predictor writes: the constrained decoder follows that task's schema
(``plan_prediction``: the plan grammar; ``terminal_report``: its JSON Schema; the others have none).
A predictor that raises on a batch is retried one prompt at a time; a prompt that still raises, or that runs past
``timeout_s``, gets an error row (``error`` set, counted as a miss), and the rest of the batch goes on.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from pipelines import storage
from pipelines.evaluate.generate import GenParams
from schemas.config import Strict

logger = logging.getLogger("tfpredict.evaluate")
Messages = Sequence[Mapping[str, Any]]
SCHEMA_TASKS = ("plan_prediction", "terminal_report")  # tasks whose answers have a schema to constrain to
EMPTY = json.dumps({"resource_changes": []}, separators=(",", ":"))


@dataclass
class Prediction:
    text: str = ""
    finished: bool = True  # ended by itself, not at the token budget
    error: str | None = None  # the predictor failed on this example (crash, timeout)
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


class PredictorConfig(Strict):
    name: str  # the column label in the report, e.g. "fine-tuned"
    kind: Literal["trivial", "static", "hf", "openai", "reference"]
    model: str | None = None  # hf: base model dir or hub id; openai: the model name to request
    adapter: str | None = None  # hf: a PEFT adapter directory (loaded on ``model``)
    method: Literal["qlora", "lora", "full"] = "lora"  # how the adapter was trained (qlora loads the base 4-bit)
    base_url: str | None = None  # openai: e.g. http://127.0.0.1:8000/v1
    api_key_env: str = "OPENAI_API_KEY"  # openai: the environment variable holding the key
    constrained: bool = False  # schema-constrained decoding (hf: xgrammar; openai: response_format)
    task: Literal["plan_prediction", "terminal_report", "rego_policy", "records"] = "plan_prediction"
    # constrained plan answers (hf): "prompt": every address identifier and string key is a word of the prompt
    # (decoding.prompt_plan_grammar); "any": any well-formed address. OpenAI endpoints get the JSON Schema only.
    addresses: Literal["prompt", "any"] = "prompt"
    max_new_tokens: int = Field(512, gt=0)
    batch_size: int = Field(8, gt=0)
    timeout_s: float = Field(300.0, gt=0)  # per example
    compute_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    use_gpu: bool = False

    @model_validator(mode="after")
    def _fits_task(self) -> PredictorConfig:
        if self.constrained and self.task not in SCHEMA_TASKS:
            raise ValueError(f"constrained: {self.task} has no answer schema; constrain only {list(SCHEMA_TASKS)}")
        if self.kind == "static" and self.task != "plan_prediction":
            raise ValueError("kind static (the HCL planner) only answers plan_prediction")
        return self


class Predictor:
    def predict(self, prompts: Sequence[Messages]) -> list[Prediction]:
        raise NotImplementedError


class Trivial(Predictor):
    def __init__(self, task: str = "plan_prediction") -> None:
        self.text = EMPTY if task == "plan_prediction" else ""

    def predict(self, prompts: Sequence[Messages]) -> list[Prediction]:
        return [Prediction(text=self.text) for _ in prompts]


class Reference(Predictor):
    """The reference answer itself; it needs the whole example, so ``predict_rows`` answers for it."""

    def predict(self, prompts: Sequence[Messages]) -> list[Prediction]:
        raise TypeError("the reference predictor answers from the examples' own answers: use predict_rows")


_FILE = re.compile(r"^# file: (.+)$", re.M)


def files_from_prompt(user: str) -> tuple[str, dict[str, str]]:
    """(root module path, {path: content}) from a plan-prediction user turn (``Root module:`` and ``# file:``)."""
    root = ""
    m = re.search(r"^Root module: (.+)$", user, re.M)
    if m:
        root = m.group(1).strip()
    heads = list(_FILE.finditer(user))
    files: dict[str, str] = {}
    for i, h in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(user)
        body = user[h.end() + 1 : end]
        cut = re.search(r"^(# \[omitted files:|# changes since the applied commit)", body, re.M)
        files[h.group(1).strip()] = (body[: cut.start()] if cut else body).rstrip("\n") + "\n"
    return root, files


class Static(Predictor):
    def predict(self, prompts: Sequence[Messages]) -> list[Prediction]:
        from pipelines.terraform.plan_json import canonical_prediction
        from pipelines.terraform.static_planner import static_plan

        out = []
        for msgs in prompts:
            t0 = time.perf_counter()
            user = next((m["content"] for m in reversed(msgs) if m["role"] == "user"), "")
            root, files = files_from_prompt(user)
            plan = static_plan(files, root or ".")
            if plan.error:
                out.append(Prediction(error=f"static planner: {plan.error}", latency_s=time.perf_counter() - t0))
                continue
            text = canonical_prediction(plan.resource_changes)
            out.append(Prediction(text=text, latency_s=time.perf_counter() - t0))
        return out


class HF(Predictor):
    """Batched generation on one model load (a Ray Data actor holds one of these): ``generate.Generator``, the
    loop Serve runs too."""

    def __init__(self, cfg: PredictorConfig) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        from pipelines.dataset.tokens import load_tokenizer
        from pipelines.evaluate.generate import Generator
        from pipelines.train.export import DTYPES, load_trained

        if cfg.model is None:
            raise ValueError(f"predictor {cfg.name}: kind=hf needs model (a base model directory or hub id)")
        self.cfg = cfg
        device = torch.device("cuda" if cfg.use_gpu else "cpu")
        base, adapter = storage.local(cfg.model), storage.local(cfg.adapter) if cfg.adapter else None  # this node's
        tok = load_tokenizer(adapter or base)
        if adapter:
            model = load_trained(base, adapter, cfg.method, cfg.compute_dtype)
        else:
            model = AutoModelForCausalLM.from_pretrained(base, dtype=DTYPES[cfg.compute_dtype]).eval()
        if cfg.use_gpu and cfg.method != "qlora":
            model.to(device)
        self.gen = Generator(model, tok, device)
        self.budget = answer_budget(cfg.max_new_tokens, cfg.constrained)

    def params(self, prompt: Messages) -> GenParams:
        return gen_params(self.cfg.task, prompt, self.budget, self.cfg.constrained, self.cfg.addresses)

    def predict(self, prompts: Sequence[Messages]) -> list[Prediction]:
        ids = [self.gen.render(p) for p in prompts]
        out = self.gen.generate(ids, [self.params(p) for p in prompts])
        return [Prediction(text=g.text, finished=g.finished, latency_s=g.latency_s, prompt_tokens=g.prompt_tokens,
                           completion_tokens=g.completion_tokens) for g in out]  # fmt: skip


def answer_budget(max_new_tokens: int, constrained: bool) -> int:
    """The token budget generation gets: constrained, it keeps back the tokens that closing a cut answer takes,
    so the closed answer fits ``max_new_tokens``."""
    from pipelines.evaluate.decoding import CLOSE_RESERVE

    return max(1, max_new_tokens - (CLOSE_RESERVE if constrained else 0))


def gen_params(task: str, prompt: Messages, max_tokens: int, constrained: bool, addresses: str = "prompt",
               **sampling: Any) -> GenParams:  # fmt: skip
    """Generation settings of one prompt of ``task``: greedy unless ``sampling`` says otherwise; constrained, the
    task's grammar (plan answers: addresses of the prompt's words when ``addresses == "prompt"``)."""
    from pipelines.evaluate.decoding import load_schema, sorted_properties
    from pipelines.evaluate.generate import Grammar

    grammar = None
    if constrained and task == "plan_prediction":
        words = "\n".join(m["content"] for m in prompt if m["role"] != "assistant") if addresses == "prompt" else None
        grammar = Grammar("plan", words=words)
    elif constrained:
        grammar = Grammar("schema", schema=json.dumps(sorted_properties(load_schema(task))))
    return GenParams(max_tokens=max_tokens, grammar=grammar, **sampling)


class OpenAI(Predictor):
    def __init__(self, cfg: PredictorConfig) -> None:
        import os

        import openai

        if not cfg.base_url or not cfg.model:
            raise ValueError(f"predictor {cfg.name}: kind=openai needs base_url and model")
        self.cfg = cfg
        self.client = openai.OpenAI(
            base_url=cfg.base_url, api_key=os.environ.get(cfg.api_key_env, "none"), timeout=cfg.timeout_s, max_retries=1
        )

    def predict(self, prompts: Sequence[Messages]) -> list[Prediction]:
        from pipelines.evaluate.decoding import load_schema

        fmt: dict[str, Any] | None = None
        if self.cfg.constrained:
            fmt = {"type": "json_schema", "json_schema": {"name": self.cfg.task, "schema": load_schema(self.cfg.task)}}
        out = []
        for p in prompts:
            t0 = time.perf_counter()
            kwargs: dict[str, Any] = {"response_format": fmt} if fmt else {}
            r = self.client.chat.completions.create(
                model=self.cfg.model or "",
                messages=[{"role": m["role"], "content": m["content"]} for m in p],  # type: ignore[misc]
                max_tokens=self.cfg.max_new_tokens,
                temperature=0.0,
                **kwargs,
            )
            choice = r.choices[0]
            out.append(
                Prediction(
                    text=choice.message.content or "",
                    finished=choice.finish_reason == "stop",
                    latency_s=time.perf_counter() - t0,
                    prompt_tokens=r.usage.prompt_tokens if r.usage else 0,
                    completion_tokens=r.usage.completion_tokens if r.usage else 0,
                )
            )
        return out


def make(cfg: PredictorConfig) -> Predictor:
    kinds: dict[str, Any] = {"trivial": lambda c: Trivial(c.task), "static": lambda c: Static(), "hf": HF,
                             "openai": OpenAI, "reference": lambda c: Reference()}  # fmt: skip
    return kinds[cfg.kind](cfg)


def predict_rows(predictor: Predictor, cfg: PredictorConfig, rows: Sequence[Mapping[str, Any]]) -> list[Prediction]:
    """One prediction per example row (its ``messages`` end with the reference answer, which the prompt drops)."""
    if isinstance(predictor, Reference):
        return [Prediction(text=r["messages"][-1]["content"]) for r in rows]
    return predict_safely(predictor, [r["messages"][:-1] for r in rows], cfg.timeout_s)


def predict_safely(predictor: Predictor, prompts: Sequence[Messages], timeout_s: float) -> list[Prediction]:
    """``predictor.predict`` on the batch; on failure one prompt at a time; a prompt that raises or runs past
    ``timeout_s`` becomes an error row. A hung call is abandoned on its thread (the actor goes on)."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        fut = pool.submit(predictor.predict, prompts)
        try:
            preds = fut.result(timeout=timeout_s * len(prompts))
            if len(preds) == len(prompts):
                return preds
            logger.warning("predictor returned %d predictions for %d prompts", len(preds), len(prompts))
        except Exception as e:
            logger.warning("batch of %d failed (%s); retrying one prompt at a time", len(prompts), _why(e))
        out = []
        for p in prompts:
            single = concurrent.futures.ThreadPoolExecutor(max_workers=1)
            try:
                got = single.submit(predictor.predict, [p]).result(timeout=timeout_s)
                out.append(got[0] if len(got) == 1 else Prediction(error="predictor returned no prediction"))
            except Exception as e:
                out.append(Prediction(error=_why(e), finished=False))
            finally:
                single.shutdown(wait=False, cancel_futures=True)
        return out
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _why(e: BaseException) -> str:
    if isinstance(e, concurrent.futures.TimeoutError):
        return "timeout: the predictor did not answer in time"
    return f"{type(e).__name__}: {str(e)[:300]}"
