"""The tfpredict Ray Serve application: a FastAPI ingress in front of the model deployment.

    serve run serve/serve_config.yaml          # or: python -m ray_jobs.serve (the embedded default / a train run)

Routes: ``GET /health`` (no auth), ``GET /metrics`` (Prometheus text), ``GET /v1/models``,
``POST /v1/chat/completions`` and ``POST /v1/completions`` (OpenAI-compatible, streaming or not,
``response_format`` json_object / json_schema through evaluation's constrained decoder), ``POST /predict``
(Terraform code → resource changes, the prompt built by the dataset's own code) and ``POST /validate`` (the
prediction scored by evaluation's metric code against ``expected``, or against the real plan terraform makes in
the sandbox). The ``model`` field picks the base model or a served adapter / full model (404 lists them); a
request that omits ``temperature`` gets its model's task route default (``temperatures``).

Errors are OpenAI-shaped JSON (``{"error": {"message", "type", "param", "code"}}``): 401 bad or missing key,
404 unknown model, 413 over a limit (named), 422 invalid request (the field named), 503 a replica failed, 504
past ``limits.request_timeout_s``; never a stack trace. Access logs are one JSON line per request, no bodies.
``build_app(args)`` does all the work; importing this module loads no model. The FastAPI app is built in each replica
(``__serve_build_asgi_app__``), its routes closures over that replica's ``Gateway``: state such as the metrics and
the key is the replica's own, never a copy pickled with the class. (No ``from __future__ import annotations``:
FastAPI reads the route parameters' types at runtime.)
"""

import asyncio
import hmac
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas import api
from serve.config import AppArgs
from serve.metrics import CONTENT_TYPE, Metrics
from serve.model import ModelServer, _replica_id

logger = logging.getLogger("tfpredict.serve")
access = logging.getLogger("tfpredict.serve.access")

_TYPES = {401: "authentication_error", 404: "not_found_error", 413: "request_too_large", 422: "invalid_request_error",
          429: "rate_limit_error", 503: "service_unavailable", 504: "timeout"}  # fmt: skip


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.extra = status, message, param, extra


def _error(status: int, message: str, param: str | None = None, **extra: Any) -> JSONResponse:
    body = {"error": {"message": message, "type": _TYPES.get(status, "server_error"), "param": param,
                      "code": status, **extra}}  # fmt: skip
    return JSONResponse(body, status_code=status)


async def _api_error(request: Request, e: ApiError) -> JSONResponse:
    return _error(e.status, e.message, e.param, **e.extra)


async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
    problems, first = [], None
    for err in e.errors():
        if err.get("type") == "json_invalid":
            at = err.get("loc", ("body", "?"))[-1]
            why = (err.get("ctx") or {}).get("error", "")
            return _error(422, f"the request body is not valid JSON (at character {at}: {why or err.get('msg')})")
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        where = ".".join(loc) or "body"
        first = first or where
        problems.append(f"{where}: {err.get('msg', 'invalid')}")
    return _error(422, "; ".join(problems) or "invalid request", first)


async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
    return _error(e.status_code, str(e.detail))


async def _internal(request: Request, e: Exception) -> JSONResponse:
    rid = getattr(request.state, "request_id", "-")
    if _replica_failed(e):
        logger.warning("request %s: a model replica failed: %s", rid, type(e).__name__)
        return _error(503, f"a model replica failed while answering (request {rid}); retry the request")
    logger.error("request %s failed", rid, exc_info=e)
    return _error(500, f"internal error (request {rid}); the server log has the details")


def _replica_failed(e: BaseException) -> bool:
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

    return isinstance(e, RayActorError | ActorDiedError | ActorUnavailableError)


def _request_id(request: Request) -> str:
    """Serve's id of the request (the client's ``x-request-id`` when it sent one; Serve returns it as that header)."""
    from ray.serve.context import _get_serve_request_context

    return _get_serve_request_context().request_id or request.headers.get("x-request-id") or uuid.uuid4().hex


