"""Unquoted credential assignments: shell, env files, YAML, CLI flags and HTTP-style headers.

``export DB_PASSWORD=hunter2`` in a script, a ``.tftpl`` template or a ``user_data`` heredoc,
``password: hunter2`` in YAML, ``--client-secret=...`` on a command line, ``X-Api-Key: ...`` in a curl
trace: the value has no quotes, so neither the HCL assignment rule nor KeywordDetector sees it.

Forms (the name must be credential-like, :func:`values._name_tier`):

- at the start of a line (after indentation, ANSI colour codes, a ``$``/``#``/``>``/``+`` prompt or
  xtrace prefix, a YAML ``- ``, and ``export``/``declare -x``/``local``/``readonly``/``set``/``ENV``):
  ``NAME=value``, ``NAME = value``, ``NAME: value`` (YAML: a value with spaces is prose, not taken);
- anywhere in a line: ``NAME=value`` without spaces (``docker run -e DB_PASSWORD=x``,
  ``echo "API_TOKEN=x"``, ``?token=x&...``), ``--name=value`` / ``--name value`` flags and
  ``X-Name: value`` headers (a name with a hyphen).

A value may be continued from the next line (``NAME=\\`` + newline) or wrapped in escaped quotes
(``\\"...\\"``, inside an HCL or JSON string). Kept, as expressions rather than literals: shell
expansions (``$X``, ``$(...)``, ``${X}``), templates (``%{``, ``{{``), HCL references
(``var.x``, ``random_password.db.result``, ``data.a.b.c[0]``), calls (``file(...)``, ``os.getenv(...)``),
numbers, booleans/null, YAML tags/anchors/block scalars (``!``, ``&``, ``*``, ``|``, ``>``), masks
(``****``), type names (``password: string``), and, after a spaced ``=``, a bare lowercase word (an HCL
``for`` variable: ``password = pw``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pipelines.collect.secrets.kinds import _PLACEHOLDER_ONLY, _Span
from pipelines.collect.secrets.values import _kind_for, _name_tier

_KEY = r"(?P<key>[A-Za-z_][\w.\-]{0,127})"
_LINE_START = re.compile(
    r"[ \t]*(?:\x1b\[[0-9;?]*[A-Za-z])*"  # indentation, ANSI codes
    r"(?:[$#>%+]+[ \t]+)?"  # a prompt, a comment or an xtrace prefix
    r"(?:-[ \t]+)?"  # a YAML list item
    r"(?:(?:export|declare[ \t]+-x|typeset[ \t]+-x|local|readonly|setenv|set|ENV|env)[ \t]+)?"
    r"(?P<q>[\"']?)" + _KEY + r"(?P=q)"
    r"(?P<op>[ \t]*=(?![=~>])[ \t]*|[ \t]*:(?=[ \t]))[ \t]*"
)
_MID_ENV = re.compile(r"(?<=[\s;|&(`'\"{,?])(?P<key>[A-Za-z_]\w{0,127})=(?![=~>])")
_FLAG = re.compile(r"(?<![\w-])--(?P<key>[A-Za-z][\w\-]{0,127})(?P<op>=|[ \t]+)")
_HEADER = re.compile(r"(?<![\w-])(?P<key>[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)+)[ \t]*:[ \t]+")

_CONTINUATION = re.compile(r"\\\r?\n[ \t]*")
_BARE = re.compile(r"[^\s\"'`]+")
# where a bare value ends early: at the next query parameter, or the next shell command in a line
_STOPS = {"query": re.compile(r"[&#]"), "mid": re.compile(r"[;&|]")}
_NOT_LITERAL_START = tuple("$<[{(*&!|>@%`\\")
_HCL_REF = re.compile(r"!?[a-z_][\w\-]*(?:\[[^\]\s]*\])*(?:\.(?:[A-Za-z_*][\w\-]*|\d+)(?:\[[^\]\s]*\])*)+")
_CALL = re.compile(r"[A-Za-z_][\w.]*\(")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_MASK = re.compile(r"[*•xX.\-_#]{3,}|\*+")
_BARE_WORD = re.compile(r"[a-z_]+")
_TYPE_NAME = re.compile(
    r"(?i)(?:str|string|int|integer|bool|boolean|bytes|float|number|any|object|text|varchar(?:\(\d+\))?"
    r"|securestring|secretstring|optional\[[\w\[\], |.]+\]|list\[[\w\[\], |.]+\])"
)
_NULLS = frozenset({"true", "false", "null", "none", "nil", "yes", "no", "on", "off", "~", "undefined"})


def _literal(value: str, spaced: bool) -> bool:
    """Whether an unquoted value is a literal (a possible secret) rather than an expression or a word."""
    if not value or value.startswith(_NOT_LITERAL_START) or value.lower() in _NULLS:
        return False
    if _PLACEHOLDER_ONLY.fullmatch(value) or _MASK.fullmatch(value) or _NUMBER.fullmatch(value):
        return False
    if _HCL_REF.fullmatch(value) or _CALL.match(value) or _TYPE_NAME.fullmatch(value):
        return False
    return not (spaced and _BARE_WORD.fullmatch(value))


def _value_at(text: str, pos: int, end: int, *, form: str) -> tuple[int, int] | None:
    """(start, end) of the value that begins at ``pos`` (line ends at ``end``), or None."""
    if form in ("=", "mid") and (cont := _CONTINUATION.match(text, pos)):
        pos = cont.end()
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
    if text.startswith(('\\"', "\\'"), pos):
        close = text.find(text[pos : pos + 2], pos + 2, end)
        return (pos + 2, close) if close > 0 else None
    if text.startswith(('"', "'"), pos):
        close = text.find(text[pos], pos + 1, end)
        return (pos + 1, close) if close > 0 else None
    if form == ":":  # YAML: the rest of the line, less a trailing comment; prose (spaces) is not a value
        stop = text.find(" #", pos, end)
        value_end = end if stop < 0 else stop
        while value_end > pos and text[value_end - 1] in " \t\r":
            value_end -= 1
        if any(c in " \t" for c in text[pos:value_end]):
            return None
        return pos, value_end
    m = _BARE.match(text, pos, end)
    if m is None:
        return None
    value_end = m.end()
    stops = _STOPS.get(form)
    if stops is not None and (cut := stops.search(text, pos, value_end)):
        value_end = cut.start()
    while value_end > pos and text[value_end - 1] in ";,)}\\":
        value_end -= 1
    return pos, value_end


def _span(text: str, key: str, where: tuple[int, int] | None, spaced: bool) -> _Span | None:
    if where is None:
        return None
    start, end = where
    value = text[start:end]
    quoted = text[start - 1 : start] in ('"', "'")
    if not quoted and not _literal(value, spaced):
        return None
    kind = _kind_for(key, value)
    return (start, end, kind) if kind else None


def _unquoted_spans(text: str, lines: list[tuple[int, int]]) -> Iterator[_Span]:
    """Credential-named assignments of unquoted (or escaped-quoted) values on the candidate lines."""
    for line_start, line_end in lines:
        m = _LINE_START.match(text, line_start, line_end)
        if m and _name_tier(m.group("key")):
            op = m.group("op")
            form = ":" if ":" in op else "="
            spaced = form == "=" and op != "="
            found = _span(text, m.group("key"), _value_at(text, m.end(), line_end, form=form), spaced)
            if found:
                yield found
        for m in _MID_ENV.finditer(text, line_start, line_end):
            if _name_tier(m.group("key")):
                form = "query" if text[m.start() - 1] in "?&" else "mid"
                found = _span(text, m.group("key"), _value_at(text, m.end(), line_end, form=form), False)
                if found:
                    yield found
        for m in _FLAG.finditer(text, line_start, line_end):
            if _name_tier(m.group("key")) and not text.startswith("-", m.end()):
                found = _span(text, m.group("key"), _value_at(text, m.end(), line_end, form="flag"), False)
                if found:
                    yield found
        for m in _HEADER.finditer(text, line_start, line_end):
            if _name_tier(m.group("key")):
                found = _span(text, m.group("key"), _value_at(text, m.end(), line_end, form="header"), False)
                if found:
                    yield found
