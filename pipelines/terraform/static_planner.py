"""Static (HCL-only) planner: predict the ``resource_changes`` of ``terraform plan`` on empty state.

It labels workspaces whose providers cannot run offline (aws, azurerm, google ...) and is the
evaluation baseline, so it expands what the HCL alone determines and reports the rest in
``StaticPlan.unresolved`` instead of guessing silently. Decisions (checked against terraform 1.11.4):

- Every managed resource instance is ``["create"]`` (state is empty). ``data`` blocks are never
  emitted. Measured: a data source whose arguments are known is read during plan and is absent from
  ``resource_changes``; one that waits on a managed resource being created (``depends_on`` or an
  attribute reference) appears as ``data.T.N`` with ``["read"]``. We exclude those too: their
  presence depends on apply-time ordering, and our pipeline compares managed resources.
- ``count`` that cannot be derived -> one instance ``name[0]`` plus a note: most data-driven counts
  are >= 1, so the guess earns recall for one instance and costs at most one false positive.
  ``for_each`` whose keys cannot be derived -> no instances plus a note: a guessed key can never
  match a real address, so emitting one could only lower precision. Module calls follow the same
  rules (unknown module ``count`` -> ``module.m[0]``; unknown ``for_each`` -> module skipped).
  Map values (and set/list lengths) may stay unknown while keys are known, as in terraform:
  ``for_each = aws_subnet.private`` expands to the keys of that resource's own ``for_each``.
- Modules: local sources (``./``, ``../``, ``.\\``) resolve inside ``files`` through ``collect/modules.py``, the
  resolver discovery and screening use; a source that leaves the repo (in any spelling), a
  registry/git/URL source, or a non-literal source is skipped with a note. A local source whose
  directory has no ``.tf`` files makes the workspace unplannable (``error``), as ``terraform init``
  fails there; so do HCL parse errors, duplicate resources/module calls and module cycles. Other
  evaluation errors terraform would report (bad types, missing keys) become notes on the affected
  resource, which is then handled like an unknown value.
- ``.tf.json`` files are ignored with a note; ``override.tf``/``*_override.tf`` merge into the
  blocks they override, attribute by attribute.
- Ordering: rows are sorted by the plain string order of ``address``. Terraform's own
  ``show -json`` order differs (measured): module instances by depth (root first), then by call
  name and key; inside a module data before managed, then type, name (``cond`` before ``cond2``),
  and instance key, integer keys in numeric order (``a[2]`` before ``a[10]``).
- Addresses quote string keys like terraform (``\\n``, ``\\"``, ``$${``, ``%%{``, ``\\uXXXX``).

python-hcl2 v7 renders expressions back to lossy strings: string literals inside list literals lose
their quotes (``toset(["a","b"])`` -> ``${toset([a, b])}``; an element that was an expression is
``${...}``-wrapped instead), conditionals and indexing print Python reprs (``['p']``, ``{'a': 1}``,
``None``), objects inside calls are JSON, and ``f(x...)`` loses its ``...``. The parser below reads
all of these. What stays ambiguous: inside a list literal a string that looks like a number/bool is
read as one, a string containing ``", "`` or an unbalanced ``]`` is split, ``""`` as the last element
is lost, and ``min/max/merge`` given a single list argument are taken as spread calls.

Expressions are evaluated by a small interpreter over a parsed tree (never ``eval``): literals,
``var.*`` (defaults < ``terraform.tfvars`` < ``*.auto.tfvars`` < ``var_overrides``, converted to the
declared type so ``set(string)`` variables work with ``for_each``), ``local.*``, ``module.*``
outputs of local modules, resource references (known shape, unknown attributes), operators,
conditionals, ``for`` expressions, splats and the functions in ``_FUNCTIONS``; anything else is an
``Unknown`` carrying the reason that ends up in the note.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from pipelines.collect.hcl import HclError, parse_hcl_inline
from pipelines.collect.modules import module_dirs, resolve_source

logger = logging.getLogger(__name__)

BUILTIN_TERRAFORM_PROVIDER = "terraform.io/builtin/terraform"
DEFAULT_REGISTRY = "registry.terraform.io"
MODULE_META_ARGS = frozenset({"source", "version", "count", "for_each", "providers", "depends_on"})
MAX_RANGE = 100_000  # refuse to materialize larger range() results
MAX_INSTANCES = 10_000  # per count: hostile configs must not allocate count = 1e9 rows
MAX_EVAL_STEPS = 2_000_000  # per plan: evaluation steps + values built + rows; caps time and memory
_META_KEYS = frozenset({"__start_line__", "__end_line__"})


@dataclass
class StaticPlan:
    """The predicted plan: rows sorted by address, notes on what could not be known, or an error."""

    resource_changes: list[dict[str, Any]] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    error: str | None = None


def static_plan(
    files: Mapping[str, str],
    workspace_path: str,
    *,
    parser: Callable[[str], dict] | None = None,
    var_overrides: Mapping[str, Any] | None = None,
) -> StaticPlan:
    """Predict ``resource_changes`` for the root module at ``workspace_path`` from ``files`` alone.

    ``files`` maps repo-relative POSIX paths to contents; ``parser`` turns HCL text into the
    python-hcl2 v7 dict (default: ``parse_hcl_inline``); ``var_overrides`` act like ``-var``.
    """
    planner = _Planner(files, parser or parse_hcl_inline)
    token = _BUDGET.set([MAX_EVAL_STEPS])
    try:
        rows = _plan_rows(planner, _norm_dir(workspace_path), var_overrides or {})
    except _PlanFailure as e:
        return StaticPlan(unresolved=planner.notes(), error=str(e))
    finally:
        _BUDGET.reset(token)
    unique = {row["address"]: row for row in rows}
    plan = StaticPlan(resource_changes=[unique[a] for a in sorted(unique)], unresolved=planner.notes())
    logger.debug(
        "static plan of %r: %d resources, %d notes", workspace_path, len(plan.resource_changes), len(plan.unresolved)
    )
    return plan


def _plan_rows(planner: _Planner, root_dir: str, var_overrides: Mapping[str, Any]) -> list[dict[str, Any]]:
    root_cfg = planner.load_tree(root_dir, ())
    tfvars = planner.load_tfvars(root_dir)
    overrides = {k: _from_python(v) for k, v in var_overrides.items()}
    for name in sorted(set(overrides) - set(root_cfg.variables)):
        planner.note(f'var_overrides sets "{name}", which the root module does not declare; ignored')

    def root_var(name: str) -> Any:
        if name in overrides:
            return overrides[name]
        return tfvars.get(name, _MISSING)

    root = _Scope(
        planner, root_cfg, None, root_var, path_module=".", missing_hint="no default, tfvars value or override"
    )
    rows: list[dict[str, Any]] = []
    planner.collect(root, rows)
    return rows


# ---------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class Unknown:
    """A value known only after apply, or one this evaluator cannot derive; ``reason`` says why."""

    reason: str
    error: bool = False  # terraform would reject the expression (try()/can() fall through)


class TfSet:
    """A terraform set: distinct elements in terraform's order (strings lexicographic, numbers numeric)."""

    __slots__ = ("items",)

    def __init__(self, elems: Iterable[Any]) -> None:
        unique: dict[str, Any] = {}
        for e in elems:
            unique.setdefault(_canon(e), e)
        self.items: tuple[Any, ...] = tuple(sorted(unique.values(), key=_set_order))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TfSet) and _canon(self) == _canon(other)

    def __hash__(self) -> int:
        return hash(_canon(self))

    def __repr__(self) -> str:
        return f"TfSet({list(self.items)!r})"


class EvalError(Exception):
    """An expression terraform itself would reject (wrong type, missing key, bad index ...)."""


class _PlanFailure(Exception):
    """The workspace cannot be planned at all (terraform init/validate would fail)."""


class _BudgetExceeded(_PlanFailure):
    """The config needs more than ``MAX_EVAL_STEPS`` (a value bomb, or far beyond real configs)."""