async def _guard(gw: "Gateway", request: Request, call_next: Any) -> Response:
    """Request id, body cap, bearer-token auth, the access log line and the request metrics."""
    rid = _request_id(request)
    request.state.request_id = rid
    t0 = time.perf_counter()
    response = await _checked(request, call_next, gw)
    elapsed = time.perf_counter() - t0
    route = request.url.path
    gw.metrics.observe(route, response.status_code, elapsed)
    access.info(json.dumps({"request_id": rid, "method": request.method, "path": route,
                            "status": response.status_code, "ms": round(elapsed * 1000, 1),
                            "model": getattr(request.state, "model", None)}))  # fmt: skip
    return response


async def _checked(request: Request, call_next: Any, gw: "Gateway") -> Response:
    limit = gw.args.limits.max_body_bytes
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > limit:
        return _error(413, f"the request body is {size} bytes; the limit is limits.max_body_bytes={limit}")
    if size is None and request.method == "POST" and len(await request.body()) > limit:
        return _error(413, f"the request body is over limits.max_body_bytes={limit}")
    if gw.api_key and not request.url.path.endswith("/health"):  # /health, also under a route prefix
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), gw.api_key.encode()):
            why = "missing" if not given else "wrong"
            return _error(401, f"{why} API key: send the header 'Authorization: Bearer <key>' ({gw.args.api_key_env})")
    return await call_next(request)


