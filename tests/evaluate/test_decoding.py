"""Constrained decoding with xgrammar on an *untrained* tiny Llama (the hardest case: it has no idea of JSON):
every answer that ends by itself parses and validates against the plan-prediction schema; an answer that runs
into the token budget is reported as cut. Without the constraint the same model writes no valid answer."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from pipelines.evaluate.decoding import (
    PLAN_GRAMMAR,
    close_at_budget,
    finished,
    json_schema_processor,
    load_schema,
    plan_processor,
    stop_ids,
)
from pipelines.evaluate.metrics import answer_of, parse_prediction

PROMPTS = [
    [{"role": "user", "content": f'resource "terraform_data" "web{i}" {{\n  input = "{i}"\n}}\nWhat will change?'}]
    for i in range(6)
]


def _generate(model: object, tok: object, constrained: bool, budget: int) -> list[tuple[str, bool]]:
    out = []
    stops = stop_ids(tok)
    for msgs in PROMPTS:
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)  # type: ignore[attr-defined]
        procs = [plan_processor(tok, model.config.vocab_size)] if constrained else []  # type: ignore[attr-defined]
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
                              {"actions": ["update"], "address": 'module.q["emails"].null_resource.q["a b.c"]'},
                              {"actions": ["delete", "create"], "address": "terraform_data.db"}]},
        sort_keys=True, separators=(",", ":"),
    )  # fmt: skip
    ids = tok(answer, add_special_tokens=False).input_ids
    assert tok.decode(ids) == answer
    stops = stop_ids(tok)
    proc = plan_processor(tok, vocab)
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


def test_closing_keeps_every_complete_change_and_ignores_brackets_inside_strings() -> None:
    a = '{"actions":["create"],"address":"aws_x.y[\\"}{[\\\\\\"\\"]"}'  # quotes, braces, a [ and \\ in the key
    b = '{"actions":["delete","create"],"address":"module.m.aws_x.z"}'
    full = f'{{"resource_changes":[{a},{b}]}}'
    assert parse_prediction(full)[1] is None
    for cut in range(len('{"resource_changes":['), len(full)):
        closed = close_at_budget(full[:cut])
        assert closed is not None and parse_prediction(closed)[1] is None, full[:cut]
        kept = [c["address"] for c in parse_prediction(closed)[0] or []]
        done = [x for x, end in ((a, len(f'{{"resource_changes":[{a}')), (b, len(full) - 2)) if cut >= end]
        assert len(kept) == len(done), (full[:cut], closed)
    assert close_at_budget('{"resource_chan') is None  # cut inside the prefix: stays cut
    assert close_at_budget('[{"resource_changes":[') is None  # not the decoder's canonical form
    assert answer_of(full[:-5], finished=False, constrained=False) == (full[:-5], False)  # free decoding: never


def test_with_closing_every_constrained_answer_of_the_untrained_model_is_valid(tiny_model_dir: Path) -> None:
    """Acceptance 3: the random base loops inside strings until the budget; closing makes every answer valid."""
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    answers = _generate(model, tok, True, budget=60)
    n_closed = 0
    for text, done in answers:
        answer, closed = answer_of(text, done, constrained=True)
        assert parse_prediction(answer)[1] is None, (text, answer)
        assert closed == (not done)
        if closed:
            n_closed += 1
            assert text.startswith(answer[:-2])  # the answer's own prefix, then ]}
    assert n_closed >= 1  # the budget did bite (so closing was exercised)


def _addresses(rng: random.Random, n: int) -> list[str]:
    """Addresses as a collected repository may have them, and near misses: module paths, numeric and string
    instance keys with quotes, backslashes, brackets, dots, spaces, newlines, unicode; bad identifiers."""
    ident = ["a", "aws_s3_bucket", "_x", "web-1", "n0", "1bad", "", "x y", "module"]
    keys = ["0", "12", '"a"', '"a b.c"', '"q\\"uote"', '"back\\\\slash"', '"br[ack"', '"br]ack"', '"é"',
            '"line\nbreak"', '""', "", "*"]  # fmt: skip
    out = []
    for _ in range(n):
        parts = []
        for _m in range(rng.choice([0, 0, 1, 2])):
            k = rng.choice(keys + [None] * 6)
            parts.append(f"module.{rng.choice(ident)}" + (f"[{k}]" if k is not None else ""))
        k = rng.choice(keys + [None] * 6)
        res = f"{rng.choice(ident)}.{rng.choice(ident)}" if rng.random() > 0.05 else rng.choice(ident)
        parts.append(res + (f"[{k}]" if k is not None else ""))
        out.append(".".join(parts).replace("\\n", "\n"))
    return out


def test_the_plan_grammar_admits_exactly_the_answers_the_schema_validates(tiny_model_dir: Path) -> None:
    """PLAN_GRAMMAR is written out by hand: checked against the schema (jsonschema, the validator every answer
    meets) on 600 generated addresses, valid and not, each as the canonical one-change answer."""
    import xgrammar as xgr

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    vocab = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).config.vocab_size
    info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=vocab)
    grammar = xgr.GrammarCompiler(info).compile_grammar(PLAN_GRAMMAR)
    seen = {True: 0, False: 0}
    for addr in _addresses(random.Random(0), 600):
        for actions in (["create"], ["delete", "create"]):
            text = json.dumps({"resource_changes": [{"actions": actions, "address": addr}]}, sort_keys=True,
                              separators=(",", ":"))  # fmt: skip
            m = xgr.GrammarMatcher(grammar)
            admitted = m.accept_string(text) and m.is_completed()
            valid = parse_prediction(text)[1] is None
            assert admitted == valid, (addr, admitted, valid)
            seen[valid] += 1
    assert seen[True] > 300 and seen[False] > 100  # both sides well exercised
    for bad in ('{"resource_changes":[{"actions":["read"],"address":"a.b"}]}',  # not a schema action
                '{"resource_changes":[{"address":"a.b","actions":["create"]}]}',  # keys not sorted
                '{"resource_changes": []}'):  # whitespace  # fmt: skip
        m = xgr.GrammarMatcher(grammar)
        assert not (m.accept_string(bad) and m.is_completed()), bad


def test_the_terminal_report_schema_constrains_too(tiny_model_dir: Path) -> None:
    """Schemas other than the plan's compile directly: from random weights, an answer that finished validates
    against the terminal-report schema and one at the budget is a prefix the grammar still accepts."""
    import jsonschema
    import xgrammar as xgr

    from pipelines.evaluate.decoding import _compiled, sorted_properties

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    schema = load_schema("terminal_report")
    stops = stop_ids(tok)
    vocab = model.config.vocab_size
    outcomes = []
    for msgs in PROMPTS[:3]:
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        proc = json_schema_processor(tok, schema, vocab)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=300, do_sample=False, logits_processor=[proc],
                                 eos_token_id=stops, pad_token_id=tok.pad_token_id)  # fmt: skip
        gen = out[0, ids["input_ids"].size(1) :].tolist()
        text = tok.decode([t for t in gen if t not in stops])
        if finished(gen, stops):
            jsonschema.validate(json.loads(text), schema)
            outcomes.append("valid")
        else:
            compiled = _compiled(tok, vocab, tuple(stops), json.dumps(sorted_properties(schema)))
            assert xgr.GrammarMatcher(compiled).accept_string(text), text[-80:]
            outcomes.append("prefix")
    print("terminal-report answers:", outcomes)
    assert len(outcomes) == 3


def _matcher(tok: object, vocab: int, prompt: str) -> object:
    import xgrammar as xgr

    from pipelines.evaluate.decoding import _compiled_grammar, prompt_plan_grammar

    return xgr.GrammarMatcher(_compiled_grammar(tok, vocab, tuple(stop_ids(tok)), prompt_plan_grammar(prompt)))


def _one(addr: str, actions: tuple[str, ...] = ("create",)) -> str:
    return json.dumps({"resource_changes": [{"actions": list(actions), "address": addr}]}, sort_keys=True,
                      separators=(",", ":"))  # fmt: skip


PROMPT = """# file: main.tf
module "queue" {
  source   = "./modules/queue"
  for_each = toset(["emails", "a | b ::= c"])
}
resource "null_resource" "app" {
  count = 2
}
resource "terraform_data" "map" {
  for_each = { web = 1, api = 2 }
}
# changes since the applied commit
-resource "null_resource" "gone" {}
"""


def test_prompt_addresses_admit_what_the_code_declares_and_nothing_it_does_not(tiny_model_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    vocab = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).config.vocab_size

    def admitted(addr: str) -> bool:
        m = _matcher(tok, vocab, PROMPT)
        return bool(m.accept_string(_one(addr)) and m.is_completed())  # type: ignore[attr-defined]

    for ok in ["null_resource.app[0]", "null_resource.app[12]", 'module.queue["emails"].null_resource.queue',
               'terraform_data.map["web"]',  # a bare map key is a word of the prompt
               'module.queue["a | b ::= c"].terraform_data.map',  # grammar syntax inside a key is just text
               "null_resource.gone",  # deleted: only the diff still names it
               "module.queue.module.queue.module.queue.module.queue.null_resource.app"]:  # 4 levels  # fmt: skip
        assert admitted(ok), ok
    for bad in ["null_resource.application",  # a longer identifier: no looping inside a word
                "null_resource.appapp", "aws_s3_bucket.app",  # words the prompt lacks
                'null_resource.app["nope"]', 'null_resource.app["emails ', "null_resource.app[x]",
                "null_resource.app[123456]",
                "module.queue.module.queue.module.queue.module.queue.module.queue.null_resource.app",  # 5 deep
                "null_resource"]:  # fmt: skip
        assert not admitted(bad), bad
    # the whole dataset's truth stays writable: every plan answer of the evaluate tests' corpus is checked in
    # tests/ray_jobs/test_evaluate.py; here, a quote or backslash in the prompt cannot break the grammar
    m = _matcher(tok, vocab, PROMPT + 'x = "q\\"uote" "back\\\\slash" "\\u00e9" ""\n')
    assert m.accept_string(_one("null_resource.app"))  # type: ignore[attr-defined]


def test_the_untrained_model_writes_only_prompt_words_in_addresses(tiny_model_dir: Path) -> None:
    """The random base under the prompt grammar: every answer is valid (closed at the budget when cut) and every
    identifier and key of every address it writes appears in its prompt."""
    import re

    from pipelines.evaluate.decoding import _WORD

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    stops = stop_ids(tok)
    n_changes = 0
    for i in range(4):
        prompt = PROMPT.replace("app", f"app{i}")
        msgs = [{"role": "user", "content": prompt}]
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        proc = plan_processor(tok, model.config.vocab_size, 1, prompts=[prompt])
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=80, do_sample=False, logits_processor=[proc],
                                 eos_token_id=stops, pad_token_id=tok.pad_token_id)  # fmt: skip
        gen = out[0, ids["input_ids"].size(1) :].tolist()
        text = tok.decode([t for t in gen if t not in stops])
        answer, _ = answer_of(text, finished(gen, stops), constrained=True)
        changes, err = parse_prediction(answer)
        assert err is None, (text, err)
        words = set(_WORD.findall(prompt)) | set(re.findall(r'"([^"]*)"', prompt))
        for c in changes or []:
            n_changes += 1
            parts = re.split(r'[.\[\]"]+', c["address"])
            assert all(p in words or p.isdigit() for p in parts if p), (c["address"], prompt)
    assert n_changes > 0  # it wrote addresses, so the check above bit


def test_sorted_addresses_by_hand() -> None:
    from pipelines.evaluate.decoding import address_state, can_exceed

    head = '{"resource_changes":[{"actions":["create"],"address":"b.x[\\"k\\"]"},{"actions":["create"],"address":"'
    assert address_state('{"resource_changes":[{"actions":["create"],"address":"a.b') is None  # no previous change
    assert address_state(head + 'b.y"}') is None  # the address closed
    assert address_state(head + "b.") == ('b.x["k"]', "b.")  # the previous one unescaped
    prev = 'b.x["k"]'
    assert can_exceed("b.", prev) and can_exceed("b.x[", prev) and can_exceed("c", prev)
    assert not can_exceed("a", prev) and not can_exceed("b.w", prev)
    assert not can_exceed('b.x[\\"k\\"]"', prev)  # the same address again, closing
    assert can_exceed('b.x[\\"k\\"].c"', prev) and can_exceed('b.x[\\"l', prev)
    assert not can_exceed('b.x[\\"a', prev)
    assert can_exceed("b.x[\\", prev)  # a half-written escape: undecided, kept
    # raw order, not escaped order: '"' (0x22) sorts before '0' though '\\' (0x5c) sorts after it
    assert not can_exceed('b.x[0]"', "b.x[1]") and can_exceed('b.x[0]"', 'b.x["k"]')


def test_with_sorted_addresses_the_untrained_models_changes_come_in_order_without_repeats(
    tiny_model_dir: Path,
) -> None:
    """The random base under the prompt grammar and SortedAddresses, through the HF predictor: every answer is
    valid and its addresses strictly increase (the canonical order). Not a guarantee in general: where the model
    has copied the previous address up to a point from which no greater one can be finished, the grammar's
    choice stands (see decoding.SortedAddresses)."""
    from pipelines.evaluate.predict import HF, PredictorConfig

    prompts = [[{"role": "user", "content": PROMPT.replace("app", f"app{i}")}] for i in range(4)]
    pc = PredictorConfig(name="b", kind="hf", model=str(tiny_model_dir), constrained=True, max_new_tokens=120)
    n_changes = 0
    for p in HF(pc).predict(prompts):
        answer, _ = answer_of(p.text, p.finished, constrained=True)
        changes, err = parse_prediction(answer)
        assert err is None, p.text
        addrs = [c["address"] for c in changes or []]
        assert addrs == sorted(set(addrs)), p.text
        n_changes += len(addrs)
    assert n_changes >= 4  # it did write changes, several in some answer
