"""Export a run's best weights: the PEFT adapter (with tokenizer and chat template), a merged model, an
Ollama Modelfile.

The merged model is never made by merging into 4-bit weights (re-quantizing loses what training learned):
for QLoRA the 4-bit base is dequantized to the compute dtype first (the exact weights the adapter was trained
against), then LoRA is merged into it. ``probe_difference`` checks merged outputs against adapter outputs.
The adapter has no ``modules_to_save`` and a rank vLLM accepts.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from pipelines.train.model import DTYPES, nf4_config, same_4bit_kernel_in_eval

logger = logging.getLogger(__name__)
VLLM_MAX_LORA_RANK = 16  # vLLM's default --max-lora-rank


def _load_base(base: str, method: str, compute_dtype: str) -> Any:
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": DTYPES[compute_dtype]}
    if method == "qlora":
        kwargs["quantization_config"] = nf4_config(compute_dtype)
    model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
    return same_4bit_kernel_in_eval(model) if method == "qlora" else model


def load_trained(base: str, weights: str | Path, method: str, compute_dtype: str = "float32") -> Any:
    """The trained model as training saw it: 4-bit base + adapter (qlora), base + adapter (lora), or full."""
    if method == "full":
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(str(weights), dtype=DTYPES[compute_dtype]).eval()
    from peft import PeftModel

    return PeftModel.from_pretrained(_load_base(base, method, compute_dtype), str(weights)).eval()


def merge(base: str, adapter: str | Path, method: str, out: str | Path, compute_dtype: str = "float32") -> Path:
    """Merge the adapter into the base — for QLoRA the 4-bit base dequantized to the compute dtype, the exact
    weights the adapter was trained against — and save a plain HF model directory with the tokenizer."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    plain = _load_base(base, method, compute_dtype)
    if method == "qlora":
        plain = plain.dequantize()
    merged = PeftModel.from_pretrained(plain, str(adapter)).merge_and_unload()
    out = Path(out)
    merged.save_pretrained(str(out), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(adapter)).save_pretrained(str(out))
    return out


def probe_difference(a: Any, b: Any, input_ids: torch.Tensor) -> float:
    """Max absolute logit difference of two models on probe inputs."""
    with torch.no_grad():
        return float((a(input_ids=input_ids).logits.float() - b(input_ids=input_ids).logits.float()).abs().max())


def check_adapter(adapter: Path) -> dict[str, Any]:
    """The adapter's config, checked for what vLLM rejects."""
    conf = json.loads((adapter / "adapter_config.json").read_text())
    if conf.get("modules_to_save"):
        raise RuntimeError(f"{adapter}: modules_to_save={conf['modules_to_save']}; vLLM rejects such adapters")
    if conf["r"] > VLLM_MAX_LORA_RANK:
        logger.warning("adapter rank %d is over vLLM's default --max-lora-rank %d", conf["r"], VLLM_MAX_LORA_RANK)
    return conf


# ---------------------------------------------------------------- Ollama
MARK_SYS, MARK_USER, MARK_ASSIST = "\x00SYSTEM\x00", "\x00PROMPT\x00", "\x00RESPONSE\x00"


def ollama_template(tok: Any) -> tuple[str, list[str]]:
    """(TEMPLATE, stop strings) in Ollama's Go-template form, derived by rendering the tokenizer's own chat
    template around marker strings, so serving through Ollama renders what training rendered."""
    bos = tok.bos_token or ""

    def render(messages: list[dict[str, str]], gen: bool) -> str:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
        return text[len(bos) :] if bos and text.startswith(bos) else text

    sys_part = render([{"role": "system", "content": MARK_SYS}], False)
    with_sys = render([{"role": "system", "content": MARK_SYS}, {"role": "user", "content": MARK_USER}], True)
    full = render(
        [
            {"role": "system", "content": MARK_SYS},
            {"role": "user", "content": MARK_USER},
            {"role": "assistant", "content": MARK_ASSIST},
        ],
        False,
    )
    if not with_sys.startswith(sys_part) or not full.startswith(with_sys):
        raise ValueError("the chat template does not render messages one after another; write the Modelfile by hand")
    user_part = with_sys[len(sys_part) :]
    after = full[len(with_sys) :]
    if not after.startswith(MARK_ASSIST):
        raise ValueError("the chat template changes the assistant turn's prefix; write the Modelfile by hand")
    end_of_turn = after[len(MARK_ASSIST) :]
    template = (
        "{{ if .System }}"
        + sys_part.replace(MARK_SYS, "{{ .System }}")
        + "{{ end }}"
        + user_part.replace(MARK_USER, "{{ .Prompt }}")
        + "{{ .Response }}"
        + end_of_turn
    )
    stops = [s for s in dict.fromkeys([end_of_turn.strip(), tok.eos_token]) if s]
    return template, stops


def ollama_modelfile(tok: Any, model_dir: str, temperature: float = 0.1) -> str:
    """An Ollama ``Modelfile`` for a merged model directory: TEMPLATE and stop tokens from the chat template."""
    template, stops = ollama_template(tok)
    lines = [f"FROM {model_dir}", f'TEMPLATE """{template}"""']
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    lines.append(f"PARAMETER temperature {temperature}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the whole export
def export_run(
    base: str, run_dir: str, *, method: str, compute_dtype: str, merged: bool = True, modelfile: bool = True
) -> dict[str, Any]:
    """``run_dir/best`` (the best eval-loss weights) → ``run_dir/adapter`` (or ``model`` for full fine-tuning),
    ``run_dir/merged``, ``run_dir/Modelfile``. Returns where each went and the merged-vs-adapter probe."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = Path(run_dir)
    best = run / "best"
    tok = AutoTokenizer.from_pretrained(base)
    out: dict[str, Any] = {}
    serve_dir: Path | None = None
    if method == "full":
        serve_dir = run / "model"
        shutil.rmtree(serve_dir, ignore_errors=True)
        shutil.copytree(best, serve_dir)
        tok.save_pretrained(str(serve_dir))
        out["model"] = str(serve_dir)
    else:
        adapter = run / "adapter"
        shutil.rmtree(adapter, ignore_errors=True)
        shutil.copytree(best, adapter)
        tok.save_pretrained(str(adapter))
        out["adapter_config"] = check_adapter(adapter)
        out["adapter"] = str(adapter)
        if merged:
            serve_dir = run / "merged"
            shutil.rmtree(serve_dir, ignore_errors=True)
            merge(base, adapter, method, serve_dir, compute_dtype)
            out["merged"] = str(serve_dir)
            probe = tok('resource "aws_s3_bucket" "logs" {}', return_tensors="pt").input_ids
            m = AutoModelForCausalLM.from_pretrained(str(serve_dir), dtype=DTYPES[compute_dtype]).eval()
            trained = load_trained(base, adapter, method, compute_dtype)
            out["merged_max_abs_logit_diff"] = probe_difference(trained, m, probe)
    if modelfile and serve_dir is not None:
        path = run / "Modelfile"
        path.write_text(ollama_modelfile(tok, str(serve_dir)))
        out["modelfile"] = str(path)
    return out