class _StartedStream(StreamingResponse):
    """An SSE response whose first model event is awaited before the headers go out, so that a request the model
    refuses (404, 413, 422) gets its status code instead of a 200 stream with an error inside."""

    def __init__(self, first: Any, gen: Any) -> None:
        self._first = first
        super().__init__(gen(), media_type="text/event-stream")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self._first()
        except ApiError as e:
            await _error(e.status, e.message, e.param, **e.extra)(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n"


def _usage(out: dict[str, Any]) -> dict[str, int]:
    p, c = int(out["prompt_tokens"]), int(out["completion_tokens"])
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _fields(params: Any) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(params)
    d["grammar"] = params.grammar
    return d


def make_api(gw: "Gateway") -> FastAPI:
    """The FastAPI app of one ingress replica, its routes bound to that replica's ``Gateway``."""
    web = FastAPI(title="tfpredict", description="Terraform plan prediction and chat on Ray Serve", version="1")
    web.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    web.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    web.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    web.add_exception_handler(Exception, _internal)

    @web.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        return await _guard(gw, request, call_next)

    @web.get("/health")
    async def health() -> dict[str, Any]:
        return await gw.health()

    @web.get("/metrics")
    async def metrics() -> Response:
        return Response(gw.metrics.text(), media_type=CONTENT_TYPE)

    @web.get("/v1/models")
    async def models() -> api.ModelList:
        return gw.models()

    @web.post("/v1/chat/completions", response_model=None)
    async def chat(body: api.ChatCompletionRequest, request: Request) -> Any:
        return await gw.chat(body, request)

    @web.post("/v1/completions", response_model=None)
    async def completions(body: api.CompletionRequest, request: Request) -> Any:
        return await gw.completions(body, request)

    @web.post("/predict")
    async def predict(body: api.PredictRequest, request: Request) -> api.PredictResponse:
        return await gw.predict(body, request)

    @web.post("/validate")
    async def validate(body: api.ValidateRequest, request: Request) -> api.ValidateResponse:
        return await gw.validate(body, request)

    return web


@serve.deployment
@serve.ingress()
class Gateway:
    def __init__(self, model: DeploymentHandle, args: dict[str, Any]) -> None:
        from pipelines.dataset.tokens import load_tokenizer

        self.args = AppArgs(**args).with_runs()
        assert self.args.base_model is not None
        self.model = model
        self.api_key = os.environ.get(self.args.api_key_env) or None
        self.cards = {c["id"]: c for c in self.args.cards()}
        self.tok = load_tokenizer(self.args.base_model)  # counts /predict's code against max_input_tokens
        self.metrics = Metrics()
        if not access.handlers:  # one JSON line per request on the replica's stderr (its log file)
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(message)s"))
            access.addHandler(handler)
            access.setLevel(logging.INFO)
            access.propagate = False

    def __serve_build_asgi_app__(self) -> FastAPI:
        return make_api(self)

    # ------------------------------------------------------------ plumbing
    def _card(self, name: str) -> dict[str, Any]:
        if name not in self.cards:
            raise ApiError(404, f"model {name!r} does not exist; available: {', '.join(self.cards)}", "model",
                           available=list(self.cards))  # fmt: skip
        return self.cards[name]

    def _max_tokens(self, asked: int | None, param: str = "max_tokens") -> int:
        n = asked or self.args.default_max_tokens
        if n > self.args.limits.max_tokens:
            raise ApiError(413, f"{param} {n} is over the limit limits.max_tokens={self.args.limits.max_tokens}",
                           param)  # fmt: skip
        return n

    def _temperature(self, card: dict[str, Any], asked: float | None) -> float:
        return asked if asked is not None else self.args.temperatures.get(card["task"], 0.0)

    def _handle(self, model: str) -> DeploymentHandle:
        return self.model.options(multiplexed_model_id=model if model != self.args.base_name else "")

    def _raise(self, ev: dict[str, Any]) -> None:
        if "error" in ev:
            status = ev["error"]["status"]
            raise ApiError(status, ev["error"]["message"], "model" if status == 404 else None)

    async def _events(self, model: str, req: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The model deployment's events for one streamed request; its error event raised as ApiError."""
        async for ev in self._handle(model).options(stream=True).generate.remote(req):
            self._raise(ev)
            yield ev

    async def _complete(self, model: str, req: dict[str, Any]) -> dict[str, Any]:
        """Run one request to its end: {text, finish_reason, prompt_tokens, completion_tokens, ...}."""
        try:
            async with asyncio.timeout(self.args.limits.request_timeout_s):
                ev = await self._handle(model).complete.remote(req)
        except TimeoutError:
            limit = self.args.limits.request_timeout_s
            raise ApiError(504, f"no answer within limits.request_timeout_s={limit}") from None
        self._raise(ev)
        self._count(model, ev["done"])
        return ev["done"]

    def _count(self, model: str, done: dict[str, Any]) -> None:
        self.metrics.tokens.labels(model).inc(done["completion_tokens"])
        self.metrics.prompt_tokens.labels(model).inc(done["prompt_tokens"])
        self.metrics.batch.observe(done["batch_size"])

    def _params(self, body: api._Sampling, card: dict[str, Any], grammar: Any = None) -> dict[str, Any]:
        param = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
        return {"max_tokens": self._max_tokens(body.budget(), param),
                "temperature": self._temperature(card, body.temperature), "top_p": body.top_p, "seed": body.seed,
                "stop": tuple(body.stop or ()), "grammar": grammar}  # fmt: skip

    # ------------------------------------------------------------ service routes
    async def health(self) -> dict[str, Any]:
        info = await self.model.info.remote()
        return {"status": "ok", "models": list(self.cards), "plan_model": self.args.default_plan_model(),
                "model_replica": info, "ingress_replica": _replica_id()}  # fmt: skip

    def models(self) -> api.ModelList:
        return api.ModelList(data=[api.ModelCard(id=c["id"], task=c["task"]) for c in self.cards.values()])

    # ------------------------------------------------------------ OpenAI-compatible
    async def chat(self, body: api.ChatCompletionRequest, request: Request) -> Any:
        from pipelines.evaluate.generate import Grammar

        request.state.model = body.model
        card = self._card(body.model)
        try:
            messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                        for m in body.messages]  # fmt: skip
        except ValueError as e:
            raise ApiError(422, f"messages: {e}", "messages") from None
        grammar = None
        fmt = body.response_format
        if fmt is not None and fmt.type == "json_object":
            grammar = Grammar("json")
        elif fmt is not None and fmt.type == "json_schema" and fmt.json_schema is not None:
            from pipelines.evaluate.decoding import sorted_properties

            grammar = Grammar("schema", schema=json.dumps(sorted_properties(fmt.json_schema.schema_)))
        req = {"messages": messages, "params": self._params(body, card, grammar)}
        if body.stream:
            return self._stream(body, req, chat=True)
        out = await self._complete(body.model, req)
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": body.model, "choices": [{"index": 0, "message": {"role": "assistant", "content": out["text"]},
                                                  "finish_reason": out["finish_reason"], "logprobs": None}],
                "usage": _usage(out)}  # fmt: skip

    async def completions(self, body: api.CompletionRequest, request: Request) -> Any:
        request.state.model = body.model
        card = self._card(body.model)
        req = {"prompt": body.prompt, "params": self._params(body, card)}
        if body.stream:
            return self._stream(body, req, chat=False)
        out = await self._complete(body.model, req)
        text = (body.prompt if body.echo else "") + out["text"]
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": body.model, "choices": [{"index": 0, "text": text, "finish_reason": out["finish_reason"],
                                                  "logprobs": None}], "usage": _usage(out)}  # fmt: skip

    def _stream(self, body: api._Sampling, req: dict[str, Any], chat: bool) -> StreamingResponse:
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        created, obj = int(time.time()), "chat.completion.chunk" if chat else "text_completion"

        def chunk(delta: str | None, finish: str | None, role: bool = False) -> str:
            if chat:
                d: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
                if delta:
                    d["content"] = delta
                choice: dict[str, Any] = {"index": 0, "delta": d, "finish_reason": finish, "logprobs": None}
            else:
                choice = {"index": 0, "text": delta or "", "finish_reason": finish, "logprobs": None}
            return _sse({"id": rid, "object": obj, "created": created, "model": body.model, "choices": [choice]})

        events = self._events(body.model, req)

        async def first() -> dict[str, Any]:  # the start event: request errors (404, 413, 422) come before it
            return await anext(events)

        async def gen() -> AsyncIterator[str]:
            if chat:
                yield chunk(None, None, role=True)
            try:
                async with asyncio.timeout(self.args.limits.request_timeout_s):
                    async for ev in events:
                        if ev.get("delta"):
                            yield chunk(ev["delta"], None)
                        if "done" in ev:
                            done = ev["done"]
                            self._count(body.model, done)
                            yield chunk(None, done["finish_reason"])
                            if body.stream_options and body.stream_options.include_usage:
                                yield _sse({"id": rid, "object": obj, "created": created, "model": body.model,
                                            "choices": [], "usage": _usage(done)})  # fmt: skip
            except TimeoutError:
                yield _sse({"error": {"message": "no answer within limits.request_timeout_s", "code": 504}})
            except ApiError as e:
                yield _sse({"error": {"message": e.message, "code": e.status}})
            except Exception as e:  # the stream has begun: the error goes in it, never a trace
                yield _sse({"error": {"message": "a model replica failed while answering; retry the request",
                                      "code": 503 if _replica_failed(e) else 500}})  # fmt: skip
            yield "data: [DONE]\n\n"

        return _StartedStream(first, gen)

    # ------------------------------------------------------------ plan prediction
    async def _predict(self, body: api.PredictRequest, request: Request) -> api.PredictResponse:
        from pipelines.dataset.tasks.plan_prediction import SYSTEM_PROMPT, user_turn
        from pipelines.evaluate.metrics import read_answer
        from pipelines.evaluate.predict import answer_budget, gen_params

        name = body.model or self.args.default_plan_model()
        request.state.model = name
        self._card(name)

        def count(text: str) -> int:
            return len(self.tok.encode(text, add_special_tokens=False))

        user, cut = user_turn(body.file_list(), body.root, self.args.max_input_tokens, count)
        if cut:
            raise ApiError(413, f"the code is over max_input_tokens={self.args.max_input_tokens} tokens (the "
                                "dataset's budget); send the root module and its local modules only")  # fmt: skip
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
        budget = answer_budget(self._max_tokens(body.max_tokens), body.constrained)
        params = gen_params("plan_prediction", messages, budget, body.constrained, temperature=body.temperature)
        t0 = time.perf_counter()
        out = await self._complete(name, {"messages": messages, "params": _fields(params)})
        read = read_answer(out["text"], out["finish_reason"] == "stop", body.constrained)
        return api.PredictResponse(
            model=name, resource_changes=read.changes, raw=out["text"], valid=read.changes is not None,
            status=read.status, parse_error=read.parse_error, finish_reason=out["finish_reason"],
            latency_s=time.perf_counter() - t0, usage=api.Usage(**_usage(out)))  # fmt: skip

    async def predict(self, body: api.PredictRequest, request: Request) -> api.PredictResponse:
        return await self._predict(body, request)

    async def validate(self, body: api.ValidateRequest, request: Request) -> api.ValidateResponse:
        from pipelines.evaluate.metrics import score_example

        if body.expected is not None:
            expected, source = [c.model_dump() for c in body.expected], "request"
        else:
            expected, source = await asyncio.to_thread(self._plan, body), "terraform"
        pred = await self._predict(body, request)
        s = score_example(pred.resource_changes, expected)
        row = s.as_row()
        return api.ValidateResponse(precision=row["precision"], recall=row["recall"], f1=row["f1"],
                                    address_f1=row["address_f1"], exact_match=row["exact_match"], expected=expected,
                                    expected_source=source, prediction=pred)  # type: ignore[arg-type]  # fmt: skip

    def _plan(self, body: api.PredictRequest) -> list[dict[str, Any]]:
        """The real plan of the request's code, by terraform in the sandbox (the code is untrusted)."""
        from pipelines.terraform.install import ensure_mirror, ensure_terraform
        from pipelines.terraform.sandbox import SandboxConfig, plan_workspace

        cfg = SandboxConfig(terraform=str(ensure_terraform()), mirror=str(ensure_mirror(None)), timeout_s=60,
                            isolation=self.args.validate_isolation)  # fmt: skip
        res = plan_workspace(body.file_list(), body.root, cfg, trusted=False)
        if res.status != "ok":
            raise ApiError(422, f"expected was omitted and terraform could not plan the code ({res.step}: "
                                f"{(res.error or res.status)[:400]}); send expected, or code whose providers are "
                                "in the offline mirror", "expected")  # fmt: skip
        return [{"address": c["address"], "actions": list(c["actions"])} for c in res.resource_changes]


