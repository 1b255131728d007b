"""Semantics-preserving augmentation of plan-prediction rows: rename, reorder, reformat.

A row is a workspace's files (root module + its local modules, repo-relative paths) and the normalized
resource changes of its plan. Each op rewrites the files so that ``terraform plan`` means exactly the
same thing, and relabels the changes to what the rewritten files plan:

- ``rename``: resource names, variables, locals and module calls get new names, consistently in every
  reference (``type.name``, ``var.x``, ``local.x``, ``module.m``, inside ``${...}`` of strings and
  heredocs, ``depends_on``, ``moved``/``import`` blocks, module call arguments, tfvars keys); change
  addresses follow. Outputs, attribute names, resource/data types and provider names never change.
- ``reorder``: top-level blocks (and tfvars attributes) are shuffled within each file, and the file
  list is shuffled; comments travel with the block under them.
- ``reformat``: indentation width, ``=`` alignment and blank lines inside blocks change; strings,
  heredocs and comments stay byte-identical.

Everything rests on a small HCL lexer that knows strings (with nested interpolations), heredocs
(``<<EOF``, ``<<-EOF``) and comments (``#``, ``//``, ``/* */``), so a ``}`` or ``var.x`` inside a
string or a comment is never mistaken for code. Every output is checked with python-hcl2: a file that
does not parse (or, for reorder/reformat, whose parse tree differs from the original's) falls back to
the original for that op. Rename is all-or-nothing per row: if anything is not understood (a change
address that does not resolve, a name that also appears inside a string literal, an iterator that
shadows a reference root, JSON syntax), the op is skipped with a note rather than risk a wrong label.
Same inputs and seed give identical outputs.
"""

from __future__ import annotations

import json
import logging
import posixpath
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines.collect.hcl import HclError, parse_hcl_inline
from pipelines.hcl_syntax import (
    CLOSE_BRACKETS,
    OPEN_BRACKETS,
    Attr,
    Block,
    HclFile,
    HclLexError,
    Tok,
    lex,
    load_file,
    plain_string,
    walk_blocks,
)

logger = logging.getLogger(__name__)

OPS = ("rename", "reorder", "reformat")
HCL_SUFFIXES = (".tf", ".tfvars")
JSON_SUFFIXES = (".tf.json", ".tfvars.json")
RENAME_P = 0.5  # each safe entity is renamed with this probability (at least one address always is)
REF_ROOTS = ("var", "local", "module")
# fmt: off
NAME_WORDS = (
    "alpha", "amber", "atlas", "beta", "blue", "cobalt", "core", "delta", "east", "edge", "gamma", "green", "jade",
    "main", "nova", "omega", "orion", "primary", "shared", "vega", "west", "zeta",
)
# fmt: on
MAX_SHUFFLE_TRIES = 8


# --------------------------------------------------------------------------------------------------
# Top-level splitting (used by reorder)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopItem:
    """One top-level block or attribute with the comments above it; ``text`` ends with a newline."""

    kind: str  # block | attribute
    name: str  # block type + labels, or the attribute name
    text: str


@dataclass(frozen=True)
class Split:
    header: str  # file-level comments separated from the first item by a blank line
    items: list[TopItem]
    trailer: str  # comments after the last item


def split_top_level(src: str) -> Split:
    """Cut a file into its top-level items; strings, heredocs and comments never end an item."""
    f = load_file("", src)
    toks = f.toks
    items: list[TopItem] = []
    header, prev_end = "", 0
    for it in f.items:
        first, last = (it.key, it.end - 1) if isinstance(it, Attr) else (it.type, it.close)
        nl = next((k for k in range(last + 1, len(toks)) if toks[k].kind == "newline"), None)
        end = len(src) if nl is None else toks[nl].end  # after the line's newline, past trailing comments
        if not items:  # comments above the first item, cut off by a blank line, stay at the top of the file
            header_end = _header_end(src, toks, toks[first].start)
            header, prev_end = src[:header_end], header_end
        if isinstance(it, Attr):
            kind, name = "attribute", toks[it.key].text
        else:
            kind, name = "block", " ".join([toks[it.type].text, *(toks[i].text for i in it.labels)])
        text = src[prev_end:end].lstrip("\n")
        items.append(TopItem(kind, name, text if text.endswith("\n") else text + "\n"))
        prev_end = end
    return Split(header, items, src[prev_end:])


