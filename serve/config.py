"""The Serve application's arguments (``build_app(args)``; ``serve/serve_config.yaml`` ``applications[].args``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from pipelines import storage
from schemas.config import Strict

BASE_TASK = "chat"


class ServedModel(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
    path: str  # a PEFT adapter directory (on the base model) or a full model directory
    task: Literal["plan_prediction", "chat"] = "plan_prediction"  # its route: the default temperature

    @property
    def is_adapter(self) -> bool:
        return storage.exists(storage.join(self.path, "adapter_config.json"))


class Batching(Strict):
    max_batch_size: int = Field(8, gt=0)  # requests generated together on one replica
    batch_wait_timeout_s: float = Field(0.02, ge=0)  # how long a batch waits to fill


class Autoscaling(Strict):
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, ge=1)
    initial_replicas: int | None = None
    target_ongoing_requests: float = Field(4, gt=0)  # per replica
    upscale_delay_s: float = Field(2.0, ge=0)
    downscale_delay_s: float = Field(30.0, ge=0)
    look_back_period_s: float = Field(30.0, gt=0)  # averaged over this window; must exceed metrics_interval_s
    metrics_interval_s: float = Field(10.0, gt=0)  # how often replicas report their load

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"autoscaling: max_replicas {self.max_replicas} < min_replicas {self.min_replicas}")
        if self.look_back_period_s <= self.metrics_interval_s:
            raise ValueError("autoscaling: look_back_period_s must be greater than metrics_interval_s")
        return self


class Limits(Strict):
    max_body_bytes: int = Field(1_048_576, gt=0)  # larger request bodies get 413
    max_tokens: int = Field(1024, gt=0)  # the most completion tokens a request may ask for (413 above)
    max_prompt_tokens: int = Field(8192, gt=0)  # rendered prompt tokens (413 above)
    request_timeout_s: float = Field(120.0, gt=0)  # per request, end to end (504 after)


class AppArgs(Strict):
    base_model: str | None = None  # the base model directory (or hub id), loaded once per model replica
    # train run directories (``data/runs/<name>``): each served under its directory name, on its base; base_model
    # defaults to the first run's untrained base (``with_runs``)
    runs: list[str] = []
    base_name: str = "base"  # its name in the API (``model`` field)
    base_method: Literal["lora", "qlora"] = "lora"  # qlora: the base loads 4-bit nf4, as its adapters trained
    compute_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    models: list[ServedModel] = []  # adapters (multiplexed on the base) and full models, by name
    plan_model: str | None = None  # /predict's default model; None: the first plan_prediction model, else base
    max_models_per_replica: int = Field(4, gt=0)  # LRU of loaded adapters / full models per replica
    temperatures: dict[str, float] = {"plan_prediction": 0.1, "chat": 0.7}  # per task route, when a request omits it
    default_max_tokens: int = Field(448, gt=0)  # when a request omits max_tokens (448: the evaluation budget)
    max_input_tokens: int = Field(6144, gt=0)  # /predict: the code's token budget (the dataset's, 413 above)
    batching: Batching = Batching()
    autoscaling: Autoscaling = Autoscaling()
    limits: Limits = Limits()
    max_ongoing_requests: int = Field(16, gt=0)  # per model replica (a batch is up to batching.max_batch_size)
    max_queued_requests: int = Field(256, ge=-1)  # per caller, waiting for a replica (-1: unbounded)
    ingress_replicas: int = Field(1, gt=0)
    model_num_cpus: float = Field(1.0, ge=0)
    model_num_gpus: float = Field(0.0, ge=0)
    api_key_env: str = "TFPREDICT_API_KEY"  # set on the replicas: bearer-token auth on every route but /health
    validate_isolation: Literal["auto", "bwrap"] = "auto"  # /validate plans untrusted code: contained, always
    # tfpredict: this app (CPU or GPU, every route). vllm: ray.serve.llm's OpenAI app on vLLM instead (GPU clusters
    # with `ray[llm]`; /v1 routes only; adapters must share one parent directory, loaded as <base_name>:<adapter>)
    engine: Literal["tfpredict", "vllm"] = "tfpredict"
    vllm_engine_kwargs: dict[str, Any] = {}  # vllm: passed to LLMConfig.engine_kwargs (max_model_len, ...)

    @model_validator(mode="after")
    def _names(self) -> AppArgs:
        if self.base_model is None and not self.runs:
            raise ValueError("set base_model (a model directory) or runs (train run directories)")
        names = [self.base_name, *(Path(r).resolve().name for r in self.runs), *(m.name for m in self.models)]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"model names must be unique; repeated: {dup}")
        if self.plan_model is not None and self.plan_model not in names:
            raise ValueError(f"plan_model {self.plan_model!r} is not served; choose from {names}")
        return self

    def with_runs(self) -> AppArgs:
        """``runs`` resolved into ``models`` (and ``base_model``, ``base_method``) from their exported weights."""
        from pipelines.train.runs import run_weights

        if not self.runs:
            return self
        models: list[dict[str, Any]] = []
        base, method = self.base_model, self.base_method
        for r in self.runs:
            w = run_weights(r)  # FileNotFoundError names the fix
            name = r.rstrip("/").rsplit("/", 1)[-1] if storage.is_uri(r) else Path(r).resolve().name
            models.append(ServedModel(name=name, path=w.adapter or w.model).model_dump())
            base = base or (w.model if w.adapter else w.base)
            if w.method == "qlora":
                method = "qlora"
        update = {"runs": [], "base_model": base, "base_method": method, "models": [*models, *self.models]}
        return AppArgs(**{**self.model_dump(), **update})

    def default_plan_model(self) -> str:
        if self.plan_model:
            return self.plan_model
        return next((m.name for m in self.models if m.task == "plan_prediction"), self.base_name)

    def cards(self) -> list[dict[str, Any]]:
        return [{"id": self.base_name, "task": BASE_TASK}, *({"id": m.name, "task": m.task} for m in self.models)]
