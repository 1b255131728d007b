"""Batched generation with per-row settings: the one generation loop of evaluation and Serve.

Every row of a batch has its own token budget, temperature, top-p, seed, stop strings, answer grammar and (on a
PEFT model with several adapters) adapter, and they still share one ``generate`` call: left padding, one KV
cache, one forward pass per step. Per-row behaviour lives in three small pieces handed to ``generate``:

- ``GrammarProcessor`` (``pipelines.evaluate.decoding``): the rows that have a grammar are masked to it;
  ``SortedAddresses`` follows for plan answers (addresses strictly increasing);
- ``RowSampler``: rows with temperature > 0 draw their token from their own seeded ``torch.Generator``
  (temperature, then top-p) and the draw is forced by masking the rest, so ``generate`` itself stays greedy
  and a greedy row is exactly what plain greedy ``generate`` writes;
- ``RowStop`` (a stopping criterion): a row ends at a stop token, at its own budget, or at a stop string; it
  records each row's text as it grows and hands every step's new text to ``on_step`` (how Serve streams).

A row's text never includes its stop token or stop string. ``finish_reason`` is ``stop`` (ended by itself or at
a stop string) or ``length`` (its budget).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

logger = logging.getLogger("tfpredict.generate")
BASE = "__base__"  # PEFT's name for the base model without any adapter, in a mixed-adapter batch


@dataclass(frozen=True)
class Grammar:
    """What an answer must match: ``plan`` (the canonical plan answer; with ``words``, addresses made of those
    words), ``schema`` (a JSON Schema, as canonical JSON text) or ``json`` (any JSON object)."""

    kind: Literal["plan", "schema", "json"]
    words: str | None = None
    schema: str | None = None


@dataclass
class GenParams:
    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    grammar: Grammar | None = None
    adapter: str | None = None  # a PEFT adapter name (BASE: the bare base model); None: the model as loaded


@dataclass
class Generated:
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    finish_reason: Literal["stop", "length"] = "length"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0

    @property
    def finished(self) -> bool:
        return self.finish_reason == "stop"


# one step's events: [(row, new text since the row's last event, the row's result once it has ended else None)]
Events = list[tuple[int, str, "Generated | None"]]
StepCallback = Callable[[Events], None]


class RowSampler:
    """Rows with temperature > 0 sample (seeded per row); greedy rows are left to ``generate``'s argmax."""

    def __init__(self, params: Sequence[GenParams], done: list[bool], device: Any) -> None:
        import torch

        self.params, self.done = params, done
        self.gens = {}
        for i, p in enumerate(params):
            if p.temperature > 0:
                g = torch.Generator(device=device)
                g.manual_seed(p.seed if p.seed is not None else int(torch.seed()))
                self.gens[i] = g

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        for i, g in self.gens.items():
            if self.done[i]:
                continue
            p = self.params[i]
            probs = torch.softmax(scores[i].float() / p.temperature, dim=-1)
            if p.top_p < 1.0:
                sorted_p, order = torch.sort(probs, descending=True)
                keep = torch.cumsum(sorted_p, 0) - sorted_p < p.top_p  # the smallest prefix reaching top_p
                probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
            token = int(torch.multinomial(probs, 1, generator=g))
            chosen = scores[i, token].clone()
            scores[i] = float("-inf")
            scores[i, token] = chosen if torch.isfinite(chosen) else 0.0
        return scores


class RowStop:
    """A stopping criterion with per-row budgets and stop strings; it also tracks each row's text."""

    def __init__(self, tok: Any, params: Sequence[GenParams], *, stops: Sequence[int], done: list[bool],
                 on_step: StepCallback | None, prompt_lens: Sequence[int]) -> None:  # fmt: skip
        self.tok, self.params, self.stops = tok, params, set(stops)
        self.done, self.on_step = done, on_step
        self.results = [Generated(prompt_tokens=n) for n in prompt_lens]
        self.sent = [0] * len(params)  # characters of each row's text already handed to on_step
        self.hold = [max((len(s) for s in p.stop), default=1) - 1 for p in params]  # a stop string may be forming
        self.events: Events = []
        self.t0 = time.perf_counter()

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        self.events: Events = []
        for i, p in enumerate(self.params):
            if self.done[i]:
                continue
            r = self.results[i]
            token = int(input_ids[i, -1])
            if token in self.stops:
                r.completion_tokens = 1  # the stop token counts as generated
                self._end(i, "stop")
            else:
                r.token_ids.append(token)
                r.text = self.tok.decode(r.token_ids, skip_special_tokens=True)
                cut = min((k for k in (r.text.find(s) for s in p.stop) if k >= 0), default=-1)
                if cut >= 0:
                    r.text = r.text[:cut]
                    self._end(i, "stop")
                elif len(r.token_ids) >= p.max_tokens:
                    self._end(i, "length")
                else:
                    self._emit(i, None)
        if self.on_step is not None and self.events:
            self.on_step(self.events)
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)

    def _end(self, i: int, reason: Literal["stop", "length"]) -> None:
        r = self.results[i]
        r.finish_reason = reason
        r.completion_tokens += len(r.token_ids)
        r.latency_s = time.perf_counter() - self.t0
        self.done[i] = True
        self._emit(i, r)

    def _emit(self, i: int, final: Generated | None) -> None:
        text = self.results[i].text
        upto = len(text) if final else max(self.sent[i], len(text) - self.hold[i])
        if text.endswith("\ufffd") and not final:  # a multi-byte character is still incomplete
            upto = min(upto, len(text) - 1)
        if upto > self.sent[i] or final is not None:
            self.events.append((i, text[self.sent[i] : upto], final))
        self.sent[i] = max(self.sent[i], upto)

    def finish(self) -> list[Generated]:
        """Rows still open when ``generate`` returned (a budget ``generate`` enforced first) end at ``length``."""
        self.events = []
        for i in range(len(self.params)):
            if not self.done[i]:
                self._end(i, "length")
        if self.on_step is not None and self.events:
            self.on_step(self.events)
        return self.results


