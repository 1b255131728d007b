"""Training examples as tensors: tokenized with the model's chat template, assistant-only labels, packing.

Tokenization reuses the dataset stage's loss spans (``pipelines.dataset.tokens.render_with_spans``): one
implementation of assistant-only masks. Labels are ``-100`` outside the spans; the end-of-turn token is inside.

Packing concatenates sequences up to ``max_seq_len`` and keeps them apart exactly: ``position_ids`` restart
at 0 for every sequence, and the attention mask is an additive 4-D float mask (0 where allowed, the dtype's
minimum elsewhere) that is causal *and* block-diagonal. Position ids alone do not isolate sequences under
SDPA (measured: 0.47 max logit difference); this mask is exact under SDPA and eager. With flash-attention 2
on GPU the batch is flattened instead and the varlen kernel finds the boundaries from ``position_ids``.
The first token of every sequence never carries a label, so no sequence is predicted from the one before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from pipelines.dataset.tokens import render_with_spans

IGNORE = -100


@dataclass
class Tokenized:
    input_ids: list[int]
    labels: list[int]

    @property
    def n_trainable(self) -> int:
        return sum(1 for t in self.labels[1:] if t != IGNORE)


def tokenize(
    tok: Any, messages: Sequence[Mapping[str, Any]], max_seq_len: int, *, all_tokens: bool = False
) -> Tokenized:
    """Ids and labels of one conversation, cut to ``max_seq_len`` tokens (the caller drops ``n_trainable == 0``).
    Labels cover the assistant spans, or every token with ``all_tokens`` (causal-LM pretraining on the text)."""
    ids, spans = render_with_spans(tok, messages)
    if all_tokens:
        labels = list(ids)
    else:
        labels = [IGNORE] * len(ids)
        for s, e in spans:
            labels[s:e] = ids[s:e]
    ids, labels = ids[:max_seq_len], labels[:max_seq_len]
    if labels:
        labels[0] = IGNORE
    return Tokenized(ids, labels)


@dataclass
class Pack:
    """Sequences laid end to end in one row of at most ``max_seq_len`` tokens."""

    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    position_ids: list[int] = field(default_factory=list)
    seq_lens: list[int] = field(default_factory=list)

    def add(self, t: Tokenized) -> None:
        self.input_ids += t.input_ids
        self.labels += [IGNORE, *t.labels[1:]]  # never predict a sequence's first token from the previous one
        self.position_ids += list(range(len(t.input_ids)))
        self.seq_lens.append(len(t.input_ids))

    def __len__(self) -> int:
        return len(self.input_ids)

    def as_row(self) -> dict[str, list[int]]:
        return {
            "input_ids": self.input_ids,
            "labels": self.labels,
            "position_ids": self.position_ids,
            "seq_lens": self.seq_lens,
        }


def pack(seqs: Iterable[Tokenized], max_seq_len: int, max_open: int = 8) -> Iterator[Pack]:
    """First-fit over at most ``max_open`` open packs, in input order (deterministic): each sequence goes into
    the first open pack with room, else a new one; a full pack, or the fullest when too many are open, is
    emitted at once, the rest when the input ends."""
    open_packs: list[Pack] = []
    for s in seqs:
        if len(s.input_ids) > max_seq_len:
            raise ValueError(f"a sequence of {len(s.input_ids)} tokens is over max_seq_len={max_seq_len}")
        target = next((p for p in open_packs if len(p) + len(s.input_ids) <= max_seq_len), None)
        if target is None:
            target = Pack()
            open_packs.append(target)
        target.add(s)
        if len(target) == max_seq_len:
            open_packs.remove(target)
            yield target
        elif len(open_packs) > max_open:
            fullest = max(open_packs, key=len)
            open_packs.remove(fullest)
            yield fullest
    yield from open_packs


def single(t: Tokenized) -> Pack:
    """One sequence alone in its row (no packing: the pad-to-longest / pad-to-max recipes)."""
    p = Pack()
    p.add(t)
    return p


def block_causal_mask(seq_lens_per_row: Sequence[Sequence[int]], length: int, dtype: torch.dtype) -> torch.Tensor:
    """[B, 1, L, L] additive mask: 0 where query i may attend key j (same sequence, j <= i), min elsewhere.
    Padding positions form one more block of their own (they carry no label)."""
    b = len(seq_lens_per_row)
    seg = torch.full((b, length), -1, dtype=torch.long)
    for r, lens in enumerate(seq_lens_per_row):
        start = 0
        for k, n in enumerate(lens):
            seg[r, start : start + n] = k
            start += n
        seg[r, start:] = len(lens)
    same = seg[:, :, None] == seg[:, None, :]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    allowed = same & causal
    mask = torch.zeros(b, 1, length, length, dtype=dtype)
    mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
    return mask


def collate(
    rows: Sequence[Mapping[str, Sequence[int]]],
    pad_id: int,
    *,
    dtype: torch.dtype = torch.float32,
    pad_to: int | None = None,
    flatten: bool = False,
) -> dict[str, torch.Tensor]:
    """Packed rows → model inputs. ``pad_to``: pad every row to this length (else to the longest);
    ``flatten``: one row of all sequences with ``position_ids`` only (flash-attention varlen, GPU)."""
    if flatten:
        ids = [t for r in rows for t in r["input_ids"]]
        return {
            "input_ids": torch.tensor([ids]),
            "labels": torch.tensor([[t for r in rows for t in r["labels"]]]),
            "position_ids": torch.tensor([[t for r in rows for t in r["position_ids"]]]),
        }
    length = pad_to or max(len(r["input_ids"]) for r in rows)
    n = len(rows)
    input_ids = torch.full((n, length), pad_id, dtype=torch.long)
    labels = torch.full((n, length), IGNORE, dtype=torch.long)
    position_ids = torch.zeros((n, length), dtype=torch.long)
    for i, r in enumerate(rows):
        k = len(r["input_ids"])
        input_ids[i, :k] = torch.tensor(r["input_ids"])
        labels[i, :k] = torch.tensor(r["labels"])
        position_ids[i, :k] = torch.tensor(r["position_ids"])
        position_ids[i, k:] = torch.arange(length - k)
    mask = block_causal_mask([r["seq_lens"] for r in rows], length, dtype)
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids, "attention_mask": mask}


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sum of token cross-entropies, trainable tokens, correctly predicted trainable tokens) of one batch;
    position i predicts label i + 1. Divide the sum by the *global* token count (all accumulation steps and
    workers) so every trained token weighs the same however the batch was packed or split."""
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    valid = shift_labels != IGNORE
    loss = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )
    correct = ((shift_logits.argmax(-1) == shift_labels) & valid).sum()
    return loss, valid.sum(), correct


def debug_batch(tok: Any, batch: Mapping[str, torch.Tensor], max_chars: int = 4000) -> str:
    """One batch as text for ``--debug-batch``: trained tokens inside ``[[...]]``, each sequence on its own line."""
    out = []
    for r in range(batch["input_ids"].size(0)):
        ids, labels = batch["input_ids"][r].tolist(), batch["labels"][r].tolist()
        pos = batch["position_ids"][r].tolist()
        parts: list[str] = []
        trained = False
        for i, t in enumerate(ids):
            if pos[i] == 0 and i:
                parts.append("]]\n" if trained else "\n")
                trained = False
            if (labels[i] != IGNORE) != trained:
                parts.append("]]" if trained else "[[")
                trained = not trained
            parts.append(tok.decode([t]))
        parts.append("]]" if trained else "")
        n_trained = sum(1 for x in labels if x != IGNORE)
        out.append(f"--- row {r}: {len(ids)} tokens, {n_trained} trained ---\n{''.join(parts)[:max_chars]}")
    return "\n".join(out)
