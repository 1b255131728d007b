"""What every family shares: HCL text helpers, the versions blocks, the vocabulary, the params layout."""

from __future__ import annotations

import json
import random
import re
import textwrap
from collections.abc import Mapping
from typing import Any

from pipelines.collect.synthetic.config import Flavor
from pipelines.collect.synthetic.model import Instances

PROJECTS = ("billing", "checkout", "inventory", "search", "ledger", "notify", "catalog", "identity")
ENVIRONMENTS = ("dev", "staging", "prod", "qa", "perf")
QUEUE_RETENTION = {"orders": 24, "emails": 72, "events": 48, "invoices": 168, "refunds": 96, "audit": 336}

# --------------------------------------------------------------------------------------------------
# HCL text helpers
# --------------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"<<([a-z_]+)>>")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def tpl(template: str, **kw: Any) -> str:
    """Dedent ``template`` and fill ``<<name>>`` placeholders (HCL keeps its own braces and ``${}``)."""
    text = textwrap.dedent(template).lstrip("\n")

    def fill(m: re.Match[str]) -> str:
        if m.group(1) not in kw:
            raise KeyError(f"template placeholder <<{m.group(1)}>> has no value")
        return str(kw[m.group(1)])

    return _PLACEHOLDER.sub(fill, text)


def hcl(v: Any, indent: int = 0) -> str:
    """A Python value as an HCL expression (maps on several lines, aligned like terraform fmt)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(hcl(x, indent) for x in v) + "]"
    if isinstance(v, dict):
        if not v:
            return "{}"
        keys = [k if _IDENT.match(k) else json.dumps(k) for k in v]
        pairs = [(k, hcl(x, indent + 2)) for k, x in zip(keys, v.values(), strict=True)]
        return "{\n" + aligned(pairs, indent + 2) + " " * indent + "}"
    raise TypeError(f"cannot render {type(v).__name__} as HCL")


def assignments(pairs: Mapping[str, Any], comment: str = "") -> str:
    """A .tfvars body: aligned ``name = value`` lines."""
    head = f"# {comment}\n" if comment else ""
    return head + aligned([(k, hcl(v)) for k, v in pairs.items()], 0)


def aligned(pairs: list[tuple[str, str]], indent: int) -> str:
    """``k = v`` lines aligned like terraform fmt: runs of one-line values share a column, and a
    multi-line value is neither padded nor part of a run."""
    out, run = [], []
    for k, v in [*pairs, ("", "\n")]:  # the sentinel flushes the last run
        if "\n" in v:
            width = max((len(rk) for rk, _ in run), default=0)
            out += [f"{' ' * indent}{rk.ljust(width)} = {rv}\n" for rk, rv in run]
            run = []
            if k:
                out.append(f"{' ' * indent}{k} = {v}\n")
        else:
            run.append((k, v))
    return "".join(out)


def variable(  # noqa: PLR0917 - mirrors the order of a variable block's attributes
    name: str,
    type_: str,
    default: Any = None,
    description: str = "",
    validation: tuple[str, str] | None = None,
    required: bool = False,
) -> str:
    attrs = []
    if description:
        attrs.append(("description", json.dumps(description)))
    attrs.append(("type", type_))
    if not required:
        attrs.append(("default", hcl(default, 2)))
    body = aligned(attrs, 2)
    if validation:
        cond, msg = validation
        if not re.fullmatch(r"[A-Z].*[.?]", msg):  # terraform < 1.2 (e.g. PyPI's 1.0.3) rejects anything else
            raise ValueError(f"validation message {msg!r} must be a sentence: capital first, period last")
        body += f"\n  validation {{\n    condition     = {cond}\n    error_message = {json.dumps(msg)}\n  }}\n"
    return f'variable "{name}" {{\n{body}}}\n'


def join_blocks(*blocks: str) -> str:
    return "\n".join(b.rstrip("\n") + "\n" for b in blocks if b)


# required_version of the plannable roots: terraform_data needs 1.4; the null_resource flavor (hashicorp/null
# 2.1.2 from the mirror) plans on the PyPI fallback 1.0.3 and on every later release
REQUIRED_VERSION: dict[Flavor, str] = {"terraform_data": ">= 1.4", "null_resource": ">= 1.0"}


def root_versions_tf(flavor: Flavor) -> str:
    """The ``terraform`` block of a plannable root module."""
    return tpl(
        """
        terraform {
          required_version = "<<required>>"

          required_providers {
            null = {
              source  = "hashicorp/null"
              version = "~> 2.1"
            }
          }
        }
    """,
        required=REQUIRED_VERSION[flavor],
    )


# A flavor is named for the resource type that holds values; this is the attribute that holds them
# (terraform_data: ``input``, updated in place; null_resource: ``triggers``, a map of strings that replaces).
INPUT_ATTR: dict[Flavor, str] = {"terraform_data": "input", "null_resource": "triggers"}


def flavor_of(p: Mapping[str, Any]) -> Flavor:
    """The resource flavor a family renders (set once per repo in ``style``; terraform_data by default)."""
    flavor: Flavor = p["style"].get("flavor", "terraform_data")
    return flavor


MODULE_VERSIONS_TF = tpl("""
    terraform {
      required_providers {
        null = {
          source = "hashicorp/null"
        }
      }
    }
""")

GITIGNORE = ".terraform/\n*.tfstate\n*.tfstate.*\ncrash.log\n*.tfplan\n"


def under_root(root: str, files: Mapping[str, str]) -> dict[str, str]:
    return {(f"{root}/{p}" if root != "." else p): c for p, c in files.items()}


def pick_root(rng: random.Random) -> str:
    return rng.choice((".", ".", "terraform", "infra"))


def semver(rng: random.Random) -> str:
    return f"{rng.randint(1, 3)}.{rng.randint(0, 12)}.{rng.randint(0, 9)}"


def readme(title: str, about: str, how: str) -> str:
    return f"# {title}\n\n{about}\n\n## Usage\n\n{how}\n"


# --------------------------------------------------------------------------------------------------
# Families. Each has init(rng, cfg) -> params and render(params) -> (files, {workspace: instances}).
# Params keep every mutable knob in the same five places so that mutations are generic:
#   counts{key: int}, values{key: str} + value_kinds{key: kind}, sets{key: list} + set_pools,
#   flags{key: bool}; names/style hold choices that never change after the first commit.
# --------------------------------------------------------------------------------------------------

Rendered = tuple[dict[str, str], dict[str, Instances]]


def make_params(**kw: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "counts": {},
        "values": {},
        "value_kinds": {},
        "sets": {},
        "set_pools": {},
        "flags": {},
        "names": {},
        "style": {},
    }
    p.update(kw)
    return p
