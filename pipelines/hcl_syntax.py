"""A small HCL lexer and body parser that keep exact source positions.

python-hcl2 gives values, not positions (v7 has block lines only). Rewriting files without changing their
meaning (``pipelines/dataset/augment.py``) and pointing at the line of an attribute (KICS search keys in
``pipelines/dataset/rego.py``) need the tokens themselves: strings (with nested interpolations) and heredocs
(``<<EOF``, ``<<-EOF``) are single tokens, comments (``#``, ``//``, ``/* */``) and newlines are tokens, so a
``}`` or ``var.x`` inside a string or a comment is never mistaken for code.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

# --------------------------------------------------------------------------------------------------
# Lexer
# --------------------------------------------------------------------------------------------------


class HclLexError(ValueError):
    """Text this lexer does not understand as HCL (callers fall back: augment keeps the original)."""


Lit = tuple[int, int]  # a literal span of a string or heredoc


@dataclass
class Tok:
    """One token. ``string`` and ``heredoc`` tokens hold their literal spans and interpolated code."""

    kind: str  # ident | number | punct | string | heredoc | comment | newline
    start: int
    end: int
    text: str
    parts: list[Lit | list[Tok]] = field(default_factory=list)

    def is_punct(self, p: str) -> bool:
        return self.kind == "punct" and self.text == p


_IDENT_RE = re.compile(r"[^\W\d][\w-]*")
_NUM_RE = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_HEREDOC_RE = re.compile(r"<<(-?)([^\W\d][\w-]*)\r?\n")
_PUNCT2 = ("...", "==", "!=", "<=", ">=", "&&", "||", "=>", "::")
_PUNCT1 = "{}[]()=.,:?!+-*/%<>~"
OPEN_BRACKETS = {"{": "}", "[": "]", "(": ")"}
CLOSE_BRACKETS = {v: k for k, v in OPEN_BRACKETS.items()}


class _Lexer:
    def __init__(self, src: str) -> None:
        self.src, self.pos = src, 0

    def fail(self, what: str) -> HclLexError:
        line = self.src.count("\n", 0, self.pos) + 1
        return HclLexError(f"{what} at line {line}")

    def code(self, interpolation: bool) -> list[Tok]:
        """Tokens up to the end of text, or (``interpolation``) up to the unmatched ``}``, consumed."""
        src, toks, depth = self.src, [], 0
        while True:
            if self.pos >= len(src):
                if interpolation:
                    raise self.fail("unterminated interpolation")
                return toks
            start, c = self.pos, src[self.pos]
            if c in " \t\r":
                self.pos += 1
            elif c == "\n":
                self.pos += 1
                toks.append(Tok("newline", start, self.pos, "\n"))
            elif c == "#" or src.startswith("//", start):
                end = src.find("\n", start)
                self.pos = len(src) if end < 0 else end
                toks.append(Tok("comment", start, self.pos, src[start : self.pos]))
            elif src.startswith("/*", start):
                end = src.find("*/", start + 2)
                if end < 0:
                    raise self.fail("unterminated /* comment")
                self.pos = end + 2
                toks.append(Tok("comment", start, self.pos, src[start : self.pos]))
            elif c == '"':
                toks.append(self.quoted())
            elif src.startswith("<<", start):
                if not (m := _HEREDOC_RE.match(src, start)):
                    raise self.fail("malformed heredoc header")
                toks.append(self.heredoc(m))
            elif m := _IDENT_RE.match(src, start):
                self.pos = m.end()
                toks.append(Tok("ident", start, self.pos, m.group()))
            elif m := _NUM_RE.match(src, start):
                self.pos = m.end()
                toks.append(Tok("number", start, self.pos, m.group()))
            elif interpolation and c == "}" and depth == 0:
                self.pos += 1
                return toks
            else:
                p = next((p for p in _PUNCT2 if src.startswith(p, start)), c if c in _PUNCT1 else "")
                if not p:
                    raise self.fail(f"unexpected character {c!r}")
                depth += (p == "{") - (p == "}")
                self.pos += len(p)
                toks.append(Tok("punct", start, self.pos, p))

    def quoted(self) -> Tok:
        """A ``"..."`` string: escapes, ``$${``/``%%{`` literals and ``${ }``/``%{ }`` templates."""
        src, start = self.src, self.pos
        self.pos += 1
        parts: list[Lit | list[Tok]] = []
        lit = self.pos
        while True:
            if self.pos >= len(src) or src[self.pos] == "\n":
                raise self.fail("unterminated string")
            c = src[self.pos]
            if c == "\\":
                self.pos += 2
            elif (after := self.template(parts, lit)) is not None:
                lit = after
            elif c == '"':
                parts.append((lit, self.pos))
                self.pos += 1
                return Tok("string", start, self.pos, src[start : self.pos], parts)
            else:
                self.pos += 1

    def template(self, parts: list[Lit | list[Tok]], lit: int) -> int | None:
        """At ``$${``/``%%{`` (escaped) or ``${``/``%{`` (an interpolation, lexed as code into ``parts``): consume
        it and return where the literal text continues; None anywhere else."""
        if self.src.startswith(("$${", "%%{"), self.pos):
            self.pos += 3
            return lit
        if self.src.startswith(("${", "%{"), self.pos):
            parts.append((lit, self.pos))
            self.pos += 2
            parts.append(self.code(interpolation=True))
            return self.pos
        return None

    def heredoc(self, header: re.Match[str]) -> Tok:
        """A heredoc from ``<<EOF`` to its closing marker line (the marker may be indented)."""
        src, start = self.src, self.pos
        closing = re.compile(r"[ \t]*" + re.escape(header.group(2)) + r"(?=\r?\n|\r?\Z)")
        self.pos = header.end()
        parts: list[Lit | list[Tok]] = []
        lit, line_start = self.pos, True
        while True:
            if self.pos >= len(src):
                raise self.fail(f"unterminated heredoc {header.group(2)}")
            if line_start and (m := closing.match(src, self.pos)):
                parts.append((lit, self.pos))
                self.pos = m.end()
                return Tok("heredoc", start, self.pos, src[start : self.pos], parts)
            line_start = False
            if src[self.pos] == "\n":
                self.pos += 1
                line_start = True
            elif (after := self.template(parts, lit)) is not None:
                lit = after
            else:
                self.pos += 1


def lex(src: str) -> list[Tok]:
    """Top-level tokens of an HCL file; strings and heredocs are single tokens. HclLexError if broken."""
    return _Lexer(src).code(interpolation=False)


def plain_string(tok: Tok, src: str) -> str | None:
    """The value of a quoted string without interpolation or escapes, else None."""
    if tok.kind != "string" or len(tok.parts) != 1 or not isinstance(tok.parts[0], tuple):
        return None
    a, b = tok.parts[0]
    return None if "\\" in src[a:b] else src[a:b]


# --------------------------------------------------------------------------------------------------
# Structure: bodies of attributes and blocks
# --------------------------------------------------------------------------------------------------


@dataclass
class Attr:
    key: int  # token indices into the file's top-level token list
    eq: int
    end: int  # one past the last value token


@dataclass
class Block:
    type: int
    labels: list[int]
    open: int
    close: int
    items: list[Attr | Block]


def parse_body(toks: Sequence[Tok], i: int = 0, nested: bool = False) -> tuple[list[Attr | Block], int]:
    """Attributes and blocks of a body starting at token ``i``; for a nested body, stops at its ``}``."""
    items: list[Attr | Block] = []
    while i < len(toks):
        t = toks[i]
        if t.kind in ("newline", "comment"):
            i += 1
            continue
        if nested and t.is_punct("}"):
            return items, i
        if t.kind != "ident":
            raise HclLexError(f"expected an attribute or block, found {t.text!r} at offset {t.start}")
        j = i + 1
        if j < len(toks) and toks[j].is_punct("="):
            end = _value_end(toks, j + 1, nested)
            items.append(Attr(i, j, end))
            i = end
            continue
        labels = []
        while j < len(toks) and toks[j].kind in ("string", "ident"):
            labels.append(j)
            j += 1
        if j >= len(toks) or not toks[j].is_punct("{"):
            raise HclLexError(f"block {t.text!r} at offset {t.start} has no body")
        inner, close = parse_body(toks, j + 1, nested=True)
        items.append(Block(i, labels, j, close, inner))
        i = close + 1
    if nested:
        raise HclLexError("unterminated block body")
    return items, i


def _value_end(toks: Sequence[Tok], i: int, nested: bool) -> int:
    """One past the last token of an attribute value: the newline at bracket depth 0 ends it."""
    depth, start = 0, i
    while i < len(toks):
        t = toks[i]
        if depth == 0 and (t.kind == "newline" or (nested and t.is_punct("}"))):
            break
        if t.kind == "punct" and t.text in OPEN_BRACKETS:
            depth += 1
        elif t.kind == "punct" and t.text in CLOSE_BRACKETS:
            depth -= 1
            if depth < 0:
                raise HclLexError(f"unbalanced {t.text!r} at offset {t.start}")
        i += 1
    while i > start and toks[i - 1].kind == "comment":
        i -= 1
    if i == start:
        raise HclLexError(f"attribute without a value at offset {toks[start - 1].start}")
    return i


def walk_blocks(items: Sequence[Attr | Block]) -> Iterator[Block]:
    for it in items:
        if isinstance(it, Block):
            yield it
            yield from walk_blocks(it.items)


@dataclass
class HclFile:
    path: str
    src: str
    toks: list[Tok]
    items: list[Attr | Block]

    @property
    def dir(self) -> str:
        return posixpath.dirname(self.path) or "."

    def block_labels(self, b: Block) -> list[str] | None:
        """A block's labels as plain strings (identifiers too), None if any is interpolated."""
        out = []
        for i in b.labels:
            t = self.toks[i]
            v = t.text if t.kind == "ident" else plain_string(t, self.src)
            if v is None:
                return None
            out.append(v)
        return out


def load_file(path: str, src: str) -> HclFile:
    toks = lex(src)
    items, _ = parse_body(toks)
    return HclFile(path, src, toks, items)


def line_of(src: str, offset: int) -> int:
    """1-based line number of a character offset."""
    return src.count("\n", 0, offset) + 1