def _header_end(src: str, toks: Sequence[Tok], first: int) -> int:
    """Offset just after the last blank line before ``first`` that is not inside a comment, else 0."""
    cut = 0
    for m in re.finditer(r"\n[ \t]*\n", src[:first]):
        p = m.end()
        if not any(t.start < p - 1 < t.end for t in toks if t.kind == "comment"):
            cut = p
    return cut


def _is_comment_line(line: str) -> bool:
    s = line.strip()
    return s.startswith(("#", "//", "/*", "*"))


def join_top_level(split: Split) -> str:
    """Inverse of split_top_level: one blank line around blocks, none between tfvars attributes."""
    out = split.header
    for k, item in enumerate(split.items):
        if k and (item.kind == "block" or split.items[k - 1].kind == "block"):
            out += "\n"
        out += item.text
    return out + split.trailer


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


def _tree(path: str, src: str) -> Any:
    """python-hcl2's view of a file, with top-level block lists sorted (block order is not semantic)."""
    tree = parse_hcl_inline(src)
    if path.endswith(".tf"):
        tree = {
            k: sorted(v, key=lambda b: json.dumps(b, sort_keys=True)) if isinstance(v, list) else v
            for k, v in tree.items()
        }
    return tree


def _check(path: str, old: str, new: str, same_tree: bool) -> str | None:
    """None when ``new`` parses (and, with ``same_tree``, means what ``old`` means), else why not."""
    try:
        new_tree = _tree(path, new)
    except HclError as e:
        return f"augmented HCL does not parse: {e}"
    if same_tree:
        try:
            old_tree = _tree(path, old)
        except HclError as e:
            return f"original HCL does not parse: {e}"
        if new_tree != old_tree:
            return "augmented HCL parses to a different tree"
    return None


# --------------------------------------------------------------------------------------------------
# Ops: reorder and reformat (per file)
# --------------------------------------------------------------------------------------------------


def _hcl_files(files: Sequence[Mapping[str, str]]) -> list[int]:
    return [k for k, f in enumerate(files) if f["path"].endswith(HCL_SUFFIXES)]


def _reorder_file(src: str, rng: random.Random) -> str:
    split = split_top_level(src)
    order = list(range(len(split.items)))
    if len({t.text for t in split.items}) < 2:
        return src
    for _ in range(MAX_SHUFFLE_TRIES):
        rng.shuffle(order)
        if order != sorted(order):
            break
    else:
        order = order[1:] + order[:1]
    return join_top_level(Split(split.header, [split.items[k] for k in order], split.trailer))


def _reorder(files: list[dict[str, str]], rng: random.Random, notes: list[str]) -> list[dict[str, str]]:
    out = [dict(f) for f in files]
    for k in _hcl_files(files):
        path, src = files[k]["path"], files[k]["content"]
        try:
            new = _reorder_file(src, rng)
        except HclLexError as e:
            notes.append(f"reorder: {path}: cannot split: {e}")
            continue
        if new != src and (why := _check(path, src, new, same_tree=True)):
            notes.append(f"reorder: {path}: {why}")
            continue
        out[k]["content"] = new
    if len(out) > 1:
        before = [f["path"] for f in out]
        for _ in range(MAX_SHUFFLE_TRIES):
            rng.shuffle(out)
            if [f["path"] for f in out] != before:
                break
    return out


@dataclass(frozen=True)
class Style:
    indent: int  # spaces per nesting level
    align: bool  # align "=" of consecutive one-line attributes (terraform fmt), else one space
    blank: str  # keep | compact (no blank lines inside blocks) | spacious (blank line before nested blocks)


STYLES = tuple(Style(i, a, b) for i in (2, 3, 4) for a in (True, False) for b in ("keep", "compact", "spacious"))


