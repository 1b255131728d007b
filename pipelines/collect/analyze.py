"""HCL analysis of one workspace: structure, providers and complexity (risky constructs: ``screen.py``).

Input: the workspace's files (its directory plus the local modules it calls) already parsed by
``HclParser``. Output: plain values for the plans table. Parse failures are statuses, not exceptions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines.collect.hcl import HclError, HclParser, HclTimeout
from pipelines.collect.modules import labelled

BUILTIN_TYPES = {
    "terraform_data": "terraform.io/builtin/terraform",
    "terraform_remote_state": "terraform.io/builtin/terraform",
}
DEFAULT_NAMESPACE = "hashicorp"
# complexity buckets: score < LOW_MAX → low, < MEDIUM_MAX → medium, else high
LOW_MAX, MEDIUM_MAX = 6.0, 18.0


@dataclass
class ParsedWorkspace:
    """Parsed HCL documents of a workspace by file path, or the parse failure."""

    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: str = "ok"  # ok | error | timeout
    error: str | None = None


def parse_workspace(files: Sequence[Mapping[str, str]], parser: HclParser) -> ParsedWorkspace:
    """Parse every ``.tf`` / ``.tf.json`` file; the first failing file decides the status."""
    out = ParsedWorkspace()
    for f in files:
        path = f["path"]
        try:
            if path.endswith(".tf.json"):
                out.docs[path] = load_tf_json(f["content"])
            elif path.endswith(".tf"):
                out.docs[path] = parser.parse(f["content"], with_meta=False)
        except HclTimeout as e:
            return ParsedWorkspace({}, "timeout", f"{path}: {e}")
        except (HclError, ValueError, RecursionError) as e:  # RecursionError: JSON nested too deep
            return ParsedWorkspace({}, "error", f"{path}: {e}")
    return out


def load_tf_json(text: str) -> dict[str, Any]:
    """A ``.tf.json`` file in python-hcl2's shape (each block kind maps to a list of dicts).

    HCL's JSON reader keeps a repeated property name as another block, where ``json.loads`` keeps only the
    last: ``{"data": {<benign>}, "data": {<http>}}`` would hide the first. Repeats become one list here.
    ValueError (or RecursionError, nested too deep) for text that is not a JSON object.
    """
    doc = json.loads(text, object_pairs_hook=_keep_repeats)
    if not isinstance(doc, dict):
        raise ValueError("a .tf.json file must hold a JSON object")
    return {k: v if isinstance(v, list) else [v] for k, v in doc.items()}


def _keep_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k not in out:
            out[k] = v
            continue
        prev = out[k] if isinstance(out[k], list) else [out[k]]
        out[k] = [*prev, *(v if isinstance(v, list) else [v])]
    return out


def blocks(docs: Mapping[str, Mapping[str, Any]], kind: str) -> Iterator[tuple[str, str, Any]]:
    """(file path, label, body) for top-level blocks of one kind, e.g. ``module`` → (path, name, body)."""
    for path, doc in docs.items():
        for (label,), body in labelled(doc.get(kind), 1):
            yield path, label, body


def typed_blocks(docs: Mapping[str, Mapping[str, Any]], kind: str) -> Iterator[tuple[str, str, str, Any]]:
    """(file path, type, name, body) for top-level ``resource`` / ``data`` blocks."""
    for path, doc in docs.items():
        for (type_, name), body in labelled(doc.get(kind), 2):
            yield path, type_, name, body


def nested_blocks(
    docs: Mapping[str, Mapping[str, Any]], kind: str, n_labels: int
) -> Iterator[tuple[str, tuple[str, ...], tuple[str, ...], dict[str, Any]]]:
    """(file path, keys above it, labels, body) for every ``kind`` block at any depth.

    Terraform reads some blocks nested (``data`` inside ``check``, ``provisioner`` inside ``resource``), and
    screening must not depend on knowing every place a future version might allow; hence no schema. Iterative,
    so a hostile, deeply nested ``.tf.json`` cannot exhaust the stack.
    """
    for path, doc in docs.items():
        stack: list[tuple[tuple[str, ...], Any]] = [((), doc)]
        while stack:
            keys, node = stack.pop()
            if isinstance(node, list):
                stack.extend((keys, item) for item in reversed(node))
            elif isinstance(node, dict):
                for k, v in node.items():
                    if k == kind:
                        for labels, body in labelled(v, n_labels):
                            yield path, keys, labels, body
                stack.extend(((*keys, str(k)), v) for k, v in reversed(node.items()))


def required_provider_sources(docs: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """local provider name → source address, from ``terraform { required_providers { ... } }``."""
    out: dict[str, str] = {}
    for _path, doc in docs.items():
        for _, tf in labelled(doc.get("terraform"), 0):
            for _, rp in labelled(tf.get("required_providers"), 0):
                for local, spec in rp.items():
                    if isinstance(spec, dict) and isinstance(spec.get("source"), str):
                        out[local] = spec["source"]
    return out


def provider_address(local_name: str, sources: Mapping[str, str]) -> str:
    """``aws`` → ``registry.terraform.io/hashicorp/aws`` (respecting required_providers sources)."""
    src = sources.get(local_name, f"{DEFAULT_NAMESPACE}/{local_name}")
    parts = src.split("/")
    if len(parts) == 2:
        return f"registry.terraform.io/{src}".lower()
    return src.lower()


def provider_of_type(type_: str, sources: Mapping[str, str]) -> str:
    if type_ in BUILTIN_TYPES:
        return BUILTIN_TYPES[type_]
    return provider_address(type_.split("_", 1)[0], sources)


@dataclass
class Analysis:
    providers: list[str]
    resource_types: list[str]
    n_resources: int
    n_modules: int
    n_variables: int
    n_outputs: int
    complexity_score: float
    complexity_bucket: str


def _count_exprs(body: Any, needle: str) -> int:
    return json.dumps(body).count(needle)


def analyze(parsed: ParsedWorkspace) -> Analysis:
    """Structure and complexity of a parsed workspace (all its files, local modules included)."""
    docs = parsed.docs
    sources = required_provider_sources(docs)
    resources = list(typed_blocks(docs, "resource"))
    data = [(p, t, n, b) for p, _keys, (t, n), b in nested_blocks(docs, "data", 2)]  # check blocks hold data too
    modules = list(blocks(docs, "module"))
    providers = {provider_of_type(t, sources) for _p, t, _n, _b in resources + data}
    providers |= {provider_address(name, sources) for _p, name, _b in blocks(docs, "provider")}
    n_count = sum(1 for *_x, b in resources + data if isinstance(b, dict) and "count" in b)
    n_for_each = sum(1 for *_x, b in resources + data if isinstance(b, dict) and "for_each" in b)
    n_for_each += sum(1 for *_x, b in modules if isinstance(b, dict) and ("for_each" in b or "count" in b))
    n_dynamic = sum(len(b.get("dynamic", [])) for *_x, b in resources if isinstance(b, dict))
    n_cond = sum(_count_exprs(d, " ? ") for d in docs.values())
    n_depends = sum(1 for *_x, b in resources + modules if isinstance(b, dict) and "depends_on" in b)
    n_lifecycle = sum(1 for *_x, b in resources if isinstance(b, dict) and "lifecycle" in b)
    score = (
        len(resources)
        + 0.5 * len(data)
        + 2 * len(modules)
        + 1.5 * (n_count + n_for_each)
        + 2 * n_dynamic
        + n_cond
        + 0.5 * (n_depends + n_lifecycle)
    )
    bucket = "low" if score < LOW_MAX else "medium" if score < MEDIUM_MAX else "high"
    return Analysis(
        providers=sorted(providers),
        resource_types=sorted({t for _p, t, _n, _b in resources}),
        n_resources=len(resources),
        n_modules=len(modules),
        n_variables=sum(1 for _ in blocks(docs, "variable")),
        n_outputs=sum(1 for _ in blocks(docs, "output")),
        complexity_score=round(float(score), 2),
        complexity_bucket=bucket,
    )