_BUDGET: ContextVar[list[int] | None] = ContextVar("static_planner_budget", default=None)


def _charge(n: int = 1) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget[0] -= n
        if budget[0] < 0:
            raise _BudgetExceeded(
                f"evaluating this config took more than {MAX_EVAL_STEPS} steps (values or instance counts "
                "far beyond real configs); not planned statically"
            )


def _size(v: Any) -> int:
    return len(v.items) if isinstance(v, TfSet) else len(v) if isinstance(v, (str, list, dict)) else 1


class _Missing:
    """Marker: no value supplied for a variable."""


_MISSING = _Missing()


def _plain(v: Any) -> Any:
    _charge()
    if isinstance(v, TfSet):
        return {"<set>": [_plain(x) for x in v.items]}
    if isinstance(v, Unknown):
        return {"<unknown>": v.reason}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _canon(v: Any) -> str:
    return json.dumps(_plain(v), sort_keys=True)


def _set_order(v: Any) -> tuple[int, Any]:
    if isinstance(v, bool):
        return (2, int(v))
    if isinstance(v, (int, float)):
        return (0, v)
    if isinstance(v, str):
        return (1, v)
    return (3, _canon(v))


def _from_python(v: Any) -> Any:
    """Normalize a caller-supplied value (tuples, sets) into the evaluator's value model."""
    if isinstance(v, (list, tuple)):
        return [_from_python(x) for x in v]
    if isinstance(v, (set, frozenset)):
        return TfSet(_from_python(x) for x in v)
    if isinstance(v, Mapping):
        return {str(k): _from_python(x) for k, x in v.items()}
    return v


def _deep_unknown(v: Any) -> Unknown | None:
    _charge()
    if isinstance(v, Unknown):
        return v
    if isinstance(v, (list, TfSet)):
        for x in v.items if isinstance(v, TfSet) else v:
            u = _deep_unknown(x)
            if u is not None:
                return u
    elif isinstance(v, dict):
        for x in v.values():
            u = _deep_unknown(x)
            if u is not None:
                return u
    return None


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, TfSet):
        return "set"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "map"
    return type(v).__name__


def _num(v: Any) -> int | float:
    if isinstance(v, bool) or v is None:
        raise EvalError(f"a number is required, got {_type_name(v)}")
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        try:
            return _norm_num(float(v)) if any(c in v for c in ".eE") else int(v)
        except ValueError as e:
            raise EvalError(f"cannot convert {v!r} to a number") from e
    raise EvalError(f"a number is required, got {_type_name(v)}")


def _norm_num(x: int | float) -> int | float:
    if isinstance(x, float) and x.is_integer() and abs(x) < 2**53:
        return int(x)
    return x


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if v in ("true", "false"):
        return v == "true"
    raise EvalError(f"a bool is required, got {_type_name(v)}")