@dataclass
class _Line:
    text: str
    protected: bool  # starts inside a string, heredoc or comment: kept byte for byte
    depth: int = 0
    ctx: str = "top"  # innermost bracket: top | body | obj | ( | [
    parent: int = -1  # token index of the innermost opening bracket
    attr: tuple[str, str] | None = None  # (key, value after "=") of a one-line "key = value"
    block_start: bool = False
    open_end: bool = False  # a token (string, heredoc, comment) runs past the end of the line


def _lines(f: HclFile) -> list[_Line]:
    """Per source line: protection, bracket depth and context, and whether it is a one-line attribute."""
    src, toks = f.src, f.toks
    body_opens = {b.open for b in walk_blocks(f.items)}
    block_starts = {toks[b.type].start for b in walk_blocks(f.items)}
    out: list[_Line] = []
    stack: list[int] = []
    k, pos = 0, 0
    for text in src.split("\n"):
        start, end = pos, pos + len(text)
        pos = end + 1
        while k < len(toks) and toks[k].end <= start:
            _push_pop(toks[k], k, stack)
            k += 1
        if k < len(toks) and toks[k].start < start:
            out.append(_Line(text, protected=True))
            continue
        on_line = []
        j = k
        while j < len(toks) and toks[j].start < end:
            on_line.append(j)
            j += 1
        closers = 0
        for i in on_line:
            if toks[i].kind == "punct" and toks[i].text in CLOSE_BRACKETS:
                closers += 1
            else:
                break
        depth = len(stack) - closers
        ctx, parent = "top", -1
        if stack:
            parent = stack[-1]
            opener = toks[parent].text
            ctx = ("body" if parent in body_opens else "obj") if opener == "{" else opener
        line = _Line(
            text, False, depth, ctx, parent, block_start=bool(on_line) and toks[on_line[0]].start in block_starts
        )
        after = list(stack)
        for i in on_line:
            _push_pop(toks[i], i, after)
        crosses = bool(on_line) and toks[on_line[-1]].end > end
        line.open_end = crosses
        if (
            len(on_line) >= 3
            and toks[on_line[0]].kind in ("ident", "string")
            and toks[on_line[1]].is_punct("=")
            and len(after) == len(stack)
            and not crosses
            and ctx in ("top", "body", "obj")
        ):
            key = src[toks[on_line[0]].start : toks[on_line[0]].end]
            line.attr = (key, src[toks[on_line[1]].end : end].strip())
        out.append(line)
    return out


def _push_pop(t: Tok, k: int, stack: list[int]) -> None:
    if t.kind != "punct":
        return
    if t.text in OPEN_BRACKETS:
        stack.append(k)
    elif t.text in CLOSE_BRACKETS and stack:
        stack.pop()


def _reformat_file(path: str, src: str, style: Style) -> str:
    """``src`` re-indented and re-aligned in ``style``; only whitespace outside strings/heredocs/comments."""
    if "\r" in src:
        raise HclLexError("CRLF line endings")
    lines = _lines(load_file(path, src))
    out: list[tuple[_Line, str]] = []
    for ln in lines:
        if ln.protected:
            out.append((ln, ln.text))
            continue
        content = ln.text.lstrip(" \t") if ln.open_end else ln.text.strip(" \t")
        if not content:
            prev_blank = bool(out) and not out[-1][0].protected and not out[-1][1]
            if (ln.ctx == "body" and style.blank == "compact") or (ln.ctx in ("top", "body") and prev_blank):
                continue
            out.append((ln, ""))
            continue
        if ln.block_start and ln.ctx == "body" and style.blank == "spacious" and out:
            prev = out[-1]
            if (
                prev[1]
                and not prev[0].protected
                and not prev[1].rstrip().endswith("{")
                and not _is_comment_line(prev[1])
            ):
                out.append((_Line("", False, ln.depth, ln.ctx, ln.parent), ""))
        out.append((ln, " " * (style.indent * ln.depth) + content))
    return "\n".join(_align(out, style))


