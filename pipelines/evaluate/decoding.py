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
import re
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
def _compiled(tok: Any, vocab_size: int, stops: tuple[int, ...], schema_json: str, strict: bool = True) -> Any:
    return _compiler(tok, vocab_size, stops).compile_json_schema(
        schema_json, any_whitespace=False, separators=(",", ":"), strict_mode=strict
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


# Addresses from the code (``plan_processor(..., prompts=...)``): the same canonical answer, but every identifier
# of an address (module, resource type, resource name) must be a word of the prompt, every string instance key a
# word or a quoted string of the prompt, modules nest at most MAX_MODULE_DEPTH deep and a count index has at most
# 5 digits. Terraform plans only what the configuration declares, and the prompt shows the configuration (for a
# change, with the diff of what was removed), so the true addresses stay writable (every answer of the test
# corpus is checked); what goes is a small model's habit of looping inside one identifier until the budget runs
# out (``worker_resource_resource_resource...``, measured on the default tiny models).
MAX_MODULE_DEPTH = 4
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_QUOTED = re.compile(r'"([ !#-\[\]-~]{1,128})"')  # printable ASCII without quote or backslash: written as is


def _lit(text: str) -> str:
    """An EBNF string literal matching ``text`` exactly."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def prompt_plan_grammar(prompt: str) -> str:
    """PLAN_GRAMMAR with identifiers and string keys drawn from ``prompt`` (see above)."""
    words = sorted(set(_WORD.findall(prompt)))
    keys = sorted(set(_QUOTED.findall(prompt)))
    ident = " | ".join(_lit(w) for w in words) or '"_"'
    names = " | ".join(["ident", *(_lit(k) for k in keys)])  # a map key may be a bare word (``{ web = ... }``)
    mods = " ".join(["modseg?"] * MAX_MODULE_DEPTH)
    return (
        PLAN_GRAMMAR.split("address ::=", maxsplit=1)[0]
        + f'address ::= {mods} ident "." ident key?\n'
        + 'modseg ::= "module." ident key? "."\n'
        + f"ident ::= {ident}\n"
        + 'key ::= "[" [0-9] [0-9]? [0-9]? [0-9]? [0-9]? "]" | "[\\\\\\"" keyname "\\\\\\"]"\n'
        + f"keyname ::= {names}\n"
    )


@lru_cache(maxsize=256)
def _compiled_grammar(tok: Any, vocab_size: int, stops: tuple[int, ...], ebnf: str) -> Any:
    return _compiler(tok, vocab_size, stops).compile_grammar(ebnf)


class GrammarProcessor:
    """A ``transformers`` logits processor: rows of a batch held to their compiled grammars (xgrammar matchers).

    ``grammars`` maps batch rows to grammars (rows without one are left alone). Rows that ``done`` marks (the
    generation loop's per-row stop: a budget, a stop string) take no more tokens, so what the loop pads them with
    never reaches their matcher. Written for per-row settings: ``xgr.contrib.hf.LogitsProcessor`` constrains
    every row and asserts on the padding a row gets once it has stopped early.
    """

    def __init__(self, grammars: Mapping[int, Any], batch_size: int, done: Sequence[bool] | None = None) -> None:
        import xgrammar as xgr

        self.matchers = {i: xgr.GrammarMatcher(g) for i, g in grammars.items()}
        vocab = next(iter(grammars.values())).tokenizer_info.vocab_size if grammars else 0
        self.bitmask = xgr.allocate_token_bitmask(batch_size, vocab) if grammars else None
        self.done = done if done is not None else [False] * batch_size
        self.started = False

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import xgrammar as xgr

        live = []
        for i, m in self.matchers.items():
            if self.done[i] or m.is_terminated():
                continue
            if self.started and not m.accept_token(int(input_ids[i, -1])):
                raise RuntimeError(f"row {i}: the grammar refused the token it allowed ({int(input_ids[i, -1])})")
            if not m.is_terminated():
                m.fill_next_token_bitmask(self.bitmask, i)
                live.append(i)
        self.started = True
        if live:
            xgr.apply_token_bitmask_inplace(scores, self.bitmask.to(scores.device), indices=live)
        return scores


def plan_grammar(tok: Any, vocab_size: int, prompt: str | None = None) -> Any:
    """The compiled canonical plan-answer grammar (``PLAN_GRAMMAR``); with ``prompt``, the one whose addresses
    are made of the prompt's words (``prompt_plan_grammar``)."""
    ebnf = PLAN_GRAMMAR if prompt is None else prompt_plan_grammar(prompt)
    return _compiled_grammar(tok, vocab_size, tuple(stop_ids(tok)), ebnf)


def schema_grammar(tok: Any, vocab_size: int, schema: Mapping[str, Any] | None) -> Any:
    """The compiled grammar of a JSON Schema (keys in sorted order, no free whitespace; an object admits only the
    properties it names); None: any JSON object."""
    stops = tuple(stop_ids(tok))
    if schema is None:
        return _compiled(tok, vocab_size, stops, '{"type": "object"}', False)
    return _compiled(tok, vocab_size, stops, json.dumps(sorted_properties(dict(schema))))


def plan_processor(tok: Any, vocab_size: int, batch_size: int = 1, prompts: Sequence[str] | None = None) -> Any:
    """A fresh logits processor that admits exactly the canonical plan-prediction answers (``PLAN_GRAMMAR``);
    with ``prompts`` (one per batch row), only those whose addresses are made of the prompt's words
    (``prompt_plan_grammar``)."""
    rows = [plan_grammar(tok, vocab_size, None if prompts is None else prompts[i]) for i in range(batch_size)]
    return GrammarProcessor(dict(enumerate(rows)), batch_size)


def json_schema_processor(tok: Any, schema: Mapping[str, Any], vocab_size: int, batch_size: int = 1) -> Any:
    """A fresh ``transformers`` logits processor for one ``generate`` call (matchers keep per-call state)."""
    return GrammarProcessor({i: schema_grammar(tok, vocab_size, schema) for i in range(batch_size)}, batch_size)


def finished(new_ids: Sequence[int], stops: Sequence[int]) -> bool:
    """Whether a generated answer ended by itself (a stop token) rather than at the token budget."""
    return any(int(t) in set(stops) for t in new_ids)


# Sorted addresses: the canonical answer lists its changes sorted by address, each once. The grammar cannot say
# that, and a small model's commonest failure once its identifiers are bounded is writing one change again and
# again (measured: the default tiny models, 20 of 20 test answers). ``SortedAddresses`` runs after the grammar's
# processor and, inside an address, drops every token after which no address sorting after the previous
# change's could be finished; where that would drop every token, the grammar's choice stands. It looks one token
# ahead only: a model that copies the previous address up to its last key (``x["a"]`` again) reaches a point
# where only the copy can be finished, and writes the repeat (measured: 20 plan-only full-fine-tune answers, 7
# ended by themselves and every one repeated a change before; 16 end by themselves with it, most after 2 copies).
_ADDR_OPEN = '"address":"'
_ADDR_DONE = re.compile(r'"address":"((?:[^"\\]|\\.)*)"')
_PARTIAL_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{0,3})?$")


def _unescape(body: str) -> str | None:
    try:
        out = json.loads(f'"{body}"')
    except ValueError:
        return None
    return out if isinstance(out, str) else None


def address_state(text: str) -> tuple[str, str] | None:
    """(the previous change's address, the escaped text of the address being written) while ``text`` is inside
    an address that follows another change; None otherwise."""
    i = text.rfind(_ADDR_OPEN)
    if i < 0:
        return None
    partial = text[i + len(_ADDR_OPEN) :]
    if _closing_quote(partial) is not None:
        return None
    done = _ADDR_DONE.findall(text[:i])
    prev = _unescape(done[-1]) if done else None
    return None if prev is None else (prev, partial)


def _closing_quote(body: str) -> int | None:
    esc = False
    for k, ch in enumerate(body):
        if esc:
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == '"':
            return k
    return None


def can_exceed(escaped: str, prev: str) -> bool:
    """Whether an address whose escaped text starts with ``escaped`` (and ends at its first unescaped quote, when
    it has one) can sort strictly after ``prev``."""
    end = _closing_quote(escaped)
    if end is not None:
        done = _unescape(escaped[:end])
        return done is None or done > prev
    raw = _unescape(_PARTIAL_ESCAPE.sub("", escaped))
    return raw is None or raw >= prev[: len(raw)]


@lru_cache(maxsize=4)
def _pieces(tok: Any, vocab_size: int) -> tuple[str, ...]:
    return tuple(tok.decode([i]) if i < len(tok) else "" for i in range(vocab_size))


class SortedAddresses:
    """A ``transformers`` logits processor (after the grammar's): strictly increasing plan addresses."""

    def __init__(self, tok: Any, vocab_size: int, prompt_width: int, rows: Sequence[int] | None = None) -> None:
        self.tok, self.width, self.rows = tok, prompt_width, rows  # rows: the batch rows it applies to (None: all)
        self.pieces = _pieces(tok, vocab_size)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        for b in range(input_ids.shape[0]) if self.rows is None else self.rows:
            state = address_state(self.tok.decode(input_ids[b, self.width :], skip_special_tokens=True))
            if state is None:
                continue
            prev, partial = state
            allowed = torch.isfinite(scores[b]).nonzero().flatten().tolist()
            bad = [t for t in allowed if t < len(self.pieces) and not can_exceed(partial + self.pieces[t], prev)]
            if bad and len(bad) < len(allowed):
                scores[b, bad] = float("-inf")
        return scores


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
