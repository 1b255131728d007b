"""Assistant-only labels for three chat templates, exact packing under SDPA and eager, collation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from pipelines.train.data import IGNORE, Tokenized, collate, debug_batch, pack, single, token_losses, tokenize

MULTI = [
    {"role": "system", "content": "You are a Terraform expert."},
    {"role": "user", "content": "plan the module please"},
    {"role": "assistant", "content": "Nothing changes here."},
    {"role": "user", "content": "What will change?"},
    {"role": "assistant", "content": '{"resource_changes": []}'},
]
EOT = {"tiny": "<|eot_id|>", "llama3": "<|eot_id|>", "chatml": "<|im_end|>\n"}


def trained_pieces(tok: object, t: Tokenized) -> list[str]:
    """The decoded runs of trained tokens, in order."""
    runs, cur = [], []
    for i, lab in enumerate(t.labels):
        if lab != IGNORE:
            cur.append(t.input_ids[i])
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    return [tok.decode(r) for r in runs]  # type: ignore[attr-defined]


@pytest.mark.parametrize("family", ["tiny", "llama3", "chatml"])
def test_assistant_only_labels_multi_turn(family: str, request: pytest.FixtureRequest) -> None:
    tok = AutoTokenizer.from_pretrained(str(request.getfixturevalue(f"{family}_tok_dir")))
    t = tokenize(tok, MULTI, 4096)
    # exactly the two assistant answers, each with its end-of-turn marker, and nothing else
    assert trained_pieces(tok, t) == [f"Nothing changes here.{EOT[family]}", f'{{"resource_changes": []}}{EOT[family]}']
    assert t.input_ids == tok.apply_chat_template(MULTI, tokenize=True, return_dict=False)
    assert t.labels[-1] != IGNORE or family == "chatml"
    # the end-of-turn token is the model's EOS: it is in the loss, so the model learns to stop
    assert tok.eos_token_id in [i for i, lab in zip(t.input_ids, t.labels, strict=True) if lab != IGNORE]
    # a weight-0 assistant turn (OpenAI format) is not trained
    t0 = tokenize(tok, [*MULTI[:2], {**MULTI[2], "weight": 0}, *MULTI[3:]], 4096)
    assert trained_pieces(tok, t0) == [f'{{"resource_changes": []}}{EOT[family]}']


def test_truncation_keeps_labels_within_the_cut(tiny_tok_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(str(tiny_tok_dir))
    full = tokenize(tok, MULTI, 4096)
    first_answer_end = full.labels.index(IGNORE, full.labels.index(next(x for x in full.labels if x != IGNORE)))
    cut = tokenize(tok, MULTI, first_answer_end)
    assert cut.input_ids == full.input_ids[:first_answer_end]
    assert trained_pieces(tok, cut) == ["Nothing changes here.<|eot_id|>"]
    assert tokenize(tok, MULTI, 8).n_trainable == 0  # nothing of an answer left: the caller drops it


def test_all_tokens_trains_every_token_but_the_first(tiny_tok_dir: Path) -> None:
    """Pretraining mode: the whole conversation (system, user files, answers) is text to learn, cut the same way."""
    tok = AutoTokenizer.from_pretrained(str(tiny_tok_dir))
    t = tokenize(tok, MULTI, 4096, all_tokens=True)
    assert t.input_ids == tokenize(tok, MULTI, 4096).input_ids
    assert t.labels == [IGNORE, *t.input_ids[1:]]
    assert t.n_trainable == len(t.input_ids) - 1
    cut = tokenize(tok, MULTI, 8, all_tokens=True)
    assert cut.labels == [IGNORE, *t.input_ids[1:8]]


def _two(tok: object) -> tuple[Tokenized, Tokenized]:
    a = tokenize(
        tok, [{"role": "user", "content": "plan it"}, {"role": "assistant", "content": "Nothing changes."}], 512
    )
    b = tokenize(tok, MULTI, 512)
    return a, b


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packing_is_exact(attn: str, tiny_model_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), attn_implementation=attn, dtype=torch.float32)
    model.eval()
    a, b = _two(tok)

    def losses(rows: list[dict[str, list[int]]], pad_to: int | None = None) -> tuple[float, int, torch.Tensor]:
        batch = collate(rows, tok.pad_token_id, pad_to=pad_to)
        with torch.no_grad():
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        s, n, _ = token_losses(logits, batch["labels"])
        return float(s), int(n), logits

    (sa, na, la), (sb, nb, lb) = losses([single(a).as_row()]), losses([single(b).as_row()])
    [p] = list(pack([a, b], 512))
    assert p.seq_lens == [len(a.input_ids), len(b.input_ids)]
    sp, np_, lp = losses([p.as_row()], pad_to=len(p) + 7)  # with padding after the pack too
    assert np_ == na + nb
    assert sp / np_ == pytest.approx((sa + sb) / (na + nb), rel=1e-4)
    # logits of each sequence inside the pack equal its logits alone: nothing crosses the boundary
    assert torch.allclose(lp[0, : len(a.input_ids)], la[0], atol=1e-4)
    assert torch.allclose(lp[0, len(a.input_ids) : len(p)], lb[0], atol=1e-4)
    # and with equal trainable counts the packed loss is the mean of the separate losses
    [pp] = list(pack([a, a], 512))
    s2, n2, _ = losses([pp.as_row()])
    assert s2 / n2 == pytest.approx(((sa / na) + (sa / na)) / 2, rel=1e-4)


def test_position_ids_alone_would_leak_across_sequences(tiny_model_dir: Path) -> None:
    """The control: the same pack with only a causal 2-D mask and reset position ids — what naive packing
    does — changes b's logits, so the block-diagonal mask above is what makes packing exact."""
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), attn_implementation="sdpa").eval()
    a, b = _two(tok)
    [p] = list(pack([a, b], 512))
    batch = collate([p.as_row()], tok.pad_token_id)
    alone = collate([single(b).as_row()], tok.pad_token_id)
    with torch.no_grad():
        naive = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
        ref = model(**{k: v for k, v in alone.items() if k != "labels"}).logits
    assert float((naive[0, len(a.input_ids) :] - ref[0]).abs().max()) > 1e-2


