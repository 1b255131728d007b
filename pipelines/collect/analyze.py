"""HCL analysis of one workspace: structure, providers, complexity, and risky constructs.

Input: the workspace's files (its directory plus the local modules it calls) already parsed by
``HclParser``. Output: plain values for the plans table. Parse failures are statuses, not exceptions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines.collect.hcl import HclError, HclParser, HclTimeout

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
                out.docs[path] = _json_as_hcl(json.loads(f["content"]))
            elif path.endswith(".tf"):
                out.docs[path] = parser.parse(f["content"], with_meta=False)
        except HclTimeout as e:
            return ParsedWorkspace({}, "timeout", f"{path}: {e}")
        except (HclError, ValueError) as e:
            return ParsedWorkspace({}, "error", f"{path}: {e}")
    return out


def _json_as_hcl(doc: Any) -> dict[str, Any]:
    """Terraform JSON syntax → python-hcl2's shape (each block kind maps to a list of dicts)."""
    if not isinstance(doc, dict):
        raise ValueError("a .tf.json file must hold a JSON object")
    return {k: v if isinstance(v, list) else [v] for k, v in doc.items()}


def blocks(docs: Mapping[str, Mapping[str, Any]], kind: str) -> Iterator[tuple[str, str, Any]]:
    """(file path, label, body) for top-level blocks of one kind, e.g. ``module`` → (path, name, body)."""
    for path, doc in docs.items():
        for entry in doc.get(kind, []) or []:
            if isinstance(entry, dict):
                for label, body in entry.items():
                    yield path, label, body


def typed_blocks(docs: Mapping[str, Mapping[str, Any]], kind: str) -> Iterator[tuple[str, str, str, Any]]:
    """(file path, type, name, body) for ``resource`` / ``data`` blocks."""
    for path, type_, by_name in blocks(docs, kind):
        if isinstance(by_name, dict):
            for name, body in by_name.items():
                yield path, type_, name, body


def required_provider_sources(docs: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """local provider name → source address, from ``terraform { required_providers { ... } }``."""
    out: dict[str, str] = {}
    for _path, doc in docs.items():
        for tf in doc.get("terraform", []) or []:
            for rp in (tf.get("required_providers") or []) if isinstance(tf, dict) else []:
                for local, spec in (rp or {}).items():
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
    risky_constructs: list[str]


def _count_exprs(body: Any, needle: str) -> int:
    return json.dumps(body).count(needle)


def analyze(parsed: ParsedWorkspace) -> Analysis:
    """Structure and complexity of a parsed workspace (all its files, local modules included)."""
    docs = parsed.docs
    sources = required_provider_sources(docs)
    resources = list(typed_blocks(docs, "resource"))
    data = list(typed_blocks(docs, "data"))
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
    risky = set()
    for *_x, b in resources:
        if isinstance(b, dict) and "provisioner" in b:
            risky.add("provisioner")
    for _p, t, _n, _b in data:
        if t in ("external", "http", "terraform_remote_state"):
            risky.add(f"data.{t}")
    for _p, _name, b in modules:
        src = b.get("source") if isinstance(b, dict) else None
        if isinstance(src, str) and not src.startswith(("./", "../")):
            risky.add("remote_module")
    return Analysis(
        providers=sorted(providers),
        resource_types=sorted({t for _p, t, _n, _b in resources}),
        n_resources=len(resources),
        n_modules=len(modules),
        n_variables=sum(1 for _ in blocks(docs, "variable")),
        n_outputs=sum(1 for _ in blocks(docs, "output")),
        complexity_score=round(float(score), 2),
        complexity_bucket=bucket,
        risky_constructs=sorted(risky),
    )
