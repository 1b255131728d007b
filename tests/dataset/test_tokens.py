"""Tokenizer concerns: the embedded tiny tokenizer and assistant-only loss spans by prefix rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.dataset.tokens import build_tiny_tokenizer, count_tokens, load_tokenizer

TEXTS = ['resource "null_resource" "a" {\n  count = 2\n}\n', "user assistant system answer question"] * 30


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_tokenizer(TEXTS, tmp_path_factory.mktemp("tok"), vocab_size=320)


def test_tiny_tokenizer_is_deterministic_with_distinct_pad_and_eos(tok_dir: Path, tmp_path: Path) -> None:
    again = build_tiny_tokenizer(TEXTS, tmp_path / "again", vocab_size=320)
    assert (tok_dir / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()
    tok = load_tokenizer(tok_dir)
    assert tok.pad_token_id != tok.eos_token_id and tok.eos_token == "<|eot_id|>"
    assert tok.decode(tok.encode("ünïcode ✓", add_special_tokens=False)) == "ünïcode ✓"  # byte-level: no unknowns


def test_spans_cover_each_trainable_assistant_turn_with_its_end_of_turn(tok_dir: Path) -> None:
    tok = load_tokenizer(tok_dir)
    msgs = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "question one"},
        {"role": "assistant", "content": "answer one", "weight": 0},
        {"role": "user", "content": "question two"},
        {"role": "assistant", "content": "answer two"},
    ]
    count = count_tokens(tok, msgs)
    ids = tok.apply_chat_template(msgs, tokenize=True, return_dict=False)
    assert count.n_tokens == len(ids)
    assert [tok.decode(ids[s:e]) for s, e in count.spans] == ["answer two<|eot_id|>"]
    msgs[2].pop("weight")
    count = count_tokens(tok, msgs)
    assert [tok.decode(ids[s:e]) for s, e in count.spans] == ["answer one<|eot_id|>", "answer two<|eot_id|>"]
    first_end = count.spans[0][1]
    assert count.trainable_within(first_end) == count.spans[0][1] - count.spans[0][0]
    assert count.trainable_within(count.spans[0][0]) == 0
    assert count.trainable_within(10**6) == count.n_trainable


def test_a_tokenizer_without_chat_template_is_refused_with_the_fix(tmp_path: Path, tok_dir: Path) -> None:
    tok = load_tokenizer(tok_dir)
    tok.chat_template = None
    tok.save_pretrained(str(tmp_path))
    cfg = tmp_path / "chat_template.jinja"
    cfg.unlink(missing_ok=True)
    with pytest.raises(ValueError, match="has no chat template"):
        load_tokenizer(tmp_path)