def build_app(args: AppArgs) -> Any:
    """The application: ``Gateway`` (FastAPI ingress) bound to ``ModelServer``, sized from ``args``."""
    a = args.with_runs()
    if a.engine == "vllm":
        return _vllm_app(a)
    auto = a.autoscaling.model_dump(exclude_none=True)
    env = {a.api_key_env: os.environ[a.api_key_env]} if os.environ.get(a.api_key_env) else {}
    actor: dict[str, Any] = {"num_cpus": a.model_num_cpus, "num_gpus": a.model_num_gpus}
    if env:  # the key travels to the replicas in their runtime env (on a cluster, set it on the nodes instead)
        actor["runtime_env"] = {"env_vars": env}
    model = serve.deployment(ModelServer).options(
        name="ModelServer", autoscaling_config=auto, max_ongoing_requests=a.max_ongoing_requests,
        max_queued_requests=a.max_queued_requests, ray_actor_options=actor, health_check_period_s=10,
        health_check_timeout_s=30, graceful_shutdown_timeout_s=a.limits.request_timeout_s,
    ).bind(a.model_dump())  # fmt: skip
    ingress_actor: dict[str, Any] = {"num_cpus": 0}
    if env:
        ingress_actor["runtime_env"] = {"env_vars": env}
    ongoing = max(64, a.max_ongoing_requests * 4)
    return Gateway.options(num_replicas=a.ingress_replicas, ray_actor_options=ingress_actor,
                           max_ongoing_requests=ongoing).bind(model, a.model_dump())  # fmt: skip