def _align(out: list[tuple[_Line, str]], style: Style) -> list[str]:
    """Rewrite runs of one-line attributes sharing a parent: ``key = value`` padded or single-spaced."""
    result: list[str] = []
    k = 0
    while k < len(out):
        ln, text = out[k]
        if ln.attr is None:
            result.append(text)
            k += 1
            continue
        run = [k]
        while k + len(run) < len(out):
            nxt = out[k + len(run)][0]
            if nxt.attr is None or nxt.parent != ln.parent or nxt.depth != ln.depth:
                break
            run.append(k + len(run))
        width = max(len(out[r][0].attr[0]) for r in run) if style.align else 0  # type: ignore[index]
        for r in run:
            line = out[r][0]
            key, value = line.attr  # type: ignore[misc]
            result.append(" " * (style.indent * line.depth) + key.ljust(width) + " = " + value)
        k += len(run)
    return result


def _reformat(files: list[dict[str, str]], rng: random.Random, notes: list[str]) -> list[dict[str, str]]:
    out = [dict(f) for f in files]
    styles = list(STYLES)
    rng.shuffle(styles)
    for k in _hcl_files(files):
        path, src = files[k]["path"], files[k]["content"]
        try:
            new = next((n for s in styles if (n := _reformat_file(path, src, s)) != src), src)
        except HclLexError as e:
            notes.append(f"reformat: {path}: cannot tokenize: {e}")
            continue
        if new != src and (why := _check(path, src, new, same_tree=True)):
            notes.append(f"reformat: {path}: {why}")
            continue
        out[k]["content"] = new
        styles.append(styles.pop(0))  # files of one row get different styles
    return out


# --------------------------------------------------------------------------------------------------
# Op: rename
# --------------------------------------------------------------------------------------------------


class RenameUnsafe(Exception):
    """Renaming this row could produce a wrong label; ``str(e)`` says why."""


@dataclass
class _Module:
    dir: str
    files: list[HclFile] = field(default_factory=list)
    variables: set[str] = field(default_factory=set)
    locals: set[str] = field(default_factory=set)
    resources: set[tuple[str, str]] = field(default_factory=set)
    calls: dict[str, str | None] = field(default_factory=dict)  # module call -> local dir (None: remote)


def _load_modules(files: Sequence[Mapping[str, str]]) -> dict[str, _Module]:
    mods: dict[str, _Module] = {}
    for f in files:
        path = f["path"]
        if path.endswith(JSON_SUFFIXES):
            raise RenameUnsafe(f"{path}: JSON syntax is not supported")
        if not path.endswith(".tf"):
            continue
        try:
            hf = load_file(path, f["content"])
        except HclLexError as e:
            raise RenameUnsafe(f"{path}: {e}") from e
        mod = mods.setdefault(hf.dir, _Module(hf.dir))
        mod.files.append(hf)
        for it in hf.items:
            if isinstance(it, Block):
                _declare(mod, hf, it)
    return mods


def _declare(mod: _Module, hf: HclFile, b: Block) -> None:
    kind, labels = hf.toks[b.type].text, hf.block_labels(b)
    if labels is None:
        raise RenameUnsafe(f"{hf.path}: {kind} block with an interpolated label")
    if kind == "variable" and len(labels) == 1:
        mod.variables.add(labels[0])
    elif kind == "resource" and len(labels) == 2:
        mod.resources.add((labels[0], labels[1]))
    elif kind == "locals":
        mod.locals.update(hf.toks[a.key].text for a in b.items if isinstance(a, Attr))
    elif kind == "module" and len(labels) == 1:
        mod.calls[labels[0]] = _call_dir(hf, b)


def _call_dir(hf: HclFile, b: Block) -> str | None:
    """The repo-relative directory a module block's local ``source`` points at; None for remote sources."""
    for a in b.items:
        if isinstance(a, Attr) and hf.toks[a.key].text == "source":
            value = plain_string(hf.toks[a.eq + 1], hf.src) if a.end == a.eq + 2 else None
            if value is None:
                raise RenameUnsafe(f"{hf.path}: module source is not a plain string")
            if not value.startswith(("./", "../")):
                return None
            target = posixpath.normpath(posixpath.join(hf.dir, value))
            return None if target.startswith("..") else target
    raise RenameUnsafe(f"{hf.path}: module block without source")


