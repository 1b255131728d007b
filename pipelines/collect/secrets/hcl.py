"""Terraform-shaped rules: credential-named assignments, heredocs, variable defaults, name/value pairs,
and detect-secrets' KeywordDetector where our rules do not have the last word.

Block and heredoc ends are found in one linear pass, so a hostile file costs linear time.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

from detect_secrets.plugins.keyword import (
    DENYLIST_REGEX,
    QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
    REGEX_BY_FILETYPE,
)
from detect_secrets.util.filetype import determine_file_type

from pipelines.collect.secrets.kinds import _Span
from pipelines.collect.secrets.plugins import _Detectors
from pipelines.collect.secrets.values import _kind_for, _name_tier

# The body of a one-line HCL string; a `${...}` may hold quotes. Unambiguous and possessive, so a
# hostile line of unclosed `${` cannot make the regex backtrack exponentially.
_DQ_BODY = r"(?:\\.|[$%]\{[^}\n]*\}|[$%](?!\{)|[^\"\\\n$%])*+"
_HCL_STRING = re.compile(rf'"(?P<body>{_DQ_BODY})"')

# Credential-named assignments: key = "literal" | key: "literal" | key => "literal" | key = <<EOF,
# also wrapped in up to three calls (`password = sensitive("...")`).
# The lookaheads are bounded so that a long minified line costs O(length), not O(length^2).
_CRED_FRAGMENT = r"(?i:pass|pwd|secret|token|cred|key|auth|sas|conn|psk|bearer|contrase)"
_ASSIGN = re.compile(
    r"(?P<key>\"(?=[^\"\n]{0,128}?" + _CRED_FRAGMENT + r")[^\"\n]{1,128}\""
    r"|'(?=[^'\n]{0,128}?" + _CRED_FRAGMENT + r")[^'\n]{1,128}'"
    r"|(?<![\w.\-])(?=[\w.\-]{0,128}?" + _CRED_FRAGMENT + r")[A-Za-z_][\w.\-]{0,127})"
    r"[ \t]*(?:=>|=(?![=>])|:(?![:=]))[ \t]*"
    r"(?:(?:[A-Za-z_]\w{0,30}\([ \t]*){0,3}"  # the first argument of sensitive("..."), base64decode("...")
    r"(?:\"(?P<dq>" + _DQ_BODY + r")\"|'(?P<sq>(?:\\.|[^'\\\n])*+)')"
    r"|<<-?(?P<tag>[A-Za-z_][\w-]*)[ \t]*\r?\n)"
)


@functools.lru_cache(maxsize=256)
def _heredoc_terminator(tag: str) -> re.Pattern[str]:
    return re.compile(rf"^[ \t]*{re.escape(tag)}[ \t]*\r?$", re.M)


class _Heredocs:
    """Heredoc terminators of one text, memoized per tag: searching afresh from each of thousands
    of unterminated ``<<EOF`` in a hostile file would be quadratic."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._last: dict[str, tuple[int, re.Match[str] | None]] = {}

    def terminator(self, tag: str, pos: int) -> re.Match[str] | None:
        cached = self._last.get(tag)
        if cached is not None:
            searched_from, found = cached
            if searched_from <= pos and (found is None or pos <= found.start()):
                return found
        found = _heredoc_terminator(tag).search(self.text, pos)
        self._last[tag] = (pos, found)
        return found

    def body(self, body_start: int, tag: str) -> tuple[int, int]:
        """(start, end) of a heredoc body: first to last body line, without the final newline.

        An unterminated heredoc runs to the end of the text (the file is not valid HCL anyway)."""
        term = self.terminator(tag, body_start)
        end = term.start() if term else len(self.text)
        while end > body_start and self.text[end - 1] in "\r\n":
            end -= 1
        return body_start, end


