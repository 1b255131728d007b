"""Valid JSON by construction: xgrammar logits processors, from a JSON Schema or (plan prediction) a grammar.

At every step only tokens that keep the text a prefix of a schema-valid document are allowed, and the stop
tokens only once the document is complete, so an answer that ends by itself parses and validates. An answer
that reaches its budget first is closed after its last complete change (``close_at_budget``; the decoder keeps
``CLOSE_RESERVE`` tokens of the budget for that) and reported apart as *closed*; what cannot be closed is *cut*,
never counted as valid. Free whitespace is
off (``any_whitespace=False``): with it an untrained model fills its budget with spaces (measured here).
The grammar writes the project's canonical JSON, the form every training answer has (``json.dumps`` with
sorted keys and compact separators): keys in sorted order, ``,`` and ``:`` with no spaces, so a fine-tuned
model is never forced off the format it learned.
Used by evaluation and by Serve's ``response_format``; compiled grammars are cached per tokenizer and schema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def load_schema(name: str) -> dict[str, Any]:
    """A schema of ``schemas/`` by file stem, e.g. ``plan_prediction``."""
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


def stop_ids(tok: Any) -> list[int]:
    """Token ids that end an assistant turn: EOS and the template's end-of-turn markers that exist."""
    ids = {tok.eos_token_id}
    for t in ("<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>"):
        i = tok.convert_tokens_to_ids(t)
        if isinstance(i, int) and i != tok.unk_token_id:
            ids.add(i)
    return sorted(i for i in ids if i is not None)


@lru_cache(maxsize=16)
def _compiler(tok: Any, vocab_size: int, stops: tuple[int, ...]) -> Any:
    import xgrammar as xgr

    info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=vocab_size, stop_token_ids=list(stops))
    return xgr.GrammarCompiler(info)


def sorted_properties(schema: Any) -> Any:
    """The schema with every ``properties`` mapping in key order (xgrammar emits properties in schema order)."""
    if isinstance(schema, dict):
        return {
            k: ({p: sorted_properties(v[p]) for p in sorted(v)} if k == "properties" else sorted_properties(v))
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [sorted_properties(v) for v in schema]
    return schema


@lru_cache(maxsize=64)
def _compiled(tok: Any, vocab_size: int, stops: tuple[int, ...], schema_json: str) -> Any:
    return _compiler(tok, vocab_size, stops).compile_json_schema(
        schema_json, any_whitespace=False, separators=(",", ":")
    )


# The plan-prediction answer as a grammar: exactly the canonical form of ``schemas/plan_prediction.schema.json``
# (sorted keys, no whitespace, the address pattern), written out because xgrammar's JSON-schema ``pattern`` does
# not admit JSON escapes: compiled from the schema it refused ``\"`` inside an address, so no for_each address
# with a string key (``module.q["emails"].x.y``) could be written (found by teacher forcing a memorized answer).
# tests/evaluate/test_decoding.py checks that this grammar and the schema accept the same answers.
PLAN_GRAMMAR = r"""
root ::= "{\"resource_changes\":[" changes? "]}"
changes ::= change ("," change)*
change ::= "{\"actions\":" actions ",\"address\":\"" address "\"}"
actions ::= "[\"create\"]" | "[\"update\"]" | "[\"delete\"]" | "[\"delete\",\"create\"]" | "[\"create\",\"delete\"]"
address ::= modseg* ident "." ident key?
modseg ::= "module." ident key? "."
ident ::= [A-Za-z_] [A-Za-z0-9_\-]*
key ::= "[" keychar+ "]"
keychar ::= [^\]"\\\x00-\x1f] | "\\" escape
escape ::= ["\\/bfnrt] | "u" [0-9A-Fa-f] [0-9A-Fa-f] [0-9A-Fa-f] [0-9A-Fa-f]
"""


@lru_cache(maxsize=16)
def _compiled_grammar(tok: Any, vocab_size: int, stops: tuple[int, ...], ebnf: str) -> Any:
    return _compiler(tok, vocab_size, stops).compile_grammar(ebnf)


def plan_processor(tok: Any, vocab_size: int, batch_size: int = 1) -> Any:
    """A fresh logits processor that admits exactly the canonical plan-prediction answers (``PLAN_GRAMMAR``)."""
    import xgrammar as xgr

    compiled = _compiled_grammar(tok, vocab_size, tuple(stop_ids(tok)), PLAN_GRAMMAR)
    return xgr.contrib.hf.LogitsProcessor([compiled] * batch_size)


def json_schema_processor(tok: Any, schema: Mapping[str, Any], vocab_size: int, batch_size: int = 1) -> Any:
    """A fresh ``transformers`` logits processor for one ``generate`` call (xgrammar's keep per-call state)."""
    import xgrammar as xgr

    canonical = json.dumps(sorted_properties(dict(schema)))
    compiled = _compiled(tok, vocab_size, tuple(stop_ids(tok)), canonical)
    return xgr.contrib.hf.LogitsProcessor([compiled] * batch_size)


def finished(new_ids: Sequence[int], stops: Sequence[int]) -> bool:
    """Whether a generated answer ended by itself (a stop token) rather than at the token budget."""
    return any(int(t) in set(stops) for t in new_ids)


PLAN_PREFIX = '{"resource_changes":['
CLOSE_RESERVE = 2  # tokens the decoder keeps back so that closing (``]}``) stays within the budget


def close_at_budget(text: str) -> str | None:
    """A constrained plan answer cut at its budget, closed after its last complete change: that prefix + ``]}``
    (``{"resource_changes":[]}`` when no change was complete). None when ``text`` is not a prefix of the
    canonical form (then it is not the constrained decoder's and stays cut)."""
    if not text.startswith(PLAN_PREFIX):
        return None
    depth, in_str, esc, last = 0, False, False, len(PLAN_PREFIX)
    for i in range(len(PLAN_PREFIX), len(text)):
        ch = text[i]
        if in_str:
            esc, in_str = (False, True) if esc else (ch == "\\", ch != '"')
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0 and ch == "}":
                last = i + 1
            if depth < 0:  # the array closed: the document is (nearly) complete as it stands
                return text[: i + 1] + "}"
    return text[:last] + "]}"