def _code_tokens(toks: Sequence[Tok]) -> Iterator[list[Tok]]:
    """Every code token list: the file's top level and each interpolation, recursively."""
    yield list(toks)
    for t in toks:
        for part in t.parts:
            if isinstance(part, list):
                yield from _code_tokens(part)


def _literals(toks: Sequence[Tok], src: str) -> Iterator[str]:
    for seq in _code_tokens(toks):
        for t in seq:
            for part in t.parts:
                if isinstance(part, tuple):
                    yield src[part[0] : part[1]]


def _references(seq: Sequence[Tok], roots: set[str], path: str) -> Iterator[tuple[str, Tok]]:
    """``(root, name token)`` of each ``root.name`` traversal whose root is in ``roots``."""
    for i, t in enumerate(seq):
        if t.kind != "ident" or t.text not in roots or (i and seq[i - 1].is_punct(".")):
            continue
        if i + 1 >= len(seq) or not seq[i + 1].is_punct("."):
            continue
        if i + 2 >= len(seq) or seq[i + 2].kind != "ident":
            raise RenameUnsafe(f"{path}: {t.text}. not followed by a name at offset {t.start}")
        yield t.text, seq[i + 2]


def _shadowing(mod: _Module, roots: set[str]) -> None:
    """Refuse iterators (for expressions, dynamic blocks) that shadow a reference root."""
    for hf in mod.files:
        names: list[str] = []
        for seq in _code_tokens(hf.toks):
            for i, t in enumerate(seq):
                if t.kind == "ident" and t.text == "for" and i + 1 < len(seq) and seq[i + 1].kind == "ident":
                    names.append(seq[i + 1].text)
                    if i + 3 < len(seq) and seq[i + 2].is_punct(",") and seq[i + 3].kind == "ident":
                        names.append(seq[i + 3].text)
        for b in walk_blocks(hf.items):
            labels = hf.block_labels(b) or []
            if hf.toks[b.type].text == "dynamic" and labels:
                names.append(labels[0])
            names += [hf.src[hf.toks[a.eq + 1].start : hf.toks[a.end - 1].end] for a in b.items if _is_iterator(hf, a)]
        if bad := sorted(set(names) & roots):
            raise RenameUnsafe(f"{hf.path}: iterator {bad[0]!r} shadows a reference")


def _is_iterator(hf: HclFile, a: Attr | Block) -> bool:
    return isinstance(a, Attr) and hf.toks[a.key].text == "iterator"


@dataclass(frozen=True)
class _Entity:
    dir: str
    kind: str  # var | local | module | resource
    name: str  # "type.name" for resources

    def pattern(self) -> re.Pattern[str]:
        prefix = "" if self.kind == "resource" else f"{self.kind}."
        return re.compile(rf"(?<![\w.-]){re.escape(prefix + self.name)}(?![\w-])")


def _pick_names(
    mods: dict[str, _Module],
    used_in_changes: set[_Entity],
    rng: random.Random,
    files: Sequence[Mapping[str, str]],
    rename_p: float,
) -> tuple[dict[_Entity, str], list[str]]:
    """Entities to rename and their new names; notes for entities left alone because unsafe."""
    literals = [s for m in mods.values() for hf in m.files for s in _literals(hf.toks, hf.src)]
    for f in files:
        if f["path"].endswith(".tfvars"):
            try:
                literals += list(_literals(lex(f["content"]), f["content"]))
            except HclLexError as e:
                raise RenameUnsafe(f"{f['path']}: {e}") from e
    candidates: list[_Entity] = []
    notes: list[str] = []
    for d in sorted(mods):
        m = mods[d]
        ents = [_Entity(d, "var", n) for n in sorted(m.variables)]
        ents += [_Entity(d, "local", n) for n in sorted(m.locals)]
        ents += [_Entity(d, "module", n) for n in sorted(m.calls)]
        ents += [_Entity(d, "resource", f"{t}.{n}") for t, n in sorted(m.resources)]
        for e in ents:
            if any(e.pattern().search(s) for s in literals):
                notes.append(f"rename: kept {e.kind} {e.name} in {d}: it also appears inside a string")
            else:
                candidates.append(e)
    chosen = [e for e in candidates if rng.random() < rename_p]
    addressed = [e for e in candidates if e in used_in_changes]
    if addressed and not any(e in used_in_changes for e in chosen):
        chosen.append(rng.choice(addressed))
    taken = {w for f in files for w in re.findall(r"[\w-]+", f["content"])}
    names: dict[_Entity, str] = {}
    for e in sorted(chosen, key=lambda e: (e.dir, e.kind, e.name)):
        old = e.name.rsplit(".", 1)[-1]
        names[e] = _fresh_name(old, rng, taken)
    return names, notes


