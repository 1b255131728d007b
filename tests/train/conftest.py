"""Tokenizers and models for the training tests, built locally (no hub): the embedded tiny template, a
Llama-3.x-style template and a ChatML (Qwen2.5-style) template, written into test tokenizers."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from pipelines.dataset.tokens import build_tiny_tokenizer
from pipelines.train.model import TinyShape, build_tiny_model

TEXTS = [
    'resource "terraform_data" "web" {\n  input = var.name\n}\n',
    '{"resource_changes": [{"address": "terraform_data.web", "actions": ["create"]}]}',
    "You are a Terraform expert. Predict the plan. What will change? Nothing changes here.",
    "plan the module please, then explain the answer in one line",
] * 20

# Llama 3.x: a system header (with the knowledge-cutoff preamble) is always rendered
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}"
    "{% set messages = messages[1:] %}{% else %}{% set system = '' %}{% endif %}"
    "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
    "Today Date: 26 Jul 2024\n\n{{ system }}<|eot_id|>"
    "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
# Qwen2.5: ChatML, a default system prompt when none is given, EOS = <|im_end|>
CHATML_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. "
    "You are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="session")
def tiny_tok_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_tokenizer(TEXTS, tmp_path_factory.mktemp("tok") / "tiny", vocab_size=600)


def _variant(base: Path, out: Path, template: str, specials: dict[str, str], extra: list[str]) -> Path:
    tok = AutoTokenizer.from_pretrained(str(base))
    assert isinstance(tok, PreTrainedTokenizerFast)
    tok.add_special_tokens({**specials, "additional_special_tokens": extra})
    tok.chat_template = template
    tok.save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def llama3_tok_dir(tiny_tok_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _variant(
        tiny_tok_dir,
        tmp_path_factory.mktemp("tok") / "llama3",
        LLAMA3_TEMPLATE,
        {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": "<|finetune_right_pad_id|>"},
        ["<|start_header_id|>", "<|end_header_id|>"],
    )


@pytest.fixture(scope="session")
def chatml_tok_dir(tiny_tok_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = _variant(
        tiny_tok_dir,
        tmp_path_factory.mktemp("tok") / "chatml",
        CHATML_TEMPLATE,
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
        ["<|im_start|>"],
    )
    tok = AutoTokenizer.from_pretrained(str(out))
    tok.bos_token = None  # Qwen has no BOS
    tok.save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_tok_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    shape = TinyShape(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=128, max_position_embeddings=512)  # fmt: skip
    return build_tiny_model(tiny_tok_dir, tmp_path_factory.mktemp("model") / "tiny", shape, seed=0)