def test_pack_first_fit_and_boundaries() -> None:
    seqs = [Tokenized(list(range(n)), [IGNORE, *range(1, n)]) for n in (6, 5, 4, 3, 2)]
    packs = list(pack(seqs, 10))
    assert [p.seq_lens for p in packs] == [[6, 4], [5, 3, 2]]
    for p in packs:
        starts = [sum(p.seq_lens[:k]) for k in range(len(p.seq_lens))]
        assert [p.position_ids[s] for s in starts] == [0] * len(starts)
        assert [p.labels[s] for s in starts] == [IGNORE] * len(starts)  # never predicted from the previous one
    with pytest.raises(ValueError, match="over max_seq_len=3"):
        list(pack(seqs, 3))


def test_collate_pads_by_position_not_by_id() -> None:
    """Padding is masked by position: a pad id equal to a real token (even EOS) never hides a label."""
    eos = 7
    t = Tokenized([1, 2, eos], [IGNORE, 2, eos])
    batch = collate([single(t).as_row(), single(Tokenized([1, eos], [IGNORE, eos])).as_row()], eos)
    assert batch["labels"].tolist() == [[IGNORE, 2, eos], [IGNORE, eos, IGNORE]]
    assert batch["input_ids"].tolist() == [[1, 2, eos], [1, eos, eos]]
    mask = batch["attention_mask"]
    assert mask.shape == (2, 1, 3, 3) and mask.dtype == torch.float32
    blocked = torch.finfo(torch.float32).min
    assert mask[0, 0].tolist() == [[0, blocked, blocked], [0, 0, blocked], [0, 0, 0]]
    assert mask[1, 0, 2].tolist() == [blocked, blocked, 0]  # the pad attends to itself only


def test_debug_batch_marks_trained_tokens(tiny_tok_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(str(tiny_tok_dir))
    a, b = _two(tok)
    [p] = list(pack([a, b], 512))
    text = debug_batch(tok, collate([p.as_row()], tok.pad_token_id))
    assert text.count("[[") == 3 and "[[Nothing changes.<|eot_id|>]]" in text
    assert f"--- row 0: {len(p)} tokens, {a.n_trainable + b.n_trainable} trained ---" in text


def test_flattened_batch_for_flash_attention_varlen() -> None:
    """GPU path: one row of every sequence, no mask; flash-attention finds the boundaries from position_ids."""
    rows = [single(Tokenized([1, 2, 3], [IGNORE, 2, 3])).as_row(), single(Tokenized([4, 5], [IGNORE, 5])).as_row()]
    batch = collate(rows, 0, flatten=True)
    assert set(batch) == {"input_ids", "labels", "position_ids"}
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert batch["labels"].tolist() == [[IGNORE, 2, 3, IGNORE, 5]]
