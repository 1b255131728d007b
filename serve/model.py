"""The model deployment: one base model per replica, adapters and full models multiplexed, batched generation.

Every request is one ``GenParams`` row of ``pipelines.evaluate.generate`` (evaluation's loop): requests that
arrive together (``@serve.batch``) share one ``generate`` call, whatever their adapters (PEFT mixed-adapter
batches), budgets, temperatures, stop strings or grammars; a full model in the same batch generates as its own
group. Adapters load on first use (``@serve.multiplexed``: an LRU of ``max_models_per_replica``; Serve routes a
model's requests to the replicas that hold it). Each request streams events: ``{"start": ...}`` once, then
``{"delta": text}`` per step, then ``{"done": result}``, or a single ``{"error": {status, message}}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from typing import Any

from ray import serve

from pipelines import storage
from pipelines.evaluate.generate import BASE, Generator, GenParams
from serve.config import AppArgs

logger = logging.getLogger("tfpredict.serve")


@dataclass
class Target:
    """Where a request generates: a generator and (on the shared PEFT model) an adapter name."""

    gen: Generator
    adapter: str | None = None
    retire: Any = None  # called when the LRU evicts it

    def __del__(self) -> None:  # Serve's multiplexer calls this on eviction (and Python at collection)
        if self.retire is not None:
            self.retire(self.adapter)
            self.retire = None


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class ModelServer:
    def __init__(self, args: dict[str, Any]) -> None:
        import torch

        from pipelines.dataset.tokens import load_tokenizer
        from pipelines.train.export import _load_base

        self.args = AppArgs(**args).with_runs()
        a = self.args
        assert a.base_model is not None  # with_runs sets it (the validator requires base_model or runs)
        self.device = torch.device("cuda" if a.model_num_gpus > 0 and torch.cuda.is_available() else "cpu")
        base_dir = storage.local(a.base_model)  # an object store location: this node's copy
        self.tok = load_tokenizer(base_dir)
        base = _load_base(base_dir, a.base_method, a.compute_dtype).eval()
        if self.device.type == "cuda" and a.base_method != "qlora":
            base.to(self.device)
        self.base = base
        self.shared = Generator(base, self.tok, self.device)  # becomes the PEFT model once an adapter loads
        self.specs = {m.name: m for m in a.models}
        self.adapters: set[str] = set()  # loaded on the shared model
        self.retired: set[str] = set()  # evicted, deleted once no batch runs
        self.running = 0

        async def load(model_id: str) -> Target:
            return await self._load(model_id)

        self.get_model = serve.multiplexed(max_num_models_per_replica=a.max_models_per_replica)(load)
        self.batched.set_max_batch_size(a.batching.max_batch_size)
        self.batched.set_batch_wait_timeout_s(a.batching.batch_wait_timeout_s)
        self.replica = os.environ.get("RAY_SERVE_REPLICA_ID") or _replica_id()
        logger.info("model replica %s: base %s on %s", self.replica, a.base_model, self.device)

    # ------------------------------------------------------------ models
    async def _load(self, model_id: str) -> Target:
        spec = self.specs.get(model_id)
        if spec is None:
            raise RequestError(404, f"model {model_id!r} is not served")
        if spec.is_adapter:
            await asyncio.to_thread(self._add_adapter, model_id, storage.local(spec.path))
            return Target(self.shared, model_id, self._retire)
        from pipelines.train.export import DTYPES

        def full() -> Generator:
            from transformers import AutoModelForCausalLM

            from pipelines.dataset.tokens import load_tokenizer

            path = storage.local(spec.path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[self.args.compute_dtype]).eval()
            return Generator(model.to(self.device), load_tokenizer(path), self.device)

        return Target(await asyncio.to_thread(full))

    def _add_adapter(self, name: str, path: str) -> None:
        from peft import PeftModel

        with self.shared.lock:
            self.retired.discard(name)
            if name in self.adapters:
                return
            if isinstance(self.shared.model, PeftModel):
                self.shared.model.load_adapter(path, adapter_name=name)
            else:
                self.shared.model = PeftModel.from_pretrained(self.base, path, adapter_name=name).eval()
            self.adapters.add(name)
        logger.info("loaded adapter %s from %s", name, path)

    def _retire(self, name: str | None) -> None:
        if name is not None:
            self.retired.add(name)

    def _drop_retired(self) -> None:
        """Delete evicted adapters while no batch generates (one may still be finishing with one)."""
        if self.running or not self.retired:
            return
        with self.shared.lock:
            for name in sorted(self.retired & self.adapters):
                self.shared.model.delete_adapter(name)
                self.adapters.discard(name)
                logger.info("unloaded adapter %s", name)
            self.retired.clear()

    async def target(self, model_id: str) -> Target:
        if model_id in ("", self.args.base_name):
            return Target(self.shared, BASE)
        return await self.get_model(model_id)

    # ------------------------------------------------------------ requests
    def prompt_ids(self, gen: Generator, req: dict[str, Any]) -> list[int]:
        if "messages" in req:
            return gen.render(req["messages"])
        return list(gen.tok.encode(req["prompt"], add_special_tokens=True))

    def _precompile(self, gen: Generator, params: GenParams) -> None:
        """Compile the request's grammar now (cached), so a schema xgrammar refuses fails this request only."""
        g = params.grammar
        if g is None:
            return
        from pipelines.evaluate.decoding import plan_grammar, schema_grammar

        if g.kind == "plan":
            plan_grammar(gen.tok, gen.vocab, g.words)
        else:
            schema_grammar(gen.tok, gen.vocab, json.loads(g.schema) if g.schema else None)

    async def generate(self, req: dict[str, Any], stream: bool = True) -> AsyncIterator[dict[str, Any]]:
        """One request: {messages | prompt, params: GenParams fields} → start, deltas, done (or one error);
        ``stream=False``: start, then done with the whole text (no per-step events)."""
        try:
            target = await self.target(serve.get_multiplexed_model_id())
            ids = self.prompt_ids(target.gen, req)
            if len(ids) > self.args.limits.max_prompt_tokens:
                raise RequestError(413, f"the prompt is {len(ids)} tokens; the limit is limits.max_prompt_tokens="
                                        f"{self.args.limits.max_prompt_tokens}")  # fmt: skip
            params = replace(GenParams(**req["params"]), adapter=target.adapter)
            try:
                await asyncio.to_thread(self._precompile, target.gen, params)
            except Exception as e:
                raise RequestError(422, f"response_format: the schema cannot be compiled: {str(e)[:300]}") from e
        except RequestError as e:
            yield {"error": {"status": e.status, "message": e.message}}
            return
        yield {"start": {"prompt_tokens": len(ids), "replica": self.replica}}
        async for ev in self.batched((target, ids, params, stream)):
            if ev is not None:
                yield ev
                if "done" in ev:
                    return

    async def complete(self, req: dict[str, Any]) -> dict[str, Any]:
        """One request to its end, answered once: {start, done (with the whole text)} or {error}. What a caller
        that does not stream uses: one message back instead of one per generated token."""
        start, text = None, []
        async for ev in self.generate(req, stream=False):
            if "error" in ev:
                return ev
            start = ev.get("start", start)
            text.append(ev.get("delta", ""))
            if "done" in ev:
                return {"start": start, "done": {**ev["done"], "text": "".join(text)}}
        return {"error": {"status": 503, "message": "the model replica ended the request without an answer"}}

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def batched(self, items: list[tuple[Target, list[int], GenParams, bool]]) -> AsyncIterator[list[Any]]:
        """A batch of requests: one generate call per model (adapters share one); per-step events when any of
        them streams, else each request's one result at its end."""
        n = len(items)
        ended: set[int] = set()
        groups: dict[int, list[int]] = {}
        for k, (t, _, _, _) in enumerate(items):
            groups.setdefault(id(t.gen), []).append(k)
        self.running += 1
        try:
            for rows in groups.values():
                gen = items[rows[0]][0].gen
                ids, params = [items[k][1] for k in rows], [items[k][2] for k in rows]
                if not any(items[k][3] for k in rows):
                    results = await asyncio.to_thread(gen.generate, ids, params)
                    out: list[Any] = [StopIteration if k in ended else None for k in range(n)]
                    for k, r in zip(rows, results, strict=True):
                        out[k] = {"delta": r.text, "done": {**asdict(r), "batch_size": n}}
                        ended.add(k)
                    yield out
                    continue
                it = gen.stream(ids, params)
                while True:
                    events = await asyncio.to_thread(next, it, None)
                    if events is None:
                        break
                    out = [StopIteration if k in ended else None for k in range(n)]
                    for row, delta, final in events:
                        k = rows[row]
                        if final is None:
                            out[k] = {"delta": delta}
                        else:
                            out[k] = {"delta": delta, "done": {**asdict(final), "batch_size": n}}
                            ended.add(k)
                    yield out
        finally:
            self.running -= 1
            self._drop_retired()
        yield [StopIteration] * n

    # ------------------------------------------------------------ introspection
    def info(self) -> dict[str, Any]:
        return {"replica": self.replica, "base": self.args.base_name, "adapters": sorted(self.adapters - self.retired),
                "device": str(self.device)}  # fmt: skip

    def check_health(self) -> None:
        if self.shared.model is None:
            raise RuntimeError("no model loaded")


def _replica_id() -> str:
    try:
        return serve.get_replica_context().replica_id.unique_id
    except Exception:  # outside a replica (tests construct it directly)
        return "local"
