"""Export without Ray: merged (dequantized base + LoRA) equals the 4-bit adapter model on probes; the adapter
is vLLM-loadable; the Ollama Modelfile renders what the chat template renders, for three template families."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from pipelines.train.export import (
    check_adapter,
    load_trained,
    merge,
    ollama_modelfile,
    ollama_template,
    probe_difference,
)
from pipelines.train.model import load_model


@pytest.fixture(scope="module")
def trained_adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A QLoRA adapter with non-zero B matrices (as after training) on the 4-bit tiny model."""
    model = load_model(str(tiny_model_dir), "qlora", torch.device("cpu"), gradient_checkpointing=False)
    torch.manual_seed(3)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.05)
    out = tmp_path_factory.mktemp("adapter") / "adapter"
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(str(out))
    return out


def test_merged_equals_adapter_on_probe_inputs(tiny_model_dir: Path, trained_adapter: Path, tmp_path: Path) -> None:
    merged_dir = merge(str(tiny_model_dir), trained_adapter, "qlora", tmp_path / "merged")
    tok = AutoTokenizer.from_pretrained(str(merged_dir))
    probe = tok(['resource "terraform_data" "web" { input = var.name }'], return_tensors="pt").input_ids
    adapter_model = load_trained(str(tiny_model_dir), trained_adapter, "qlora")
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir)).eval()
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval()
    diff = probe_difference(adapter_model, merged, probe)
    moved = probe_difference(adapter_model, base, probe)  # what the adapter changes: the scale of "small"
    print(f"\nmerged vs adapter max |logit diff| {diff:.2e}; adapter vs base {moved:.2e}")
    assert diff < 0.02 * moved
    # a plain model: no quantization config, no adapter layers, loadable without bitsandbytes or peft
    conf = json.loads((merged_dir / "config.json").read_text())
    assert "quantization_config" not in conf
    assert not any("lora" in n for n, _ in merged.named_parameters())


def test_merging_into_the_original_full_precision_base_would_differ(
    tiny_model_dir: Path, trained_adapter: Path, tmp_path: Path
) -> None:
    """The control: merged into the un-quantized original weights (not the dequantized 4-bit ones the
    adapter was trained against), outputs move further from the adapter model's."""
    good = merge(str(tiny_model_dir), trained_adapter, "qlora", tmp_path / "good")
    naive = merge(str(tiny_model_dir), trained_adapter, "lora", tmp_path / "naive")
    probe = AutoTokenizer.from_pretrained(str(good))(["plan the module please"], return_tensors="pt").input_ids
    ref = load_trained(str(tiny_model_dir), trained_adapter, "qlora")
    d_good = probe_difference(ref, AutoModelForCausalLM.from_pretrained(str(good)).eval(), probe)
    d_naive = probe_difference(ref, AutoModelForCausalLM.from_pretrained(str(naive)).eval(), probe)
    assert d_good < d_naive


def test_adapter_is_vllm_loadable(trained_adapter: Path) -> None:
    conf = check_adapter(trained_adapter)
    assert conf["r"] == 16 and not conf.get("modules_to_save")
    assert sorted(conf["target_modules"]) == [
        "down_proj",
        "gate_proj",
        "k_proj",
        "o_proj",
        "q_proj",
        "up_proj",
        "v_proj",
    ]
    bad = trained_adapter.parent / "bad"
    bad.mkdir()
    (bad / "adapter_config.json").write_text(json.dumps({**conf, "modules_to_save": ["lm_head"]}))
    with pytest.raises(RuntimeError, match="vLLM rejects"):
        check_adapter(bad)


def _go_render(template: str, system: str | None, prompt: str, response: str) -> str:
    """Ollama's rendering of our TEMPLATE subset ({{ if .System }}…{{ end }}, .System, .Prompt, .Response)."""
    head, rest = template.split("{{ if .System }}", 1)
    sys_block, rest = rest.split("{{ end }}", 1)
    text = head + (sys_block.replace("{{ .System }}", system) if system else "") + rest
    return text.replace("{{ .Prompt }}", prompt).replace("{{ .Response }}", response)


@pytest.mark.parametrize("family", ["tiny", "llama3", "chatml"])
def test_modelfile_renders_like_the_chat_template(family: str, request: pytest.FixtureRequest) -> None:
    tok = AutoTokenizer.from_pretrained(str(request.getfixturevalue(f"{family}_tok_dir")))
    template, stops = ollama_template(tok)
    msgs = [
        {"role": "system", "content": "You are a Terraform expert."},
        {"role": "user", "content": "plan it"},
        {"role": "assistant", "content": "Nothing changes."},
    ]
    expected = tok.apply_chat_template(msgs, tokenize=False)
    bos = tok.bos_token or ""
    assert bos + _go_render(template, msgs[0]["content"], "plan it", "Nothing changes.") == expected
    assert stops[0] == {"tiny": "<|eot_id|>", "llama3": "<|eot_id|>", "chatml": "<|im_end|>"}[family]
    assert tok.eos_token in stops
    text = ollama_modelfile(tok, "/models/merged")
    assert text.startswith('FROM /models/merged\nTEMPLATE """')
    assert f'PARAMETER stop "{stops[0]}"' in text


def test_training_can_continue_from_an_adapter(tiny_model_dir: Path, trained_adapter: Path) -> None:
    """init_adapter (mitigation rounds): the loaded adapter is trainable and starts from the saved weights."""
    saved = load_trained(str(tiny_model_dir), str(trained_adapter), "qlora")
    model = load_model(str(tiny_model_dir), "qlora", torch.device("cpu"), gradient_checkpointing=False,
                       init_adapter=str(trained_adapter))  # fmt: skip
    want = {n: p for n, p in saved.named_parameters() if "lora_" in n}
    got = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert sorted(got) == sorted(want) and len(got) > 0  # exactly the adapter's matrices are trainable
    assert all(torch.equal(got[n].detach(), want[n].detach()) for n in got)
    assert any(float(p.detach().abs().sum()) > 0 for n, p in got.items() if "lora_B" in n)  # not a fresh, zero-B one
