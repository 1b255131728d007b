"""The shared generation loop (``pipelines.evaluate.generate``) on a random tiny Llama: per-row settings in one
batch must give each row exactly what that row alone, with plain ``generate``, would give."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from pipelines.dataset.tokens import load_tokenizer, render_prompt, render_with_spans
from pipelines.evaluate.decoding import PLAN_PREFIX, load_schema, sorted_properties, stop_ids
from pipelines.evaluate.generate import BASE, Generator, GenParams, Grammar
from pipelines.evaluate.metrics import parse_prediction

PROMPTS = [
    [{"role": "user", "content": 'resource "terraform_data" "web" {\n  input = var.name\n}\nWhat will change?'}],
    [{"role": "system", "content": "You are a Terraform expert."}, {"role": "user", "content": "plan the module"}],
    [{"role": "user", "content": "Nothing changes here."}],
]


@pytest.fixture(scope="module")
def gen(tiny_model_dir: Path) -> Generator:
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval()
    return Generator(model, load_tokenizer(tiny_model_dir))


def _alone(gen: Generator, messages: list[dict[str, str]], n: int) -> list[int]:
    """Plain greedy ``generate`` on one prompt: the new tokens up to (not including) a stop token."""
    ids = torch.tensor([gen.render(messages)])
    with torch.no_grad():
        out = gen.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                                 do_sample=False, eos_token_id=gen.stops, pad_token_id=gen.pad)  # fmt: skip
    new = out[0, ids.shape[1] :].tolist()
    return new[: next((k for k, t in enumerate(new) if t in gen.stops), len(new))]


def test_greedy_rows_with_their_own_budgets_match_each_prompt_alone(gen: Generator) -> None:
    budgets = [12, 3, 7]
    out = gen.generate([gen.render(p) for p in PROMPTS], [GenParams(max_tokens=b) for b in budgets])
    for p, b, g in zip(PROMPTS, budgets, out, strict=True):
        alone = _alone(gen, p, b)
        assert g.token_ids == alone
        assert g.text == gen.tok.decode(alone, skip_special_tokens=True)
        assert g.finish_reason == ("stop" if len(alone) < b else "length")
        assert g.completion_tokens == len(alone) + (g.finish_reason == "stop")
        assert g.prompt_tokens == len(gen.render(p))


def test_a_stop_string_ends_the_row_before_it(gen: Generator) -> None:
    full = gen.generate([gen.render(PROMPTS[0])], [GenParams(max_tokens=20)])[0]
    assert len(full.text) > 6, full.text
    stop = full.text[4:6]
    first = full.text.find(stop)
    got = gen.generate([gen.render(PROMPTS[0])], [GenParams(max_tokens=20, stop=("\x00never", stop))])[0]
    assert (got.text, got.finish_reason) == (full.text[:first], "stop")


def test_a_seed_fixes_a_sampled_row_and_leaves_its_greedy_neighbours_alone(gen: Generator) -> None:
    ids = [gen.render(p) for p in PROMPTS[:2]]
    greedy = gen.generate(ids[1:], [GenParams(max_tokens=10)])[0]

    def sampled(seed: int) -> str:
        out = gen.generate(ids, [GenParams(max_tokens=10, temperature=1.0, seed=seed), GenParams(max_tokens=10)])
        assert out[1].token_ids == greedy.token_ids  # the greedy row beside a sampled one
        return out[0].text

    assert sampled(1) == sampled(1)
    assert len({sampled(s) for s in range(2, 6)}) > 1  # 4 seeds over a 600-token vocabulary: not all the same
    # top_p that keeps only the most likely token is greedy
    narrow = gen.generate(ids[1:], [GenParams(max_tokens=10, temperature=1.0, top_p=1e-9, seed=3)])[0]
    assert narrow.token_ids == greedy.token_ids


def test_streamed_events_add_up_to_each_rows_result(gen: Generator) -> None:
    params = [GenParams(max_tokens=9), GenParams(max_tokens=4, stop=("e",)), GenParams(max_tokens=6)]
    ids = [gen.render(p) for p in PROMPTS]
    texts, ends = ["", "", ""], [0, 0, 0]
    finals: dict[int, object] = {}
    for events in gen.stream(ids, params):
        for i, delta, final in events:
            assert ends[i] == 0, "an event after the row ended"
            texts[i] += delta
            if final is not None:
                ends[i] += 1
                finals[i] = final
    assert ends == [1, 1, 1]
    direct = gen.generate(ids, params)
    assert texts == [g.text for g in direct] == [finals[i].text for i in range(3)]  # type: ignore[attr-defined]


def test_constrained_and_free_rows_share_a_batch(gen: Generator) -> None:
    """A constrained row that stops at its budget while others go on (its matcher must take no padding), a
    schema row, a free row: each as it would be alone."""
    schema = json.dumps(sorted_properties(load_schema("terminal_report")))
    params = [
        GenParams(max_tokens=5, grammar=Grammar("plan")),  # stops first, mid-answer
        GenParams(max_tokens=40, grammar=Grammar("schema", schema=schema)),
        GenParams(max_tokens=40),
    ]
    ids = [gen.render(p) for p in PROMPTS]
    batch = gen.generate(ids, params)
    for i, p in enumerate(params):
        assert batch[i].token_ids == gen.generate([ids[i]], [p])[0].token_ids
    head = batch[0].text
    assert batch[0].finish_reason == "length"
    assert head and (PLAN_PREFIX.startswith(head) or head.startswith(PLAN_PREFIX))
    json_rows = gen.generate(ids, [GenParams(max_tokens=200, grammar=Grammar("json"))] * 3)
    for g in json_rows:
        if g.finished:
            assert isinstance(json.loads(g.text), dict)


def test_a_finished_plan_row_parses(gen: Generator) -> None:
    words = PROMPTS[0][0]["content"]
    out = gen.generate([gen.render(PROMPTS[0])] * 2, [GenParams(max_tokens=200, grammar=Grammar("plan", words=w))
                                                       for w in (words, None)])  # fmt: skip
    for g in out:
        if g.finished:
            assert parse_prediction(g.text)[1] is None, g.text


def test_serving_renders_the_ids_training_trains_on(gen: Generator) -> None:
    """The prompt the generator continues is exactly the training sequence up to the assistant answer."""
    for p in PROMPTS:
        conv = [*p, {"role": "assistant", "content": '{"resource_changes":[]}'}]
        full, spans = render_with_spans(gen.tok, conv)
        assert render_prompt(gen.tok, p) == gen.render(p) == full[: spans[-1][0]]


def test_two_adapters_in_one_batch_answer_as_each_does_alone(gen: Generator, tiny_model_dir: Path,
                                                             tmp_path: Path) -> None:  # fmt: skip
    """PEFT mixed-adapter batches: rows on adapter a, adapter b and the bare base share one generate call."""
    from peft import LoraConfig, PeftModel, get_peft_model

    dirs = {}
    for k, name in enumerate(("a", "b")):
        torch.manual_seed(k)
        base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
        cfg = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        get_peft_model(base, cfg).save_pretrained(str(tmp_path / name))
        dirs[name] = tmp_path / name
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), str(dirs["a"]),
                                      adapter_name="a")  # fmt: skip
    model.load_adapter(str(dirs["b"]), adapter_name="b")
    multi = Generator(model.eval(), gen.tok)
    ids = [gen.render(PROMPTS[0])] * 3
    out = multi.generate(ids, [GenParams(max_tokens=12, adapter=a) for a in ("a", "b", BASE)])
    for name, g in zip(("a", "b"), out, strict=False):
        alone = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), str(dirs[name]))
        single = Generator(alone.eval(), gen.tok).generate(ids[:1], [GenParams(max_tokens=12)])[0]
        assert g.token_ids == single.token_ids
    assert out[2].token_ids == gen.generate(ids[:1], [GenParams(max_tokens=12)])[0].token_ids
    assert len({tuple(g.token_ids) for g in out}) == 3, "the adapters should write different answers"
    # the model as loaded (None) is its active adapter; a model without adapters refuses an adapter name
    assert multi.generate(ids[:1], [GenParams(max_tokens=12)])[0].token_ids == out[0].token_ids
    with pytest.raises(ValueError, match="without adapters"):
        gen.generate(ids[:1], [GenParams(max_tokens=2, adapter="a")])
    assert gen.generate(ids[:1], [GenParams(max_tokens=12, adapter=BASE)])[0].token_ids == out[2].token_ids
    assert stop_ids(gen.tok) == gen.stops