def _vllm_app(a: AppArgs) -> Any:
    """The same models on ``ray.serve.llm`` (vLLM): its OpenAI-compatible app, our autoscaling settings."""
    from pathlib import Path

    try:
        from ray.serve.llm import LLMConfig, build_openai_app
    except ImportError as e:
        raise RuntimeError(f"engine: vllm needs vLLM on the cluster (pip install 'ray[llm]'): {e}. The default "
                           "engine (tfpredict) serves the same models on CPU or GPU without it") from None  # fmt: skip
    full = [m.name for m in a.models if not m.is_adapter]
    parents = {str(Path(m.path).resolve().parent) for m in a.models if m.is_adapter}
    if full or len(parents) > 1:
        raise ValueError(f"engine: vllm serves one base with adapters under one directory; full models {full}, "
                         f"adapter directories {sorted(parents)}")  # fmt: skip
    lora = None
    if parents:
        lora = {"dynamic_lora_loading_path": parents.pop(), "max_num_adapters_per_replica": a.max_models_per_replica}
    deployment = {"autoscaling_config": a.autoscaling.model_dump(exclude_none=True),
                  "max_ongoing_requests": a.max_ongoing_requests}  # fmt: skip
    cfg = LLMConfig(
        model_loading_config={"model_id": a.base_name, "model_source": a.base_model},
        lora_config=lora,
        deployment_config=deployment,
        engine_kwargs=a.vllm_engine_kwargs,
    )
    return build_openai_app({"llm_configs": [cfg]})