class Generator:
    """One loaded model and its tokenizer; ``generate`` runs a batch of prompts with per-row ``GenParams``."""

    def __init__(self, model: Any, tok: Any, device: Any = None) -> None:
        import torch

        from pipelines.evaluate.decoding import stop_ids

        self.model, self.tok = model, tok
        self.device = device or torch.device("cpu")
        self.stops = stop_ids(tok)
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else self.stops[0]
        self.vocab = int(model.config.vocab_size)
        self.lock = threading.Lock()  # one generate at a time on this model

    def render(self, messages: Sequence[Any]) -> list[int]:
        """The prompt's token ids: the conversation with the generation prompt, rendered as training renders it."""
        from pipelines.dataset.tokens import render_prompt

        return render_prompt(self.tok, messages)

    def processors(self, params: Sequence[GenParams], width: int, done: list[bool]) -> list[Any]:
        import json

        from pipelines.evaluate.decoding import GrammarProcessor, SortedAddresses, plan_grammar, schema_grammar

        grammars: dict[int, Any] = {}
        for i, p in enumerate(params):
            g = p.grammar
            if g is None:
                continue
            if g.kind == "plan":
                grammars[i] = plan_grammar(self.tok, self.vocab, g.words)
            else:
                grammars[i] = schema_grammar(self.tok, self.vocab, json.loads(g.schema) if g.schema else None)
        procs: list[Any] = [GrammarProcessor(grammars, len(params), done)] if grammars else []
        if any(p.grammar is not None and p.grammar.kind == "plan" for p in params):
            procs.append(SortedAddresses(self.tok, self.vocab, width, rows=[
                i for i, p in enumerate(params) if p.grammar is not None and p.grammar.kind == "plan"]))  # fmt: skip
        if any(p.temperature > 0 for p in params):
            procs.append(RowSampler(params, done, self.device))
        return procs

    def generate(self, prompts: Sequence[Sequence[int]], params: Sequence[GenParams],
                 on_step: StepCallback | None = None) -> list[Generated]:  # fmt: skip
        """Generate for every prompt (token ids) with its own params; ``on_step`` sees each row's new text."""
        import torch
        from transformers import StoppingCriteriaList

        if len(prompts) != len(params):
            raise ValueError(f"{len(prompts)} prompts but {len(params)} params")
        width = max(len(x) for x in prompts)
        input_ids = torch.tensor([[self.pad] * (width - len(x)) + list(x) for x in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in prompts], device=self.device)
        done = [False] * len(prompts)
        lens = [len(x) for x in prompts]
        stop = RowStop(self.tok, params, stops=self.stops, done=done, on_step=on_step, prompt_lens=lens)
        kwargs: dict[str, Any] = {}
        adapters = [p.adapter for p in params]
        if hasattr(self.model, "peft_config"):
            if any(a is not None for a in adapters):  # a PEFT mixed-adapter batch
                kwargs["adapter_names"] = [self.model.active_adapter if a is None else a for a in adapters]
        elif any(a not in (None, BASE) for a in adapters):
            raise ValueError(f"adapters {sorted({a for a in adapters if a})} asked of a model without adapters")
        with self.lock, torch.no_grad():
            self.model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=max(p.max_tokens for p in params),
                do_sample=False,
                eos_token_id=self.stops,
                pad_token_id=self.pad,
                logits_processor=self.processors(params, width, done),
                stopping_criteria=StoppingCriteriaList([stop]),
                **kwargs,
            )
        return stop.finish()

    def stream(self, prompts: Sequence[Sequence[int]], params: Sequence[GenParams]) -> Iterator[Events]:
        """``generate`` on a thread, yielding each step's events as they happen (the last ones end every row)."""
        import queue

        q: queue.Queue[tuple[str, Any]] = queue.Queue()

        def run() -> None:
            try:
                self.generate(prompts, params, on_step=lambda ev: q.put(("step", ev)))
                q.put(("end", None))
            except BaseException as e:  # handed to the consumer, which raises it
                q.put(("error", e))

        threading.Thread(target=run, name="generate", daemon=True).start()
        while True:
            kind, payload = q.get()
            if kind == "step":
                yield payload
            elif kind == "error":
                raise payload
            else:
                return
