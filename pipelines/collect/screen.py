"""Safety screening before terraform ever sees a workspace (ARCHITECTURE.md, security model).

``terraform init`` fetches module sources and backends; ``plan`` runs providers, reads data sources
(``external`` runs any program, ``http`` reaches the network, ``terraform_remote_state`` reads state from
elsewhere) and evaluates file functions. A workspace is blocked — never run — when it uses any of these.
Providers outside the allowlist are not blocked: they are routed to the static planner.

The screen reads the parsed tree (python-hcl2 v7, and ``.tf.json`` in the same shape), every block at any depth,
and resolves module sources with ``modules.resolve_source``. It is a pre-filter that gives clear reasons; the
bubblewrap sandbox is the barrier. So constructs whose effect depends on values (a file path held in a variable)
are recorded as ``risky`` signals, not blocked.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from pipelines.collect.analyze import ParsedWorkspace, nested_blocks
from pipelines.collect.modules import decode_escapes, labelled, module_calls, module_dirs, repo_path, resolve_source

# Bump whenever a rule changes: plans rows record it, and a rerun replans rows screened under older rules.
SCREEN_RULES_VERSION = 2

BLOCKED_DATA_SOURCES = ("external", "http", "terraform_remote_state")
# Functions that read (or name) host paths. A literal path that leaves the repository could put host files
# (e.g. /proc/self/environ) into the plan: blocked. A computed path is a signal (the sandbox holds).
FILE_FUNCTIONS = (
    "file",
    "filebase64",
    "filebase64sha256",
    "filebase64sha512",
    "fileexists",
    "filemd5",
    "filesha1",
    "filesha256",
    "filesha512",
    "fileset",
    "templatefile",
    "pathexpand",
    "abspath",
)
# Anywhere in a string that holds code, inside string literals too: v7 renders some nested literals without
# quotes or as Python reprs, so a quote-aware search could be desynchronised into missing a call.
_CALL = re.compile(r"(?<![\w.])(" + "|".join(sorted(FILE_FUNCTIONS, key=len, reverse=True)) + r")\s*\(")
_MAX_NESTING = 50  # templates inside interpolations inside templates ...; deeper reads as unterminated
_ESCAPE_LAYERS = (0, 1, 2)
# Hostile input bounds: a call's arguments are read from this many characters after its "(" (a longer path
# is judged by its literal prefix), and a workspace with more calls than this is blocked rather than screened.
_ARG_WINDOW = 1024
_MAX_CALLS = 10_000
DYNAMIC_PATH = "file_function_dynamic_path"


@dataclass
class Screen:
    blocked: list[str] = field(default_factory=list)  # reasons; non-empty → never run terraform
    providers_outside: list[str] = field(default_factory=list)  # → static planner
    risky: list[str] = field(default_factory=list)  # signals for plans.risky_constructs; never block alone

    @property
    def status(self) -> str:
        return "blocked" if self.blocked else "ok"


def screen(
    parsed: ParsedWorkspace,
    files: Sequence[Mapping[str, str]],
    providers: Collection[str],
    allowed_providers: Collection[str],
    *,
    root: str = ".",
    history: bool = False,
) -> Screen:
    """Reasons to block the workspace rooted at ``root``, its risk signals, and the providers terraform lacks.

    ``files`` are the workspace's files (templates read by ``templatefile`` are screened too).
    """
    docs = parsed.docs
    texts = {posixpath.normpath(f["path"]): f["content"] for f in files}
    calls = list(islice(_file_functions(docs, texts, root), _MAX_CALLS + 1))
    if len(calls) > _MAX_CALLS:
        calls = [(f"file_function_budget: more than {_MAX_CALLS} file-function calls, too many to screen", "")]
    findings = [
        *_data_sources(docs),
        *_terraform_settings(docs),
        *_provisioners(docs, history),
        *_module_sources(docs),
        *calls,
    ]
    return Screen(
        blocked=sorted({reason for reason, _ in findings if reason}),
        providers_outside=sorted(set(providers) - set(allowed_providers)),
        risky=sorted({signal for _, signal in findings if signal}),
    )


Finding = tuple[str, str]  # (block reason or "", risk signal or "")


def _address(keys: tuple[str, ...], *labels: str) -> str:
    """``resource.null_resource.p`` → ``null_resource.p``; nested blocks keep their path (``check.c.data.http.x``)."""
    parts = keys[1:] if keys[:1] == ("resource",) else keys
    return ".".join((*parts, *labels))


def _data_sources(docs: Mapping[str, Mapping[str, Any]]) -> Iterator[Finding]:
    for path, keys, (type_, name), _body in nested_blocks(docs, "data", 2):
        if type_ in BLOCKED_DATA_SOURCES:
            address = _address(keys, "data", type_, name)
            yield f"data_source_{type_}: {path} {address} would run at plan time", f"data.{type_}"


def _terraform_settings(docs: Mapping[str, Mapping[str, Any]]) -> Iterator[Finding]:
    for path, _keys, _labels, body in nested_blocks(docs, "terraform", 0):
        if "backend" in body:
            kinds = [labels[0] for labels, _b in labelled(body["backend"], 1)]
            yield f"backend: {path} declares backend {kinds} (state lives elsewhere)", ""
        if "cloud" in body:
            yield f"cloud: {path} declares a terraform cloud block", ""


def _provisioners(docs: Mapping[str, Mapping[str, Any]], history: bool) -> Iterator[Finding]:
    """Provisioners run only at apply; history mode applies the prior commit, so they block there."""
    for path, keys, _labels, _body in nested_blocks(docs, "provisioner", 1):
        reason = f"provisioner: {path} {_address(keys)} would run at apply (history mode)"
        yield reason if history else "", "provisioner"


def _module_sources(docs: Mapping[str, Mapping[str, Any]]) -> Iterator[Finding]:
    """Every module call of every file (child modules too) through the one resolver."""
    dirs = module_dirs(docs)
    for path, doc in docs.items():
        caller = posixpath.dirname(posixpath.normpath(path)) or "."
        for name, source in module_calls(doc):
            r = resolve_source(caller, source, dirs)
            if r.blocked:
                yield r.reason(f"{path} module.{name}"), "remote_module" if r.kind == "remote" else ""


# --------------------------------------------------------------------------------------------------
# File functions in expressions (v7 renders expressions as strings: "${file(var.p)}", heredocs as templates)
# --------------------------------------------------------------------------------------------------


def _file_functions(docs: Mapping[str, Mapping[str, Any]], texts: Mapping[str, str], root: str) -> Iterator[Finding]:
    for path, doc in docs.items():
        module_dir = posixpath.dirname(posixpath.normpath(path)) or "."
        refs = {"path.root": ".", "path.cwd": ".", "path.module": posixpath.relpath(module_dir, root)}
        for text in _code_strings(doc):
            yield from _calls_in(path, text, refs, texts, root)


def _calls_in(
    path: str, text: str, refs: Mapping[str, str], texts: Mapping[str, str], root: str, *, in_template: bool = False
) -> Iterator[Finding]:
    """Check every file-function call in one string; follow ``templatefile`` into a template the workspace holds.

    A template may call ``file()`` itself (only ``templatefile`` is barred there), and it sees no ``path.*``.
    """
    for m in _CALL.finditer(text):
        if text[max(0, m.start() - 64) : m.start()].rstrip().endswith(("$${", "%%{")):
            continue  # an escaped template sequence: literal text for terraform too
        func, args = m.group(1), _leading_args(text, m.end())
        finding = _check_call(path, func, args, refs, root)
        yield finding
        target = _template_target(args, refs, root) if func == "templatefile" and not finding[0] else None
        if target in texts and not in_template:
            yield from _calls_in(target, texts[target], {}, texts, root, in_template=True)


def _template_target(args: list[str], refs: Mapping[str, str], root: str) -> str | None:
    """The repo path a literal ``templatefile`` path names (as v7 left it, or unescaped once)."""
    for layers in (0, 1):
        part = _static_path(args[0], refs, layers) if args else None
        if part and part[1]:
            return repo_path(root, part[0])
    return None


def _code_strings(doc: Any) -> Iterator[str]:
    """Every string of a parsed file (values and keys, any depth) that holds an interpolation or directive."""
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "${" in node.replace("$${", "") or "%{" in node.replace("%%{", ""):
                yield node
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())


def _check_call(path: str, func: str, args: list[str], refs: Mapping[str, str], root: str) -> Finding:
    """Block a path whose literal part already leaves the repository (``"/etc/${var.x}"`` does, whatever
    ``var.x`` holds); flag one that is computed.

    v7 leaves string escapes at different levels by position (decoded in a top-level template, raw inside
    expressions, doubled inside an object passed to a call), so the literal is checked at each level.
    """
    n_paths = 2 if func == "fileset" else 1  # fileset(path, pattern) globs path/pattern
    complete = True
    for layers in _ESCAPE_LAYERS:
        parts = [_static_path(a, refs, layers) for a in args[:n_paths]]
        prefix, complete = _joined([*parts, *[None] * (n_paths - len(parts))])
        if prefix is not None and repo_path(root, prefix) is None:
            shown = ", ".join(_unquote(a) for a in args[:n_paths])[:60]
            return f"file_function: {path} {func}({shown}) reads outside the workspace", ""
    return "", "" if complete else DYNAMIC_PATH


def _joined(parts: list[tuple[str, bool] | None]) -> tuple[str | None, bool]:
    """The literal prefix of path parts joined with ``/`` (None if the first is computed), and whether it is all."""
    texts: list[str] = []
    for part in parts:
        if part is None:
            return ("/".join(texts) if texts else None), False
        texts.append(part[0])
        if not part[1]:
            return "/".join(texts), False
    return "/".join(texts), True


def _static_path(arg: str, refs: Mapping[str, str], layers: int, depth: int = 0) -> tuple[str, bool] | None:
    """A path argument's value relative to the root module, as far as it is literal: (text, whole value?).

    ``"${path.module}/x"`` and bare ``path.root`` are literal; a variable, local, call or heredoc with
    interpolation ends the literal part; ``"${"/etc"}/x"`` is literal too, and so is the prefix of a literal
    cut off by the argument window. Literal text is unescaped ``layers`` times. None when the argument is not
    a string literal at all.
    """
    if arg in refs:
        return refs[arg], True
    if not arg or arg[0] not in "\"'":
        return None
    end = _string_end(arg, 0)
    if end < len(arg):  # a literal followed by more code: an expression
        return None
    closed = end == len(arg)
    body, out, lit, i = arg[1:-1] if closed else arg[1:], [], [], 0
    while i < len(body):
        if body.startswith(("$${", "%%{"), i):
            lit.append(body[i + 1 : i + 3])
            i += 3
        elif body.startswith("${", i):
            end = _interp_end(body, i + 2)
            inner = body[i + 2 : end - 1].strip()
            out.append(_decoded("".join(lit), layers))
            lit = []
            value = refs.get(inner) if inner in refs else _literal_value(inner, refs, layers, depth)
            if value is None:
                return "".join(out), False
            out.append(value)
            i = end
        elif body.startswith("%{", i):
            out.append(_decoded("".join(lit), layers))
            return "".join(out), False
        else:
            lit.append(body[i])
            i += 1
    out.append(_decoded("".join(lit), layers))
    return "".join(out), closed


def _literal_value(expr: str, refs: Mapping[str, str], layers: int, depth: int) -> str | None:
    """The value of an interpolated expression that is itself a literal string (bounded nesting), else None."""
    if depth >= _MAX_NESTING:
        return None
    part = _static_path(expr, refs, layers, depth + 1)
    return part[0] if part and part[1] else None


def _decoded(text: str, layers: int) -> str:
    for _ in range(layers):
        text = decode_escapes(text)
    return text


def _unquote(arg: str) -> str:
    """A literal argument as the reason shows it: without its quotes (a cut-off one has only the first)."""
    if not arg or arg[0] not in "\"'":
        return arg
    return arg[1:-1] if len(arg) >= 2 and arg[-1] == arg[0] else arg[1:]


def _leading_args(text: str, start: int, n: int = 2) -> list[str]:
    """The first ``n`` arguments of the call whose ``(`` ends at ``start``, stripped; the last one cut short
    when the call does not close within ``_ARG_WINDOW`` characters.

    An argument that starts with a backslash sits in an escaped layer (v7 re-renders some nested values);
    such text is decoded until the argument stands unescaped.
    """
    rest = text[start : start + _ARG_WINDOW]
    for _ in range(4):
        if not rest.lstrip().startswith("\\"):
            break
        rest = decode_escapes(rest)
    args: list[str] = []
    arg_start, depth, j = 0, 0, 0
    while j < len(rest) and len(args) < n:
        c = rest[j]
        if c in "\"'":
            j = _string_end(rest, j)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                args.append(rest[arg_start:j])
                break
            depth -= 1
        elif c == "," and depth == 0:
            args.append(rest[arg_start:j])
            arg_start = j + 1
        j += 1
    else:
        if len(args) < n:  # never closed: the partial argument is judged by its literal prefix
            args.append(rest[arg_start:])
    return [a.strip() for a in args if a.strip()]


def _string_end(text: str, i: int, nesting: int = 0) -> int:
    """Index after the string literal opening at ``text[i]`` (``"`` or a v7 Python-repr ``'``); past
    ``len(text)`` when it is not terminated."""
    quote, j = text[i], i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
        elif quote == '"' and text.startswith(("$${", "%%{"), j):
            j += 3
        elif quote == '"' and text.startswith(("${", "%{"), j):
            j = _interp_end(text, j + 2, nesting + 1)
        elif text[j] == quote:
            return j + 1
        else:
            j += 1
    return len(text) + 1


def _interp_end(text: str, i: int, nesting: int = 0) -> int:
    """Index after the ``}`` that closes an interpolation whose code starts at ``i``, or len(text)."""
    if nesting > _MAX_NESTING:
        return len(text)
    depth = 0
    while i < len(text):
        c = text[i]
        if c in "\"'":
            i = _string_end(text, i, nesting)
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            if depth == 0:
                return i + 1
            depth -= 1
        i += 1
    return len(text)