def _assignment_spans(text: str, lines: list[tuple[int, int]], heredocs: _Heredocs) -> Iterator[_Span]:
    matches = (m for start, end in lines for m in _ASSIGN.finditer(text, start, min(end + 1, len(text))))
    covered = 0  # end of the last heredoc body: assignments inside it are its content
    for m in matches:
        key = m.group("key")
        if m.start() < covered or _name_tier(key) is None:
            continue
        if m.group("tag"):
            start, end = heredocs.body(m.end(), m.group("tag"))
            covered = end
            while start < end and text[start] in " \t":
                start += 1
        else:
            group = "dq" if m.group("dq") is not None else "sq"
            start, end = m.span(group)
        kind = _kind_for(key, text[start:end])
        if kind is not None:
            yield start, end, kind


_KEYWORD_HINT = re.compile(DENYLIST_REGEX, re.I)
_YAML_COMMENT = re.compile(r"[ \t]+#")


def _keyword_spans(text: str, lines: list[tuple[int, int]], path: str, d: _Detectors) -> Iterator[_Span]:
    """detect-secrets' KeywordDetector on the lines that hold one of its keywords.

    It yields values only, so each is located in its line; where the line is a plain
    ``key = "value"`` assignment our Terraform rules have the last word (KeywordDetector flags
    ``secret_name = "app"`` and ``password_length = "16"``; we keep those).
    """
    groups: dict[re.Pattern[str], int] | None = None
    for line_start, line_end in lines:
        hint = _KEYWORD_HINT.search(text, line_start, line_end)
        if hint is None:
            continue
        if groups is None:
            groups = REGEX_BY_FILETYPE.get(determine_file_type(path), QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)
        line = text[line_start:line_end]
        if groups is QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP and not any(q in line for q in "\"'`"):
            continue  # all of those regexes need a quoted value: skip `password = var.x` cheaply
        for found in d.keyword.analyze_string(line, denylist_regex_to_group=groups):
            value = _YAML_COMMENT.split(found, 1)[0]  # its YAML regex takes the line's comment too
            idx = line.find(value, hint.start() - line_start)
            idx = line.find(value) if idx < 0 else idx
            if idx < 0 or not value:
                continue
            name = hint.group(0)
            for a in _ASSIGN.finditer(line):
                group = "dq" if a.group("dq") is not None else "sq"
                if a.group(group) is not None and a.start(group) <= idx <= a.end(group):
                    name = a.group("key")
                    break
            kind = _kind_for(name, value)
            if kind is not None:
                yield line_start + idx, line_start + idx + len(value), kind


_VARIABLE = re.compile(r'(?m)^[ \t]*variable[ \t]+"(?P<name>[^"\n]*)"[ \t]*\{')
_DEFAULT = re.compile(r"(?:(?m:^)|\{)[ \t]*default[ \t]*=[ \t]*")
_SENSITIVE = re.compile(r"(?:(?m:^)|[{\s])sensitive[ \t]*=[ \t]*true\b")
_HEREDOC_START = re.compile(r"<<-?([A-Za-z_][\w-]*)[^\n]*\n")
_KEY_FOLLOWS = re.compile(r"[ \t]*[=:]")
_BRACKET_TOKEN = re.compile(r'"(?:\\.|[^"\\\n])*+"|#|//|/\*|<<-?(?P<tag>[A-Za-z_][\w-]*)[^\n]*\n|[{}\[\]()]')
_PAIRS = {"}": "{", "]": "[", ")": "("}


def _bracket_pairs(text: str, heredocs: _Heredocs) -> dict[int, int]:
    """Offset of each opening bracket -> offset after its closing one, skipping strings, comments
    and heredocs; one linear pass (block ends found per block would be quadratic on hostile input).
    Unclosed brackets are absent."""
    pairs: dict[int, int] = {}
    stack: list[tuple[str, int]] = []
    pos = 0
    while (m := _BRACKET_TOKEN.search(text, pos)) is not None:
        tok, pos = m.group(0), m.end()
        if tok in ("#", "//"):
            nl = text.find("\n", pos)
            pos = len(text) if nl < 0 else nl
        elif tok == "/*":
            close = text.find("*/", pos)
            pos = len(text) if close < 0 else close + 2
        elif m.group("tag"):
            term = heredocs.terminator(m.group("tag"), pos)
            pos = len(text) if term is None else term.end()
        elif tok in "{[(":
            stack.append((tok, m.start()))
        elif tok in _PAIRS and stack and stack[-1][0] == _PAIRS[tok]:
            pairs[stack.pop()[1]] = pos
    return pairs