def _fresh_name(old: str, rng: random.Random, taken: set[str]) -> str:
    """A new identifier that occurs nowhere in the row's files (so it cannot capture anything)."""
    word, word2 = rng.sample(NAME_WORDS, 2)
    base = rng.choice((f"{old}_{word}", f"{word}_{old}", word, f"{word}_{word2}"))
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


@dataclass(frozen=True)
class _Step:
    name: str  # module call name, or resource type / name
    key: str  # "" or the instance key with brackets: [0], ["a"]


def parse_address(address: str) -> list[_Step]:
    """``module.a["k"].module.b[0].type.name[1]`` -> steps; keys keep their exact source text."""
    steps, i = [], 0
    while i < len(address):
        m = re.compile(r"[^.\[\]\"]+").match(address, i)
        if not m:
            raise RenameUnsafe(f"cannot parse address {address!r}")
        name, i = m.group(), m.end()
        key = ""
        if i < len(address) and address[i] == "[":
            if address.startswith('["', i):
                j = i + 2
                while j < len(address) and address[j] != '"':
                    j += 2 if address[j] == "\\" else 1
                if not address.startswith('"]', j):
                    raise RenameUnsafe(f"cannot parse address {address!r}")
                end = j + 2
            else:
                end = address.find("]", i) + 1
                if not end or not address[i + 1 : end - 1].isdigit():
                    raise RenameUnsafe(f"cannot parse address {address!r}")
            key, i = address[i:end], end
        steps.append(_Step(name, key))
        if i < len(address):
            if address[i] != ".":
                raise RenameUnsafe(f"cannot parse address {address!r}")
            i += 1
    return steps


def _relabel(change: Mapping[str, Any], mods: dict[str, _Module], root: str, names: dict[_Entity, str]) -> dict:
    """The change as the renamed files will plan it; RenameUnsafe if its address does not resolve."""
    steps = parse_address(change["address"])
    d: str | None = root
    path: list[str] = []
    while len(steps) > 2 and steps[0].name == "module" and not steps[0].key:
        call = steps[1]
        if d is not None:
            if d not in mods or call.name not in mods[d].calls:
                raise RenameUnsafe(f"{change['address']}: module {call.name!r} is not declared in {d}")
            new = names.get(_Entity(d, "module", call.name), call.name)
            d = mods[d].calls[call.name]
        else:
            new = call.name
        path.append(f"module.{new}{call.key}")
        steps = steps[2:]
    if len(steps) != 2 or steps[0].key:
        raise RenameUnsafe(f"{change['address']}: not a managed resource address")
    rtype, rname = steps[0].name, steps[1]
    if (rtype, rname.name) != (change["type"], change["name"]):
        raise RenameUnsafe(f"{change['address']}: type/name fields disagree with the address")
    new_name = rname.name
    if d is not None:
        if d not in mods or (rtype, rname.name) not in mods[d].resources:
            raise RenameUnsafe(f"{change['address']}: resource is not declared in {d}")
        new_name = names.get(_Entity(d, "resource", f"{rtype}.{rname.name}"), rname.name)
    module_address = ".".join(path) or None
    prefix = f"{module_address}." if module_address else ""
    return {
        **change,
        "address": f"{prefix}{rtype}.{new_name}{rname.key}",
        "module_address": module_address,
        "name": new_name,
    }