def _str(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        n = _norm_num(v)
        return str(n) if isinstance(n, int) else repr(n)
    raise EvalError(f"a string is required, got {_type_name(v)}")


def _elems(v: Any) -> list[Any]:
    if isinstance(v, list):
        return v
    if isinstance(v, TfSet):
        return list(v.items)
    raise EvalError(f"a list or set is required, got {_type_name(v)}")


def _map(v: Any) -> dict[str, Any]:
    if isinstance(v, dict):
        return v
    raise EvalError(f"a map or object is required, got {_type_name(v)}")


def _equal(a: Any, b: Any) -> bool:
    """Terraform ``==``: values of different types are never equal (``1 != "1"``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if type(a) is not type(b):
        return False
    return _canon(a) == _canon(b)


# ---------------------------------------------------------------------------------------------
# Expression trees and the parser for python-hcl2 v7 expression strings


class _Node:
    __slots__ = ()


@dataclass(frozen=True, eq=False)
class _Lit(_Node):
    value: Any


@dataclass(frozen=True, eq=False)
class _Tmpl(_Node):
    parts: tuple[str | _Node, ...]


@dataclass(frozen=True, eq=False)
class _Ref(_Node):
    name: str


@dataclass(frozen=True, eq=False)
class _Attr(_Node):
    obj: _Node
    name: str


@dataclass(frozen=True, eq=False)
class _Index(_Node):
    obj: _Node
    key: _Node


@dataclass(frozen=True, eq=False)
class _Splat(_Node):
    obj: _Node
    steps: tuple[_Attr | _Index, ...]  # applied to each element; their ``obj`` is unused


@dataclass(frozen=True, eq=False)
class _Call(_Node):
    name: str
    args: tuple[_Node, ...]
    spread: bool = False


@dataclass(frozen=True, eq=False)
class _Unary(_Node):
    op: str
    operand: _Node


@dataclass(frozen=True, eq=False)
class _Binary(_Node):
    op: str
    left: _Node
    right: _Node


@dataclass(frozen=True, eq=False)
class _Cond(_Node):
    cond: _Node
    then: _Node
    other: _Node


@dataclass(frozen=True, eq=False)
class _Tuple(_Node):
    items: tuple[_Node, ...]


@dataclass(frozen=True, eq=False)
class _Object(_Node):
    items: tuple[tuple[_Node, _Node], ...]


@dataclass(frozen=True, eq=False)
class _For(_Node):
    key_var: str | None
    value_var: str
    coll: _Node
    key: _Node | None  # None for a list ``[for ...]``
    value: _Node
    cond: _Node | None
    group: bool


class _ParseError(Exception):
    pass


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_DIGITS = re.compile(r"\d+")
_FOR = re.compile(r"for\s")
_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_KEYWORDS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}
_BINARY_LEVELS = (("||",), ("&&",), ("==", "!="), ("<=", ">=", "<", ">"), ("+", "-"), ("*", "/", "%"))
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\"}
_SELF_DELIMITING = (_Lit, _Tmpl, _Tuple, _Object, _For)


class _Parser:
    """Recursive descent over one v7 expression string (HCL syntax plus the v7 renderings)."""

    def __init__(self, text: str) -> None:
        self.s, self.n, self.i = text, len(text), 0

    def ws(self) -> None:
        while self.i < self.n and self.s[self.i] in " \t\r\n":
            self.i += 1

    def at(self, tok: str) -> bool:
        self.ws()
        return self.s.startswith(tok, self.i)

    def eat(self, tok: str) -> bool:
        if self.at(tok):
            self.i += len(tok)
            return True
        return False

    def expect(self, tok: str) -> None:
        if not self.eat(tok):
            raise _ParseError(f"expected {tok!r} at offset {self.i}")

    def word(self, word: str) -> bool:
        self.ws()
        m = _IDENT.match(self.s, self.i)
        if m is not None and m.group(0) == word:
            self.i = m.end()
            return True
        return False

    def ident(self) -> str:
        self.ws()
        m = _IDENT.match(self.s, self.i)
        if m is None:
            raise _ParseError(f"expected a name at offset {self.i}")
        self.i = m.end()
        return m.group(0)

    def expr(self) -> _Node:
        cond = self.binary(0)
        if self.eat("?"):
            then = self.expr()
            self.expect(":")
            return _Cond(cond, then, self.expr())
        return cond

    def binary(self, level: int) -> _Node:
        if level == len(_BINARY_LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while True:
            self.ws()
            op = next((o for o in _BINARY_LEVELS[level] if self.s.startswith(o, self.i)), None)
            if op is None or self.s.startswith("=>", self.i):
                return left
            self.i += len(op)
            left = _Binary(op, left, self.binary(level + 1))

    def unary(self) -> _Node:
        if self.eat("!"):
            return _Unary("!", self.unary())
        if self.eat("-"):
            operand = self.unary()
            if isinstance(operand, _Lit) and isinstance(operand.value, (int, float)):
                return _Lit(-operand.value)  # a negative literal stays self-delimiting in lists
            return _Unary("-", operand)
        return self.postfix()

    def postfix(self) -> _Node:
        node = self.primary()
        while True:
            if self.at("[*]") or self.at(".*"):
                self.i += 3 if self.s.startswith("[*]", self.i) else 2
                steps: list[_Attr | _Index] = []
                while (step := self.step(node)) is not None:
                    steps.append(step)
                node = _Splat(node, tuple(steps))
                continue
            step = self.step(node)
            if step is None:
                return node
            node = step

    def step(self, node: _Node) -> _Attr | _Index | None:
        if self.at("[") and not self.s.startswith("[*]", self.i):
            self.i += 1
            key = self.expr()
            self.expect("]")
            return _Index(node, key)
        if self.at(".") and not self.s.startswith(".*", self.i) and not self.s.startswith("...", self.i):
            self.i += 1
            m = _DIGITS.match(self.s, self.i)
            if m is not None:
                self.i = m.end()
                return _Index(node, _Lit(int(m.group(0))))
            return _Attr(node, self.ident())
        return None

    def primary(self) -> _Node:
        self.ws()
        if self.i >= self.n:
            raise _ParseError("unexpected end of expression")
        c = self.s[self.i]
        if self.s.startswith("${", self.i):  # v7 wraps expressions nested in literals in ${...}
            self.i += 2
            self.eat("~")
            node = self.expr()
            self.eat("~")
            self.expect("}")
            return node
        if c == "(":
            self.i += 1
            node = self.expr()
            self.expect(")")
            return node
        if c in "\"'":  # HCL/JSON strings, and Python reprs ('x') from v7
            self.i += 1
            return self.template(c, escapes=True)
        if c == "[":
            self.i += 1
            return self.for_expr(is_map=False) if self.at_for() else self.tuple_()
        if c == "{":
            self.i += 1
            return self.for_expr(is_map=True) if self.at_for() else self.object_()
        m = _NUMBER.match(self.s, self.i)
        if m is not None:
            self.i = m.end()
            text = m.group(0)
            return _Lit(_norm_num(float(text)) if any(ch in text for ch in ".eE") else int(text))
        m = _IDENT.match(self.s, self.i)
        if m is None:
            raise _ParseError(f"unexpected {c!r} at offset {self.i}")
        name = m.group(0)
        self.i = m.end()
        if name in _KEYWORDS:
            return _Lit(_KEYWORDS[name])
        if self.at("("):
            return self.call(name)
        if self.s.startswith("::", self.i):
            raise _ParseError("provider-defined functions are not supported")
        return _Ref(name)

    def at_for(self) -> bool:
        self.ws()
        return _FOR.match(self.s, self.i) is not None

    def call(self, name: str) -> _Node:
        self.expect("(")
        args: list[_Node] = []
        spread = False
        while not self.eat(")"):
            args.append(self.expr())
            if self.eat("..."):
                spread = True
            if not self.eat(","):
                self.expect(")")
                break
        return _Call(name, tuple(args), spread)

    def tuple_(self) -> _Node:
        items: list[_Node] = []
        if self.eat("]"):
            return _Tuple(())
        while True:
            items.append(self.tuple_item())
            if self.eat(","):
                if self.eat("]"):
                    break
                continue
            self.expect("]")
            break
        return _Tuple(tuple(items))

    def tuple_item(self) -> _Node:
        """One list element: v7 prints string literals bare and expressions as ``${...}``."""
        self.ws()
        start = self.i
        if self.s.startswith(",", start):
            return _Lit("")
        whole = self.s.startswith("${", start) or self.s[start : start + 1] in ("'", '"')
        try:
            node = self.primary() if whole else self.expr()
            self.ws()
            if self.i < self.n and self.s[self.i] in ",]" and (whole or isinstance(node, _SELF_DELIMITING)):
                return node
        except _ParseError:
            pass
        self.i = start
        return self.raw_chunk()

    def raw_chunk(self) -> _Node:
        start, depth, brackets = self.i, 0, 0
        while self.i < self.n:
            if self.s.startswith("${", self.i):
                depth += 1
                self.i += 2
                continue
            c = self.s[self.i]
            if depth:
                depth += {"{": 1, "}": -1}.get(c, 0)
            elif c == "[":
                brackets += 1
            elif c == "]":
                if brackets == 0:
                    break
                brackets -= 1
            elif brackets == 0 and self.s.startswith(", ", self.i):
                break
            self.i += 1
        return _parse_string(self.s[start : self.i])

    def object_(self) -> _Node:
        items: list[tuple[_Node, _Node]] = []
        while not self.eat("}"):
            self.ws()
            m = _IDENT.match(self.s, self.i)
            after = self.s[m.end() :].lstrip() if m else ""
            if m is not None and m.group(0) not in _KEYWORDS and after[:1] in (":", "=") and after[:2] != "==":
                self.i = m.end()
                key: _Node = _Lit(m.group(0))
            else:
                key = self.expr()
            if not (self.eat(":") or self.eat("=")):
                raise _ParseError(f"expected ':' or '=' after an object key at offset {self.i}")
            items.append((key, self.expr()))
            self.eat(",")
        return _Object(tuple(items))

    def for_expr(self, is_map: bool) -> _Node:
        self.word("for")
        first = self.ident()
        second = self.ident() if self.eat(",") else None
        if not self.word("in"):
            raise _ParseError(f"expected 'in' in a for expression at offset {self.i}")
        coll = self.expr()
        self.expect(":")
        key = None
        if is_map:
            key = self.expr()
            self.expect("=>")
        value = self.expr()
        group = is_map and self.eat("...")
        cond = self.expr() if self.word("if") else None
        self.expect("}" if is_map else "]")
        key_var, value_var = (first, second) if second is not None else (None, first)
        return _For(key_var, value_var, coll, key, value, cond, group)

    def template(self, quote: str | None, escapes: bool) -> _Node:
        parts: list[str | _Node] = []
        buf: list[str] = []
        while True:
            if self.i >= self.n:
                if quote is None:
                    break
                raise _ParseError("unterminated string")
            c = self.s[self.i]
            if c == quote:
                self.i += 1
                break
            if escapes and c == "\\":
                buf.append(self.escape())
            elif self.s.startswith("$${", self.i) or self.s.startswith("%%{", self.i):
                buf.append(c + "{")
                self.i += 3
            elif self.s.startswith("${", self.i):
                self.i += 2
                self.eat("~")
                node = self.expr()
                self.eat("~")
                self.expect("}")
                if buf:
                    parts.append("".join(buf))
                    buf = []
                parts.append(node)
            elif self.s.startswith("%{", self.i):
                raise _ParseError("template directives (%{...}) are not supported")
            else:
                buf.append(c)
                self.i += 1
        if buf:
            parts.append("".join(buf))
        if not parts:
            return _Lit("")
        if len(parts) == 1:
            return parts[0] if isinstance(parts[0], _Node) else _Lit(parts[0])
        return _Tmpl(tuple(parts))

    def escape(self) -> str:
        nxt = self.s[self.i + 1 : self.i + 2]
        if nxt in _ESCAPES:
            self.i += 2
            return _ESCAPES[nxt]
        width = {"u": 4, "U": 8, "x": 2}.get(nxt)
        digits = self.s[self.i + 2 : self.i + 2 + (width or 0)]
        if width and re.fullmatch(r"[0-9a-fA-F]+", digits) and len(digits) == width:
            self.i += 2 + width
            return chr(int(digits, 16))
        self.i += 1
        return "\\"


@functools.lru_cache(maxsize=8192)
def _parse_string(text: str) -> _Node:
    """A v7 string value: a literal, a template, or (``${...}`` alone) an expression."""
    try:
        return _Parser(text).template(None, escapes=False)
    except (_ParseError, RecursionError) as e:
        shown = text if len(text) <= 80 else text[:77] + "..."
        return _Lit(Unknown(f"uses an expression this planner cannot parse ({shown!r}: {e})"))


def _ast(value: Any) -> _Node:
    """Tree for a v7 attribute value (native lists/dicts hold v7 strings at their leaves)."""
    if isinstance(value, str):
        return _parse_string(value)
    if isinstance(value, list):
        return _Tuple(tuple(_ast(v) for v in value))
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            key = k[1:-1] if len(k) > 1 and k[0] == k[-1] == '"' and "${" in k else k
            items.append((_parse_string(key), _ast(v)))
        return _Object(tuple(items))
    return _Lit(value)


# ---------------------------------------------------------------------------------------------
# Evaluation


def _eval_top(raw: Any, scope: _Scope | None, env: Mapping[str, Any] | None = None) -> Any:
    """Evaluate a v7 value; terraform-level errors become an ``Unknown`` with ``error=True``."""
    try:
        return _eval(_ast(raw), scope, env or {})
    except EvalError as e:
        return Unknown(f"could not be evaluated ({e})", error=True)
    except RecursionError:
        return Unknown("is nested too deeply to evaluate", error=True)


def _eval(node: _Node, scope: _Scope | None, env: Mapping[str, Any]) -> Any:
    _charge()
    if isinstance(node, _Lit):
        return node.value
    if isinstance(node, _Tmpl):
        out = []
        for part in node.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            v = _eval(part, scope, env)
            if isinstance(v, Unknown):
                return v
            out.append(_str(v))
            _charge(len(out[-1]))
        return "".join(out)
    if isinstance(node, (_Ref, _Attr, _Index)):
        return _eval_traversal(node, scope, env)
    if isinstance(node, _Splat):
        src = _eval(node.obj, scope, env)
        if isinstance(src, Unknown):
            return src
        elems = [] if src is None else list(src.items) if isinstance(src, TfSet) else src
        elems = elems if isinstance(elems, list) else [elems]
        return [_apply_steps(e, node.steps, scope, env) for e in elems]
    if isinstance(node, _Call):
        return _call(node, scope, env)
    if isinstance(node, _Unary):
        v = _eval(node.operand, scope, env)
        if isinstance(v, Unknown):
            return v
        return (not _bool(v)) if node.op == "!" else _norm_num(-_num(v))
    if isinstance(node, _Binary):
        return _binary(node, scope, env)
    if isinstance(node, _Cond):
        c = _eval(node.cond, scope, env)
        if isinstance(c, Unknown):
            return c
        return _eval(node.then if _bool(c) else node.other, scope, env)
    if isinstance(node, _Tuple):
        return [_eval(x, scope, env) for x in node.items]
    if isinstance(node, _Object):
        obj: dict[str, Any] = {}
        for k, v in node.items:
            key = _eval(k, scope, env)
            if isinstance(key, Unknown):
                return key
            obj[_str(key)] = _eval(v, scope, env)
        return obj
    if isinstance(node, _For):
        return _eval_for(node, scope, env)
    raise TypeError(f"unhandled expression node {node!r}")


def _eval_traversal(node: _Node, scope: _Scope | None, env: Mapping[str, Any]) -> Any:
    steps: list[_Attr | _Index] = []
    while isinstance(node, (_Attr, _Index)):
        steps.append(node)
        node = node.obj
    steps.reverse()
    if isinstance(node, _Ref):
        value, used = _resolve_root(node.name, steps, scope, env)
        steps = steps[used:]
    else:
        value = _eval(node, scope, env)
    return _apply_steps(value, steps, scope, env)


def _resolve_root(
    name: str, steps: list[_Attr | _Index], scope: _Scope | None, env: Mapping[str, Any]
) -> tuple[Any, int]:
    """Value of a reference root (``var.x``, ``aws_subnet.a`` ...) and how many steps it used."""
    if name in env:
        return env[name], 0
    attrs = [s.name for s in steps if isinstance(s, _Attr)]
    first = steps[0].name if steps and isinstance(steps[0], _Attr) else None
    if name in ("each", "count", "self"):
        return Unknown(f"uses {name}.* where terraform does not define it", error=True), len(steps)
    if name == "terraform":
        return ("default" if first == "workspace" else Unknown("uses terraform.* metadata")), 1
    if first is None:
        raise EvalError(f"invalid reference {name!r}")
    if scope is None:
        return Unknown(f"references {name}.{first} where only literal values are allowed", error=True), len(steps)
    if name == "var":
        return scope.var(first), 1
    if name == "local":
        return scope.local(first), 1
    if name == "module":
        return scope.module_value(first), 1
    if name == "data":
        target = ".".join(attrs[:2])
        return Unknown(f"depends on data.{target}"), len(steps)
    if name == "path":
        if first == "module":
            return scope.path_module, 1
        if first == "root":
            return ".", 1
        return Unknown(f"uses path.{first}"), 1
    return scope.resource_value(name, first), 1


def _apply_steps(value: Any, steps: Iterable[_Attr | _Index], scope: _Scope | None, env: Mapping[str, Any]) -> Any:
    for step in steps:
        if isinstance(value, Unknown):
            return value
        if isinstance(step, _Attr):
            key: Any = step.name
        else:
            key = _eval(step.key, scope, env)
            if isinstance(key, Unknown):
                return key
        if isinstance(value, dict):
            skey = _str(key)
            if skey not in value:
                raise EvalError(f"no key or attribute {skey!r} in a map with keys {sorted(value)[:10]}")
            value = value[skey]
        elif isinstance(value, list):
            idx = _num(key)
            if idx != int(idx) or not 0 <= idx < len(value):
                raise EvalError(f"index {key!r} is out of range for a list of {len(value)}")
            value = value[int(idx)]
        else:
            raise EvalError(f"cannot index a {_type_name(value)} with {key!r}")
    return value


def _binary(node: _Binary, scope: _Scope | None, env: Mapping[str, Any]) -> Any:
    op = node.op
    left = _eval(node.left, scope, env)
    if op in ("&&", "||"):
        if not isinstance(left, Unknown) and _bool(left) == (op == "||"):
            return op == "||"  # short circuit: false && x, true || x
        right = _eval(node.right, scope, env)
        if not isinstance(right, Unknown) and _bool(right) == (op == "||"):
            return op == "||"
        return left if isinstance(left, Unknown) else right if isinstance(right, Unknown) else op == "&&"
    right = _eval(node.right, scope, env)
    if op in ("==", "!="):
        u = _deep_unknown(left) or _deep_unknown(right)
        if u is not None:
            return u
        return _equal(left, right) == (op == "==")
    for v in (left, right):
        if isinstance(v, Unknown):
            return v
    a, b = _num(left), _num(right)
    if op == "<":
        return a < b
    if op == ">":
        return a > b
    if op == "<=":
        return a <= b
    if op == ">=":
        return a >= b
    if op == "+":
        return _norm_num(a + b)
    if op == "-":
        return _norm_num(a - b)
    if op == "*":
        return _norm_num(a * b)
    if b == 0:
        raise EvalError(f"division by zero in {op}")
    if op == "/":
        return _norm_num(a / b) if isinstance(a, float) or isinstance(b, float) or a % b else a // b
    return _norm_num(math.fmod(a, b))


def _eval_for(node: _For, scope: _Scope | None, env: Mapping[str, Any]) -> Any:
    coll = _eval(node.coll, scope, env)
    if isinstance(coll, Unknown):
        return coll
    if isinstance(coll, dict):
        pairs: list[tuple[Any, Any]] = sorted(coll.items())
    elif isinstance(coll, TfSet):
        pairs = [(v, v) for v in coll.items]
    elif isinstance(coll, list):
        pairs = list(enumerate(coll))
    else:
        raise EvalError(f"a for expression needs a collection, got {_type_name(coll)}")
    out_list: list[Any] = []
    out_map: dict[str, Any] = {}
    for k, v in pairs:
        inner = {**env, node.value_var: v}
        if node.key_var is not None:
            inner[node.key_var] = k
        if node.cond is not None:
            keep = _eval(node.cond, scope, inner)
            if isinstance(keep, Unknown):
                return keep
            if not _bool(keep):
                continue
        if node.key is None:
            out_list.append(_eval(node.value, scope, inner))
            continue
        key = _eval(node.key, scope, inner)
        if isinstance(key, Unknown):
            return key
        skey = _str(key)
        value = _eval(node.value, scope, inner)
        if node.group:
            out_map.setdefault(skey, []).append(value)
        elif skey in out_map:
            raise EvalError(f"duplicate key {skey!r} in a for expression (use ... to group)")
        else:
            out_map[skey] = value
    return out_list if node.key is None else out_map


def _call(node: _Call, scope: _Scope | None, env: Mapping[str, Any]) -> Any:
    if node.name in ("try", "can"):
        for arg in node.args:
            try:
                v = _eval(arg, scope, env)
            except EvalError:
                if node.name == "can":
                    return False
                continue
            u = _deep_unknown(v)
            if u is not None and u.error:
                if node.name == "can":
                    return False
                continue
            if u is not None:
                return u
            return True if node.name == "can" else v
        raise EvalError("no argument of try() could be evaluated")
    args = [_eval(a, scope, env) for a in node.args]
    if node.spread and args:
        if isinstance(args[-1], Unknown):
            return args[-1]
        args = args[:-1] + _elems(args[-1])
    spec = _FUNCTIONS.get(node.name)
    if spec is None:
        return Unknown(f"uses unsupported function {node.name}()")
    fn, tolerant = spec
    for a in args:
        u = a if isinstance(a, Unknown) else (None if tolerant else _deep_unknown(a))
        if u is not None:
            return u
    try:
        result = fn(args)
    except (IndexError, TypeError, ValueError, OverflowError) as e:  # wrong arity or types in hostile HCL
        raise EvalError(f"{node.name}(): {e}") from e
    _charge(_size(result))
    return result


# ---------------------------------------------------------------------------------------------
# Functions (name -> implementation, tolerates unknowns nested inside collections)


def _arity(args: list[Any], lo: int, hi: int | None = None) -> list[Any]:
    if not lo <= len(args) <= (lo if hi is None else hi):
        raise EvalError(f"wrong number of arguments ({len(args)})")
    return args


def _unify(elems: list[Any]) -> list[Any]:
    """Terraform unifies mixed primitives in a collection to strings (``toset(["a", 1])``)."""
    if any(isinstance(e, str) for e in elems) and all(isinstance(e, (str, int, float, bool)) for e in elems):
        return [_str(e) for e in elems]
    return elems


def _spread_single(args: list[Any]) -> list[Any]:
    """v7 drops ``...``: ``max(var.l...)`` arrives as ``max(var.l)``, which is only valid spread."""
    return _elems(args[0]) if len(args) == 1 and isinstance(args[0], (list, TfSet)) else args


def _fn_length(args: list[Any]) -> Any:
    (v,) = _arity(args, 1)
    if isinstance(v, TfSet):
        return len(v.items)
    if isinstance(v, (str, list, dict)):
        return len(v)
    raise EvalError(f"length() of {_type_name(v)}")


def _fn_range(args: list[Any]) -> Any:
    nums = [_num(a) for a in _arity(args, 1, 3)]
    start, stop, step = (0, nums[0], 1) if len(nums) == 1 else (nums[0], nums[1], nums[2] if len(nums) == 3 else 1)
    if len(nums) == 2 and stop < start:
        step = -1
    if step == 0 or abs((stop - start) / step) > MAX_RANGE:
        raise EvalError("range() step is zero or the result is too large")
    out, x = [], start
    while (x < stop) if step > 0 else (x > stop):
        out.append(_norm_num(x))
        x += step
    return out


def _fn_lookup(args: list[Any]) -> Any:
    m, key, *default = _arity(args, 2, 3)
    key = _str(key)
    if key in _map(m):
        return m[key]
    if default:
        return default[0]
    raise EvalError(f"lookup() found no key {key!r} and has no default")


def _fn_element(args: list[Any]) -> Any:
    lst, idx = _arity(args, 2)
    items, i = _elems(lst), int(_num(idx))
    if not items:
        raise EvalError("element() of an empty list")
    return items[i % len(items)]


def _fn_coalesce(args: list[Any]) -> Any:
    for a in args:
        if a is not None and a != "":
            return a
    raise EvalError("coalesce() got no non-null, non-empty argument")


def _fn_flatten(args: list[Any]) -> Any:
    def flat(v: Any) -> Iterator[Any]:
        for x in _elems(v):
            if isinstance(x, (list, TfSet)):
                yield from flat(x)
            else:
                yield x

    return list(flat(_arity(args, 1)[0]))


def _fn_distinct(args: list[Any]) -> Any:
    seen: dict[str, Any] = {}
    for x in _elems(_arity(args, 1)[0]):
        seen.setdefault(_canon(x), x)
    return list(seen.values())


def _fn_merge(args: list[Any]) -> Any:
    out: dict[str, Any] = {}
    for m in _spread_single(args):
        if m is not None:
            out.update(_map(m))
    return out


def _fn_zipmap(args: list[Any]) -> Any:
    ks, vs = (_elems(a) for a in _arity(args, 2))
    if len(ks) != len(vs):
        raise EvalError("zipmap() needs lists of equal length")
    for k in ks:
        if isinstance(k, Unknown):
            return k
    return {_str(k): v for k, v in zip(ks, vs, strict=True)}


def _fn_minmax(pick: Callable[..., Any]) -> Callable[[list[Any]], Any]:
    def fn(args: list[Any]) -> Any:
        nums = [_num(a) for a in _spread_single(args)]
        if not nums:
            raise EvalError("min()/max() need at least one number")
        return pick(nums)

    return fn


def _fn_slice(args: list[Any]) -> Any:
    lst, a, b = _arity(args, 3)
    items, lo, hi = _elems(lst), int(_num(a)), int(_num(b))
    if not 0 <= lo <= hi <= len(items):
        raise EvalError("slice() indices are out of range")
    return items[lo:hi]


def _fn_set_op(op: str) -> Callable[[list[Any]], Any]:
    def fn(args: list[Any]) -> Any:
        sets = [TfSet(_unify(_elems(a))) for a in args]
        if not sets:
            raise EvalError(f"set{op}() needs arguments")
        keys = {_canon(x): x for x in sets[0].items}
        for s in sets[1:]:
            other = {_canon(x): x for x in s.items}
            if op == "union":
                keys.update(other)
            elif op == "intersection":
                keys = {k: v for k, v in keys.items() if k in other}
            else:
                keys = {k: v for k, v in keys.items() if k not in other}
        return TfSet(keys.values())

    return fn


def _fn_split(args: list[Any]) -> Any:
    sep, s = (_str(a) for a in _arity(args, 2))
    return s.split(sep) if sep else list(s)


def _fn_replace(args: list[Any]) -> Any:
    s, old, new = (_str(a) for a in _arity(args, 3))
    if len(old) > 1 and old.startswith("/") and old.endswith("/"):
        raise EvalError("replace() with a regular expression is not supported")
    return s.replace(old, new)


def _fn_index(args: list[Any]) -> Any:
    lst, v = _arity(args, 2)
    for i, x in enumerate(_elems(lst)):
        if _equal(x, v):
            return i
    raise EvalError("index() found no matching element")


def _fn_one(args: list[Any]) -> Any:
    items = _elems(_arity(args, 1)[0])
    if len(items) > 1:
        raise EvalError("one() got more than one element")
    return items[0] if items else None


def _fn_tonumber(args: list[Any]) -> Any:
    (v,) = _arity(args, 1)
    return None if v is None else _num(v)


_FUNCTIONS: dict[str, tuple[Callable[[list[Any]], Any], bool]] = {
    "toset": (lambda a: TfSet(_unify(_elems(_arity(a, 1)[0]))), False),
    "tolist": (lambda a: list(_elems(_arity(a, 1)[0])), True),
    "tomap": (lambda a: dict(_map(_arity(a, 1)[0])), True),
    "length": (_fn_length, True),
    "keys": (lambda a: sorted(_map(_arity(a, 1)[0])), True),
    "values": (lambda a: [v for _, v in sorted(_map(_arity(a, 1)[0]).items())], True),
    "range": (_fn_range, False),
    "concat": (lambda a: [x for lst in a for x in _elems(lst)], True),
    "merge": (_fn_merge, True),
    "lookup": (_fn_lookup, True),
    "contains": (lambda a: any(_equal(x, a[1]) for x in _elems(_arity(a, 2)[0])), False),
    "distinct": (_fn_distinct, False),
    "flatten": (_fn_flatten, False),
    "min": (_fn_minmax(min), False),
    "max": (_fn_minmax(max), False),
    "coalesce": (_fn_coalesce, False),
    "coalescelist": (lambda a: next((x for x in a if _elems(x)), []), True),
    "zipmap": (_fn_zipmap, True),
    "element": (_fn_element, True),
    "slice": (_fn_slice, True),
    "reverse": (lambda a: list(reversed(_elems(_arity(a, 1)[0]))), True),
    "one": (_fn_one, True),
    "compact": (lambda a: [x for x in _elems(_arity(a, 1)[0]) if x is not None and x != ""], False),
    "sort": (lambda a: sorted(_str(x) for x in _elems(_arity(a, 1)[0])), False),
    "setunion": (_fn_set_op("union"), False),
    "setintersection": (_fn_set_op("intersection"), False),
    "setsubtract": (_fn_set_op("subtract"), False),
    "index": (_fn_index, False),
    "sum": (lambda a: _norm_num(sum(_num(x) for x in _elems(_arity(a, 1)[0]))), False),
    "alltrue": (lambda a: all(_bool(x) for x in _elems(_arity(a, 1)[0])), False),
    "anytrue": (lambda a: any(_bool(x) for x in _elems(_arity(a, 1)[0])), False),
    "abs": (lambda a: abs(_num(_arity(a, 1)[0])), False),
    "ceil": (lambda a: math.ceil(_num(_arity(a, 1)[0])), False),
    "floor": (lambda a: math.floor(_num(_arity(a, 1)[0])), False),
    "tostring": (lambda a: None if _arity(a, 1)[0] is None else _str(a[0]), False),
    "tonumber": (_fn_tonumber, False),
    "tobool": (lambda a: None if _arity(a, 1)[0] is None else _bool(a[0]), False),
    "upper": (lambda a: _str(_arity(a, 1)[0]).upper(), False),
    "lower": (lambda a: _str(_arity(a, 1)[0]).lower(), False),
    "trimspace": (lambda a: _str(_arity(a, 1)[0]).strip(), False),
    "join": (lambda a: _str(a[0]).join(_str(x) for lst in a[1:] for x in _elems(lst)), False),
    "split": (_fn_split, False),
    "replace": (_fn_replace, False),
    "startswith": (lambda a: _str(_arity(a, 2)[0]).startswith(_str(a[1])), False),
    "endswith": (lambda a: _str(_arity(a, 2)[0]).endswith(_str(a[1])), False),
}


# ---------------------------------------------------------------------------------------------
# Variable types (``type = set(string)`` matters: it turns a list default into a for_each-able set)


def _type_spec(node: _Node) -> Any:
    """``"string"``/``"number"``/``"bool"``, ``(kind, ...)`` for collections, or None for any."""
    if isinstance(node, (_Lit, _Ref)):
        name = node.value if isinstance(node, _Lit) else node.name
        return name if name in ("string", "number", "bool") else None
    if not isinstance(node, _Call) or not node.args:
        return None
    arg = node.args[0]
    if node.name in ("list", "set", "map"):
        return (node.name, _type_spec(arg))
    if node.name == "tuple" and isinstance(arg, _Tuple):
        return ("tuple", tuple(_type_spec(x) for x in arg.items))
    if node.name == "object" and isinstance(arg, _Object):
        attrs: dict[str, tuple[Any, bool, _Node | None]] = {}
        for k, v in arg.items:
            name = k.value if isinstance(k, _Lit) else k.name if isinstance(k, _Ref) else None
            if not isinstance(name, str):
                return None
            if isinstance(v, _Call) and v.name == "optional" and v.args:
                attrs[name] = (_type_spec(v.args[0]), True, v.args[1] if len(v.args) > 1 else None)
            else:
                attrs[name] = (_type_spec(v), False, None)
        return ("object", attrs)
    return None


def _convert(v: Any, t: Any) -> Any:
    """Best-effort terraform type conversion; leaves values it cannot convert unchanged."""
    if t is None or v is None or isinstance(v, Unknown):
        return v
    try:
        if t == "string":
            return _str(v) if isinstance(v, (bool, int, float)) else v
        if t == "number":
            return _num(v) if isinstance(v, str) else v
        if t == "bool":
            return _bool(v) if isinstance(v, str) else v
    except EvalError:
        return v
    kind = t[0]
    if kind in ("list", "set") and isinstance(v, (list, TfSet)):
        elems = [_convert(x, t[1]) for x in _elems(v)]
        if kind == "list":
            return elems
        u = _deep_unknown(elems)
        return u if u is not None else TfSet(elems)
    if kind == "tuple" and isinstance(v, (list, TfSet)):
        elems = _elems(v)
        return [_convert(x, t[1][i]) if i < len(t[1]) else x for i, x in enumerate(elems)]
    if kind == "map" and isinstance(v, dict):
        return {k: _convert(x, t[1]) for k, x in v.items()}
    if kind == "object" and isinstance(v, dict):
        out = {}
        for name, (at, optional, default) in t[1].items():
            if name in v:
                out[name] = _convert(v[name], at)
            elif optional:
                try:
                    fallback = _eval(default, None, {}) if default is not None else None
                except EvalError:
                    fallback = None
                out[name] = _convert(fallback, at)
        return out
    return v


# ---------------------------------------------------------------------------------------------
# Module configuration (one per directory)


@dataclass
class _ModuleConfig:
    dir: str
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    required_providers: dict[str, str] = field(default_factory=dict)  # local name -> source
    module_dirs: dict[str, str] = field(default_factory=dict)  # call name -> resolved local dir
    module_skip: dict[str, str] = field(default_factory=dict)  # call name -> why it is not expanded


def _norm_dir(path: str) -> str:
    d = posixpath.normpath(path.strip() or ".")
    return "" if d == "." else d


def _norm_file(path: str) -> str:
    return posixpath.normpath(path)


def _is_override(name: str) -> bool:
    stem = name.removesuffix(".tf")
    return stem == "override" or stem.endswith("_override")


def _blocks(value: Any, depth: int) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Yield ``(labels, body)`` from a v7 block list: ``[{label1: {label2: body}}, ...]``."""

    def walk(node: Any, labels: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
        if not isinstance(node, dict):
            return
        if len(labels) == depth:
            yield labels, {k: v for k, v in node.items() if k not in _META_KEYS}
            return
        for k, v in node.items():
            if k not in _META_KEYS:
                yield from walk(v, (*labels, str(k)))

    for item in value if isinstance(value, list) else [value]:
        yield from walk(item, ())


def _source_of(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("source")
    if isinstance(value, str) and "/" in value:
        return value  # a dict without source, or a legacy version string, means hashicorp/<name>
    return ""


def _provider_fqn(source: str) -> str:
    parts = [p for p in source.strip().lower().split("/") if p]
    if len(parts) == 3:
        return "/".join(parts)
    if len(parts) == 2:
        return f"{DEFAULT_REGISTRY}/{parts[0]}/{parts[1]}"
    return f"{DEFAULT_REGISTRY}/hashicorp/{parts[-1] if parts else 'unknown'}"


def _key_suffix(key: int | str | None) -> str:
    if key is None:
        return ""
    if isinstance(key, int):
        return f"[{key}]"
    return f"[{_hcl_quote(key)}]"


def _hcl_quote(s: str) -> str:
    """Quote an instance key the way terraform prints addresses (addrs.StringKey)."""
    out = ['"']
    for i, ch in enumerate(s):
        if ch in '\n\r\t"\\':
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\"}[ch])
        elif ch in "$%" and s[i + 1 : i + 2] == "{":
            out.append(ch + ch)
        elif not ch.isprintable():
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Module instances: lazy, memoized evaluation with cycle protection


@dataclass
class _Expansion:
    mode: str  # "single" | "count" | "for_each"
    keys: list[int | str | None]
    values: list[Any]  # each.value per key (for_each), else None
    known: bool


class _Scope:
    """One module instance: evaluates its variables, locals, outputs and expansions on demand."""

    def __init__(
        self,
        planner: _Planner,
        cfg: _ModuleConfig,
        address: str | None,
        var_source: Callable[[str], Any],
        *,
        path_module: str,
        missing_hint: str,
    ) -> None:
        self.planner, self.cfg, self.address = planner, cfg, address
        self.var_source, self.path_module, self.missing_hint = var_source, path_module, missing_hint
        self.prefix = f"{address}." if address else ""
        self._memo: dict[str, Any] = {}
        self._busy: set[str] = set()

    def _once(self, key: str, compute: Callable[[], Any]) -> Any:
        """Memoized ``compute()``; a re-entrant call (a reference cycle) gets an error ``Unknown``."""
        if key in self._memo:
            return self._memo[key]
        if key in self._busy:
            return Unknown(f"depends on a reference cycle through {self.prefix}{key}", error=True)
        self._busy.add(key)
        try:
            value = compute()
        finally:
            self._busy.discard(key)
        self._memo[key] = value
        return value

    def eval(self, raw: Any, env: Mapping[str, Any] | None = None) -> Any:
        return _eval_top(raw, self, env)

    def var(self, name: str) -> Any:
        return self._once(f"var.{name}", lambda: self._compute_var(name))

    def _compute_var(self, name: str) -> Any:
        decl = self.cfg.variables.get(name)
        if decl is None:
            return Unknown(f"depends on var.{name}, which is not declared", error=True)
        raw = self.var_source(name)
        if raw is _MISSING:
            if "default" not in decl:
                return Unknown(f"depends on var.{name}, which has no value ({self.missing_hint})")
            raw = _eval_top(decl["default"], None)
        return _convert(raw, _type_spec(_ast(decl["type"])) if "type" in decl else None)

    def local(self, name: str) -> Any:
        if name not in self.cfg.locals:
            return Unknown(f"depends on local.{name}, which is not declared", error=True)
        return self._once(f"local.{name}", lambda: self.eval(self.cfg.locals[name]))

    def output(self, name: str) -> Any:
        body = self.cfg.outputs.get(name, {})
        return self._once(f"output.{name}", lambda: self.eval(body.get("value")))

    def expand_resource(self, rtype: str, rname: str) -> _Expansion | Unknown:
        body = self.cfg.resources[(rtype, rname)]
        label = f"{self.prefix}{rtype}.{rname}"
        return self._once(f"{rtype}.{rname}", lambda: self._expand(body, label, "no instances emitted"))

    def resource_value(self, rtype: str, rname: str) -> Any:
        if (rtype, rname) not in self.cfg.resources:
            return Unknown(f"depends on {rtype}.{rname}, which is not declared here", error=True)
        exp = self.expand_resource(rtype, rname)
        if isinstance(exp, Unknown):
            return exp
        attrs = Unknown(f"depends on {self.prefix}{rtype}.{rname} (known only after apply)")
        if not exp.known:
            return attrs
        if exp.mode == "count":
            return [attrs] * len(exp.keys)
        if exp.mode == "for_each":
            return {k: attrs for k in exp.keys}
        return attrs

    def module_instances(self, name: str) -> tuple[_Expansion, list[_Scope]] | Unknown:
        return self._once(f"module.{name}", lambda: self._instantiate(name))

    def _instantiate(self, name: str) -> tuple[_Expansion, list[_Scope]]:
        call = self.cfg.modules[name]
        exp = self._expand(call, f"{self.prefix}module.{name}", "module skipped")
        child_cfg = self.planner.configs[self.cfg.module_dirs[name]]
        root_dir = self.planner.root_dir or "."
        path_module = posixpath.relpath(child_cfg.dir or ".", root_dir)
        scopes = []
        for key, each_value in zip(exp.keys, exp.values, strict=True):
            env: dict[str, Any] = {}
            if exp.mode == "count":
                env["count"] = {"index": key}
            elif exp.mode == "for_each":
                env["each"] = {"key": key, "value": each_value}

            def source(var: str, env: dict[str, Any] = env) -> Any:
                if var in call and var not in MODULE_META_ARGS:
                    return self.eval(call[var], env)
                return _MISSING

            address = f"{self.prefix}module.{name}{_key_suffix(key)}"
            scopes.append(
                _Scope(
                    self.planner,
                    child_cfg,
                    address,
                    source,
                    path_module=path_module,
                    missing_hint="required module input not set",
                )
            )
        return exp, scopes

    def module_value(self, name: str) -> Any:
        if name not in self.cfg.modules:
            return Unknown(f"depends on module.{name}, which is not declared", error=True)
        if name in self.cfg.module_skip:
            return Unknown(f"depends on outputs of module.{name}, whose source is not in the repository")
        instances = self.module_instances(name)
        if isinstance(instances, Unknown):
            return instances
        exp, scopes = instances
        if not exp.known:
            return Unknown(f"depends on module.{name}, whose instances are unknown")
        objs = [{o: s.output(o) for o in s.cfg.outputs} for s in scopes]
        if exp.mode == "count":
            return objs
        if exp.mode == "for_each":
            return dict(zip(exp.keys, objs, strict=True))
        return objs[0]

    def _expand(self, body: Mapping[str, Any], label: str, unknown_for_each: str) -> _Expansion:
        if "count" in body and "for_each" in body:
            self.planner.note(f"{label}: has both count and for_each, which terraform rejects; using count")
        if "count" in body:
            value = self.eval(body["count"])
            problem = value.reason if isinstance(value, Unknown) else None
            if problem is None:
                try:
                    n = _num(value)
                except EvalError as e:
                    problem = f"could not be evaluated ({e})"
                else:
                    if n != int(n) or n < 0:
                        problem = f"is {value!r}, not a whole non-negative number"
                    else:
                        if n > MAX_INSTANCES:
                            self.planner.note(f"{label}: count is {n}; only the first {MAX_INSTANCES} are listed")
                        n = min(int(n), MAX_INSTANCES)
                        return _Expansion("count", list(range(n)), [None] * n, True)
            self.planner.note(f"{label}: count {problem}; assumed 1")
            return _Expansion("count", [0], [None], False)
        if "for_each" in body:
            value = self.eval(body["for_each"])
            items, problem = self._for_each_items(value, label)
            if items is None:
                self.planner.note(f"{label}: for_each {problem}; {unknown_for_each}")
                return _Expansion("for_each", [], [], False)
            return _Expansion("for_each", [k for k, _ in items], [v for _, v in items], True)
        return _Expansion("single", [None], [None], True)

    def _for_each_items(self, value: Any, label: str) -> tuple[list[tuple[str, Any]] | None, str]:
        if isinstance(value, Unknown):
            return None, value.reason
        if isinstance(value, dict):
            return sorted(value.items()), ""
        if isinstance(value, (TfSet, list)):
            elems = _elems(value)
            u = _deep_unknown(elems)
            if u is not None:
                return None, u.reason
            if not all(isinstance(e, (str, int, float)) and not isinstance(e, bool) for e in elems):
                return None, "is not a map or a set of strings"
            if isinstance(value, list):
                self.planner.note(
                    f"{label}: for_each is a list, which terraform rejects (wrap it in toset()); "
                    "keys taken from its elements"
                )
            keys = sorted({_str(e) for e in elems})
            return [(k, k) for k in keys], ""
        return None, f"is a {_type_name(value)}, not a map or a set of strings"


class _Planner:
    """Loads module configs from ``files`` (the ``terraform init`` view) and collects instances."""

    def __init__(self, files: Mapping[str, str], parser: Callable[[str], dict]) -> None:
        self.files = {_norm_file(p): text for p, text in files.items()}
        self.parser = parser
        self.configs: dict[str, _ModuleConfig] = {}
        self.root_dir = ""
        self._notes: dict[str, None] = {}
        self._by_dir: dict[str, list[str]] = {}
        for path in sorted(self.files):
            self._by_dir.setdefault(_norm_dir(posixpath.dirname(path)), []).append(path)
        self._module_dirs = module_dirs(self.files)  # where modules.resolve_source may find a local module

    def note(self, text: str) -> None:
        self._notes.setdefault(text, None)

    def notes(self) -> list[str]:
        return list(self._notes)

    def _parse(self, path: str) -> dict[str, Any]:
        try:
            parsed = self.parser(self.files[path])
        except HclError as e:
            raise _PlanFailure(f"{path}: invalid HCL ({e}); fix the file or exclude the workspace") from e
        return parsed if isinstance(parsed, dict) else {}

    def load_tree(self, d: str, chain: tuple[str, ...]) -> _ModuleConfig:
        """Load the module at ``d`` and, recursively, every local module it calls."""
        if not chain:
            self.root_dir = d
        if d in self.configs:
            return self.configs[d]
        cfg = self._load_dir(d, is_root=not chain)
        self.configs[d] = cfg
        for name, call in cfg.modules.items():
            src = call.get("source")
            where = f"module.{name} (called from {d or '.'})"
            r = resolve_source(d or ".", src, self._module_dirs)
            if r.kind == "not_literal":
                cfg.module_skip[name] = "has no literal source, which terraform rejects; skipped"
                continue
            if r.kind == "remote":
                cfg.module_skip[name] = f'source "{src}" is not a local path (registry, git or URL); resources unknown'
                continue
            if r.kind == "outside":
                cfg.module_skip[name] = f'source "{src}" points outside the repository; resources unknown'
                continue
            child = _norm_dir(r.dir or ".")
            if r.kind == "missing":
                raise _PlanFailure(
                    f"{where}: local source {src!r} resolves to {child or '.'!r}, which has no .tf files "
                    "in the given files; include that directory or fix the source"
                )
            if child in (*chain, d):
                raise _PlanFailure(f"{where}: source {src!r} makes a module cycle through {child or '.'}")
            cfg.module_dirs[name] = child
            self.load_tree(child, (*chain, d))
        return cfg

    def _load_dir(self, d: str, is_root: bool) -> _ModuleConfig:
        paths = self._by_dir.get(d, [])
        tf = [p for p in paths if p.endswith(".tf")]
        for p in paths:
            if p.endswith(".tf.json"):
                self.note(f"{p}: .tf.json files are not read by the static planner")
        if not tf and is_root:
            raise _PlanFailure(f"workspace {d or '.'!r} has no .tf files in the given files")
        cfg = _ModuleConfig(dir=d)
        normal = [p for p in tf if not _is_override(posixpath.basename(p))]
        for path in normal + [p for p in tf if p not in normal]:
            self._merge(cfg, path, self._parse(path), override=path not in normal)
        return cfg

    def _merge(self, cfg: _ModuleConfig, path: str, doc: dict[str, Any], override: bool) -> None:
        for labels, body in _blocks(doc.get("resource", []), 2):
            key = (labels[0], labels[1])
            if key in cfg.resources and not override:
                raise _PlanFailure(f"{path}: duplicate resource {'.'.join(key)}; terraform rejects this config")
            cfg.resources[key] = {**cfg.resources.get(key, {}), **body}
        for labels, body in _blocks(doc.get("module", []), 1):
            if labels[0] in cfg.modules and not override:
                raise _PlanFailure(f"{path}: duplicate module call {labels[0]!r}; terraform rejects this config")
            cfg.modules[labels[0]] = {**cfg.modules.get(labels[0], {}), **body}
        for labels, body in _blocks(doc.get("variable", []), 1):
            cfg.variables[labels[0]] = {**cfg.variables.get(labels[0], {}), **body}
        for labels, body in _blocks(doc.get("output", []), 1):
            cfg.outputs[labels[0]] = {**cfg.outputs.get(labels[0], {}), **body}
        for _, body in _blocks(doc.get("locals", []), 0):
            cfg.locals.update(body)
        for _, body in _blocks(doc.get("terraform", []), 0):
            for _, providers in _blocks(body.get("required_providers", []), 0):
                for local_name, spec in providers.items():
                    cfg.required_providers[local_name] = _source_of(spec) or f"hashicorp/{local_name}"
        if doc.get("import"):
            self.note(f"{path}: import blocks are not modelled (planned as plain creates)")

    def load_tfvars(self, d: str) -> dict[str, Any]:
        """Variable values from the root's tfvars files, later files winning, in terraform's order."""
        names = {posixpath.basename(p): p for p in self._by_dir.get(d, [])}
        order = [n for n in ("terraform.tfvars", "terraform.tfvars.json") if n in names]
        order += sorted(n for n in names if n.endswith((".auto.tfvars", ".auto.tfvars.json")))
        values: dict[str, Any] = {}
        for name in order:
            path = names[name]
            if name.endswith(".json"):
                try:
                    doc = json.loads(self.files[path])
                except json.JSONDecodeError as e:
                    raise _PlanFailure(f"{path}: invalid JSON ({e}); fix the file") from e
                if isinstance(doc, dict):
                    values.update({k: _from_python(v) for k, v in doc.items()})
                continue
            doc = self._parse(path)
            values.update({k: _eval_top(v, None) for k, v in doc.items() if k not in _META_KEYS})
        return values

    def provider(self, cfg: _ModuleConfig, rtype: str, body: Mapping[str, Any]) -> str:
        if rtype == "terraform_data":
            return BUILTIN_TERRAFORM_PROVIDER
        local_name = rtype.split("_", 1)[0]
        ref = body.get("provider")
        if isinstance(ref, str):
            text = ref[2:-1] if ref.startswith("${") and ref.endswith("}") else ref
            name = text.split(".", 1)[0].strip()
            local_name = {"None": "null"}.get(name, name) or local_name  # v7 prints the null keyword as None
        source = cfg.required_providers.get(local_name)
        return _provider_fqn(source) if source else f"{DEFAULT_REGISTRY}/hashicorp/{local_name}"

    def collect(self, scope: _Scope, rows: list[dict[str, Any]]) -> None:
        """Append one row per resource instance of ``scope`` and of its local module instances."""
        for (rtype, rname), body in scope.cfg.resources.items():
            exp = scope.expand_resource(rtype, rname)
            if isinstance(exp, Unknown):  # only reachable through a reference cycle
                self.note(f"{scope.prefix}{rtype}.{rname}: {exp.reason}; skipped")
                continue
            provider = self.provider(scope.cfg, rtype, body)
            _charge(10 * len(exp.keys))  # a row costs far more than an evaluation step
            for key in exp.keys:
                rows.append(
                    {
                        "address": f"{scope.prefix}{rtype}.{rname}{_key_suffix(key)}",
                        "module_address": scope.address,
                        "type": rtype,
                        "name": rname,
                        "provider": provider,
                        "actions": ["create"],
                    }
                )
        for name in scope.cfg.modules:
            if name in scope.cfg.module_skip:
                self.note(f"{scope.prefix}module.{name}: {scope.cfg.module_skip[name]}")
                continue
            instances = scope.module_instances(name)
            if isinstance(instances, Unknown):  # only reachable through a reference cycle
                self.note(f"{scope.prefix}module.{name}: {instances.reason}; skipped")
                continue
            for child in instances[1]:
                self.collect(child, rows)
