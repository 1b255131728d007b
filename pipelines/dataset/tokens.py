"""Tokenizer concerns of the dataset stage: loading the base model's tokenizer, building the embedded tiny
one, and counting tokens the way training will see them (chat template + assistant-only loss mask).

Assistant-only masks come from incremental prefix rendering, not ``return_assistant_tokens_mask``: stock
templates (Llama-3.x, Qwen, gpt-oss) lack ``{% generation %}`` tags and silently return all zeros. For each
trainable assistant turn i, the tokens between ``render(messages[:i], add_generation_prompt=True)`` and
``render(messages[:i+1])`` are trainable, the end-of-turn token included (a model must learn to stop).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Llama-3-style template of the embedded tiny model; real runs use the base model's own template.
TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
TINY_SPECIAL = {
    "bos_token": "<|begin_of_text|>",
    "eos_token": "<|eot_id|>",
    "pad_token": "<|pad|>",  # distinct from EOS: padding masked by id must never mask the end of turn
    "unk_token": None,
}
TINY_EXTRA_SPECIAL = ["<|start_header_id|>", "<|end_header_id|>"]


@dataclass(frozen=True)
class TokenCount:
    n_tokens: int  # the whole rendered conversation
    spans: tuple[tuple[int, int], ...]  # [start, end) token ranges that carry loss

    @property
    def n_trainable(self) -> int:
        return sum(e - s for s, e in self.spans)

    def trainable_within(self, max_len: int) -> int:
        """Trainable tokens left when the sequence is cut to its first ``max_len`` tokens."""
        return sum(max(0, min(e, max_len) - s) for s, e in self.spans)


def load_tokenizer(path: str | Path) -> Any:
    """A local HF tokenizer directory (or a hub id where the hub is reachable) that has a chat template."""
    from transformers import AutoTokenizer

    from pipelines import storage

    if storage.is_uri(str(path)):  # an object store: this node's copy
        path = storage.on_node(str(path))
    tok = AutoTokenizer.from_pretrained(str(path))
    if not getattr(tok, "chat_template", None):
        raise ValueError(
            f"tokenizer {path} has no chat template: use an instruct/chat model's tokenizer, or save one with "
            "tokenizer.chat_template set (training and serving must render the same template)"
        )
    return tok


def build_tiny_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 4096) -> Path:
    """Train a byte-level BPE tokenizer on ``texts`` and save it as a normal HF directory with a chat template.

    Byte-level: every input is encodable (no unknown tokens). Deterministic for the same texts.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = [TINY_SPECIAL["bos_token"], TINY_SPECIAL["eos_token"], TINY_SPECIAL["pad_token"], *TINY_EXTRA_SPECIAL]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=TINY_SPECIAL["bos_token"],
        eos_token=TINY_SPECIAL["eos_token"],
        pad_token=TINY_SPECIAL["pad_token"],
        additional_special_tokens=TINY_EXTRA_SPECIAL,
    )
    fast.chat_template = TINY_CHAT_TEMPLATE
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    return out


def _render(tok: Any, messages: Sequence[Mapping[str, Any]], generation_prompt: bool) -> list[int]:
    msgs = [{"role": m["role"], "content": m.get("content") or ""} for m in messages]
    out = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=generation_prompt, return_dict=False)
    return list(out)


def render_prompt(tok: Any, messages: Sequence[Mapping[str, Any]]) -> list[int]:
    """The token ids a model continues from: the conversation and the generation prompt (evaluation, Serve)."""
    return _render(tok, messages, True)


def render_with_spans(tok: Any, messages: Sequence[Mapping[str, Any]]) -> tuple[list[int], tuple[tuple[int, int], ...]]:
    """Token ids of the whole conversation and its loss spans (assistant turns with ``weight`` != 0).

    The one implementation of assistant-only masks: the dataset stage counts with it, training trains on it.
    """
    full = _render(tok, messages, False)
    spans = []
    for i, m in enumerate(messages):
        if m.get("role") != "assistant" or m.get("weight", 1) == 0:
            continue
        start = len(_render(tok, messages[:i], True)) if i else 0
        end = len(full) if i == len(messages) - 1 else len(_render(tok, messages[: i + 1], False))
        if end > start:
            spans.append((start, end))
    return full, tuple(spans)


def count_tokens(tok: Any, messages: Sequence[Mapping[str, Any]]) -> TokenCount:
    """Rendered length and loss spans of one conversation (assistant turns with ``weight`` != 0)."""
    full, spans = render_with_spans(tok, messages)
    return TokenCount(n_tokens=len(full), spans=spans)


def tokenizer_fingerprint(path: str | Path) -> str:
    """A short identity of a saved tokenizer (vocab + template), recorded in stats."""
    from pipelines import storage
    from pipelines.ids import short_hash

    p = storage.on_node(str(path)) if storage.is_uri(str(path)) else Path(path)
    parts = [(p / n).read_text() for n in ("tokenizer.json", "tokenizer_config.json") if (p / n).exists()]
    return short_hash(*parts) if parts else short_hash(json.dumps(str(path)))