def _changes_entities(changes: Sequence[Mapping[str, Any]], mods: dict[str, _Module], root: str) -> set[_Entity]:
    """Entities whose rename would change some address (module calls on the path, the resource)."""
    out: set[_Entity] = set()
    for c in changes:
        steps, d = parse_address(c["address"]), root
        while len(steps) > 2 and steps[0].name == "module" and d is not None and d in mods:
            out.add(_Entity(d, "module", steps[1].name))
            d, steps = mods[d].calls.get(steps[1].name), steps[2:]  # type: ignore[assignment]
        if d is not None and len(steps) == 2:
            out.add(_Entity(d, "resource", f"{steps[0].name}.{steps[1].name}"))
    return out


def _edits_for_module(
    mod: _Module, names: dict[_Entity, str], mods: dict[str, _Module]
) -> dict[str, list[tuple[int, int, str]]]:
    """(start, end, text) edits per file path for the renames that live in ``mod``."""
    d = mod.dir
    new = {(e.kind, e.name): n for e, n in names.items() if e.dir == d}
    types = {t for t, _ in mod.resources}
    edits: dict[str, list[tuple[int, int, str]]] = {}
    for hf in mod.files:
        ed = edits.setdefault(hf.path, [])
        for b in hf.items:
            if not isinstance(b, Block):
                continue
            kind, labels = hf.toks[b.type].text, hf.block_labels(b) or []
            key = {"variable": "var", "module": "module"}.get(kind)
            if key and len(labels) == 1 and (key, labels[0]) in new:
                t = hf.toks[b.labels[0]]
                ed.append((t.start, t.end, json.dumps(new[(key, labels[0])])))
            elif kind == "resource" and len(labels) == 2 and ("resource", ".".join(labels)) in new:
                t = hf.toks[b.labels[1]]
                ed.append((t.start, t.end, json.dumps(new[("resource", ".".join(labels))])))
            elif kind == "locals":
                for a in b.items:
                    if isinstance(a, Attr) and ("local", hf.toks[a.key].text) in new:
                        t = hf.toks[a.key]
                        ed.append((t.start, t.end, new[("local", t.text)]))
        for seq in _code_tokens(hf.toks):
            for root, name in _references(seq, set(REF_ROOTS) | types, hf.path):
                key = ("resource", f"{root}.{name.text}") if root in types else (root, name.text)
                if key in new:
                    ed.append((name.start, name.end, new[key]))
    # module call arguments are the child's variables, wherever the call is
    for caller in mods.values():
        for hf in caller.files:
            for b in hf.items:
                if not (isinstance(b, Block) and hf.toks[b.type].text == "module" and _call_dir(hf, b) == d):
                    continue
                for a in b.items:
                    if isinstance(a, Attr) and ("var", hf.toks[a.key].text) in new:
                        t = hf.toks[a.key]
                        edits.setdefault(hf.path, []).append((t.start, t.end, new[("var", t.text)]))
    return edits


def _tfvars_edits(
    files: Sequence[Mapping[str, str]], mods: dict[str, _Module], root: str, names: dict[_Entity, str]
) -> dict[str, list[tuple[int, int, str]]]:
    """Keys of .tfvars files: variables of the module in their directory, else of the root module."""
    edits: dict[str, list[tuple[int, int, str]]] = {}
    for f in files:
        if not f["path"].endswith(".tfvars"):
            continue
        try:
            hf = load_file(f["path"], f["content"])
        except HclLexError as e:
            raise RenameUnsafe(f"{f['path']}: {e}") from e
        d = hf.dir if hf.dir in mods else root
        for a in hf.items:
            if not isinstance(a, Attr):
                raise RenameUnsafe(f"{f['path']}: block in a tfvars file")
            t = hf.toks[a.key]
            if (e := _Entity(d, "var", t.text)) in names:
                edits.setdefault(f["path"], []).append((t.start, t.end, names[e]))
    return edits


def _apply_edits(src: str, edits: Sequence[tuple[int, int, str]]) -> str:
    out, pos = [], 0
    for start, end, text in sorted(set(edits)):
        if start < pos:
            raise RenameUnsafe("overlapping edits")
        out += [src[pos:start], text]
        pos = end
    return "".join([*out, src[pos:]])