def _variable_default_spans(text: str, heredocs: _Heredocs) -> Iterator[_Span]:
    """Literals in the default of a credential-named or ``sensitive = true`` variable.

    detect-secrets cannot see these: the secret sits under ``default``, the name in the block label.
    """
    if "variable" not in text:
        return
    pairs: dict[int, int] | None = None
    blocks = list(_VARIABLE.finditer(text))
    for i, v in enumerate(blocks):
        name = v.group("name")
        tier = _name_tier(name)
        if tier is None and "sensitive" not in text:
            continue
        pairs = _bracket_pairs(text, heredocs) if pairs is None else pairs
        # an unclosed block (invalid HCL) ends where the next one starts: linear on hostile input
        block_end = pairs.get(v.end() - 1, blocks[i + 1].start() if i + 1 < len(blocks) else len(text))
        sensitive = tier in (None, "weak") and _SENSITIVE.search(text, v.end(), block_end) is not None
        if tier is None and not sensitive:
            continue
        forced = ("password" if tier == "password" else "generic_secret") if sensitive else None
        for d in _DEFAULT.finditer(text, v.end() - 1, block_end):  # also `default` inside `type`
            yield from _default_value_spans(
                text, d.end(), block_end, name=name, forced=forced, pairs=pairs, heredocs=heredocs
            )


def _default_value_spans(
    text: str, vstart: int, block_end: int, *, name: str, forced: str | None, pairs: dict[int, int], heredocs: _Heredocs
) -> Iterator[_Span]:
    """The literals of one ``default = <value>``: a string, a heredoc, or strings in a map/list."""
    if vstart >= block_end:
        return
    if text.startswith("<<", vstart):
        tag = _HEREDOC_START.match(text, vstart)
        if tag:
            start, end = heredocs.body(tag.end(), tag.group(1))
            kind = _kind_for(name, text[start:end], forced)
            if kind:
                yield start, end, kind
        return
    if text[vstart] == '"':
        region_end = text.find("\n", vstart)
        region_end = len(text) if region_end < 0 else region_end
    elif text[vstart] in "{[":
        region_end = pairs.get(vstart, block_end)
    else:
        return  # null, numbers, bools, expressions
    for s in _HCL_STRING.finditer(text, vstart, region_end):
        if _KEY_FOLLOWS.match(text, s.end()):
            continue  # an object key, not a value
        kind = _kind_for(name, s.group("body"), forced)
        if kind:
            yield s.start("body"), s.end("body"), kind


_NAME_ATTR = re.compile(r"(?<![\w.\-])[\"']?name[\"']?[ \t]*[=:][ \t]*(?P<q>[\"'])(?P<n>[^\"'\n]{1,200})(?P=q)")
_VALUE_ATTR = re.compile(r"(?<![\w.\-])[\"']?value[\"']?[ \t]*[=:][ \t]*\"(?P<val>" + _DQ_BODY + r")\"")


def _name_value_spans(text: str) -> Iterator[_Span]:
    """``{ name = "DB_PASSWORD", value = "..." }``: container env vars, SSM parameters, app settings."""
    if "value" not in text:
        return
    for m in _NAME_ATTR.finditer(text):
        if _name_tier(m.group("n")) is None:
            continue
        lo = text.rfind("{", max(0, m.start() - 500), m.start())
        lo = max(0, m.start() - 500) if lo < 0 else lo
        hi = text.find("}", m.end(), m.end() + 500)
        hi = min(len(text), m.end() + 500) if hi < 0 else hi
        for v in _VALUE_ATTR.finditer(text, lo, hi):
            kind = _kind_for(m.group("n"), v.group("val"))
            if kind:
                yield v.start("val"), v.end("val"), kind
