"""Constrained decoding with xgrammar on an *untrained* tiny Llama (the hardest case: it has no idea of JSON):
every answer that ends by itself parses and validates against the plan-prediction schema; an answer that runs
into the token budget is reported as cut. Without the constraint the same model writes no valid answer."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from pipelines.evaluate.decoding import finished, json_schema_processor, load_schema, stop_ids
from pipelines.evaluate.metrics import parse_prediction

PROMPTS = [
    [{"role": "user", "content": f'resource "terraform_data" "web{i}" {{\n  input = "{i}"\n}}\nWhat will change?'}]
    for i in range(6)
]


def _generate(model: object, tok: object, constrained: bool, budget: int) -> list[tuple[str, bool]]:
    out = []
    schema = load_schema("plan_prediction")
    stops = stop_ids(tok)
    for msgs in PROMPTS:
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)  # type: ignore[attr-defined]
        procs = [json_schema_processor(tok, schema, model.config.vocab_size)] if constrained else []  # type: ignore[attr-defined]
        with torch.no_grad():
            gen = model.generate(  # type: ignore[attr-defined]
                **ids, max_new_tokens=budget, do_sample=False, logits_processor=procs, eos_token_id=stops,
                pad_token_id=tok.pad_token_id,  # type: ignore[attr-defined]
            )[0, ids["input_ids"].size(1) :].tolist()  # fmt: skip
        done = finished(gen, stops)
        text = tok.decode([t for t in gen if t not in stops], skip_special_tokens=False)  # type: ignore[attr-defined]
        out.append((text, done))
    return out


def test_every_finished_answer_is_schema_valid_and_the_rest_are_cut(tiny_model_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    answers = _generate(model, tok, True, budget=160)
    for text, done in answers:
        pred, err = parse_prediction(text)
        if done:
            assert err is None, (text, err)  # ended by itself: valid by construction
            assert pred is not None and text == json.dumps(
                {"resource_changes": pred}, sort_keys=True, separators=(",", ":")
            )
        else:
            assert err is not None  # cut at the budget: a prefix of a valid answer, never itself complete
            assert text.startswith('{"resource_changes":[')  # the canonical form of training answers
    # without the constraint the random model writes no valid answer at all
    plain = _generate(model, tok, False, budget=40)
    assert all(parse_prediction(text)[1] is not None for text, _ in plain)


def test_the_constraint_allows_a_canonical_answer_and_the_stop_only_at_its_end(tiny_model_dir: Path) -> None:
    """Teacher-forced through the processor: every token of a canonical answer is allowed, the stop token is
    masked until the document is complete, and after the closing brace nothing but a stop token is allowed."""
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    vocab = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).config.vocab_size
    answer = json.dumps(
        {"resource_changes": [{"actions": ["create"], "address": "module.m.terraform_data.web[0]"},
                              {"actions": ["delete", "create"], "address": "terraform_data.db"}]},
        sort_keys=True, separators=(",", ":"),
    )  # fmt: skip
    ids = tok(answer, add_special_tokens=False).input_ids
    assert tok.decode(ids) == answer
    stops = stop_ids(tok)
    proc = json_schema_processor(tok, load_schema("plan_prediction"), vocab)
    prompt = [tok.bos_token_id or 0]
    for i in range(len(ids) + 1):
        scores = proc(torch.tensor([prompt + ids[:i]]), torch.zeros(1, vocab))
        allowed = torch.isfinite(scores[0])
        if i < len(ids):
            assert allowed[ids[i]], (i, tok.decode(ids[: i + 1]))
            assert not any(allowed[s] for s in stops), f"a stop is allowed after {tok.decode(ids[:i])!r}"
        else:
            assert sorted(allowed.nonzero().flatten().tolist()) == stops


def test_an_answer_at_the_budget_is_cut_never_valid(tiny_model_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    cut = _generate(model, tok, True, budget=3)
    assert all(not done for _, done in cut)
    assert all(parse_prediction(text)[1] is not None for text, _ in cut)