@dataclass
class RenameResult:
    files: list[dict[str, str]]
    changes: list[dict[str, Any]]
    names: dict[str, str]  # "<dir>:<kind>:<old>" -> new name
    notes: list[str]


def rename(
    files: Sequence[Mapping[str, str]],
    changes: Sequence[Mapping[str, Any]],
    root: str,
    rng: random.Random,
    rename_p: float = RENAME_P,
) -> RenameResult:
    """Rename entities and relabel changes; RenameUnsafe when that cannot be done with certainty."""
    root = posixpath.normpath(root or ".")
    mods = _load_modules(files)
    if root not in mods:
        raise RenameUnsafe(f"root module {root!r} has no .tf files")
    for m in mods.values():
        _shadowing(m, set(REF_ROOTS) | {t for t, _ in m.resources})
    for c in changes:
        _relabel(c, mods, root, {})  # every address must resolve before anything is renamed
    names, notes = _pick_names(mods, _changes_entities(changes, mods, root), rng, files, rename_p)
    edits: dict[str, list[tuple[int, int, str]]] = {}
    for m in mods.values():
        for path, ed in _edits_for_module(m, names, mods).items():
            edits.setdefault(path, []).extend(ed)
    for path, ed in _tfvars_edits(files, mods, root, names).items():
        edits.setdefault(path, []).extend(ed)
    out = []
    for f in files:
        content = _apply_edits(f["content"], edits.get(f["path"], []))
        if content != f["content"] and (why := _check(f["path"], f["content"], content, same_tree=False)):
            raise RenameUnsafe(f"{f['path']}: {why}")
        out.append({**f, "content": content})
    new_changes = sorted((_relabel(c, mods, root, names) for c in changes), key=lambda c: c["address"])
    return RenameResult(out, new_changes, {f"{e.dir}:{e.kind}:{e.name}": n for e, n in names.items()}, notes)


# --------------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------------


@dataclass
class AugmentResult:
    files: list[dict[str, str]]
    changes: list[dict[str, Any]]
    applied: list[str]  # ops that changed something
    notes: list[str]  # what was skipped or kept, and why
    names: dict[str, str] = field(default_factory=dict)  # renames, "<dir>:<kind>:<old>" -> new


def augment_with_report(
    files: Sequence[Mapping[str, str]],
    changes: Sequence[Mapping[str, Any]],
    root: str,
    seed: int,
    ops: Sequence[str] = OPS,
    *,
    rename_p: float = RENAME_P,
) -> AugmentResult:
    """Apply ``ops`` in order; each op that cannot be done safely leaves its input as it was.

    ``rename_p`` is the chance that each safely renameable entity is renamed (1.0: all of them).
    """
    if unknown := [op for op in ops if op not in OPS]:
        raise ValueError(f"unknown augmentation op(s) {unknown}; choose from {list(OPS)}")
    res = AugmentResult([dict(f) for f in files], [dict(c) for c in changes], [], [])
    for op in ops:
        rng = random.Random(f"tfpredict-augment:{seed}:{op}")
        before = (res.files, res.changes)
        if op == "rename":
            try:
                r = rename(res.files, res.changes, root, rng, rename_p)
            except RenameUnsafe as e:
                res.notes.append(f"rename: skipped: {e}")
                continue
            res.files, res.changes, res.names = r.files, r.changes, r.names
            res.notes += r.notes
        elif op == "reorder":
            res.files = _reorder(res.files, rng, res.notes)
        else:
            res.files = _reformat(res.files, rng, res.notes)
        if (res.files, res.changes) != before:
            res.applied.append(op)
    for note in res.notes:
        logger.info("augment (seed %d): %s", seed, note)
    return res


def augment(
    files: list[dict[str, Any]],
    changes: list[dict[str, Any]],
    root: str,
    seed: int,
    ops: Sequence[str] = OPS,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """New files and relabelled changes (same dict shapes), deterministic by ``seed``.

    Ops that cannot be applied safely are skipped and logged; see :func:`augment_with_report` for
    the notes and the rename map.
    """
    res = augment_with_report(files, changes, root, seed, ops)
    return res.files, res.changes
