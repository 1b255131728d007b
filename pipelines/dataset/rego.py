"""Checking KICS-style Rego queries against their Terraform tests, in-process with regopy (no OPA binary).

A KICS query directory holds ``query.rego`` (``package Cx``, rules ``CxPolicy[result]``), ``metadata.json`` and
``test/`` with ``positive*.tf``, ``negative*.tf`` and ``positive_expected_result.json`` (a list of
``{"queryName", "severity", "line", "fileName"}``). :func:`check_query` runs a policy the way KICS's own query
tests do: each test file becomes one KICS input document (``input.document[0]`` with ``id``, ``file``,
``resource.<type>.<name>`` ...), every ``CxPolicy`` result is resolved to a line (``searchLine`` when it resolves,
else ``searchKey`` such as ``aws_s3_bucket[b].acl``: the line of the deepest key found, so a missing attribute
points at its block), and the positives must fire on exactly the expected (file, line) pairs while the
negatives must not fire at all.

It scores model-written policies too, so any text is accepted and every failure is a status, never an
exception: ``ok | compile_error | eval_error | wrong_lines | fires_on_negative | no_findings | timeout |
invalid_tests`` (the last: a test file is not HCL or the expected results are malformed).

Evaluation runs in a long-lived child process (one per worker, spawned on first use): rego-cpp cannot be
interrupted from Python and a pathological policy takes long (``numbers.range(1, 3000000)`` in a comprehension:
12 s here, against ~5 ms for a normal query over one test file), so a check that exceeds its timeout kills the
child and the next check starts a fresh one. The child also parses the HCL (python-hcl2 v7 can hang on hostile
text). It has no address-space cap: rego-cpp's allocator (snmalloc) reserves address space up front and
fails to start under ``RLIMIT_AS``.

regopy cannot compile KICS's real ``assets/libraries/common.rego``, so policies are checked against our own
helper library (``kics_queries/libraries``: ``data.generic.common`` and ``data.generic.terraform``); a real KICS
tree's queries that call helpers ours lacks report ``compile_error`` (see :func:`check_tree`).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipelines.child import ChildDied, ChildError, ChildService, ChildTimeout
from pipelines.hcl_syntax import (
    CLOSE_BRACKETS,
    OPEN_BRACKETS,
    Attr,
    Block,
    HclFile,
    HclLexError,
    line_of,
    load_file,
    plain_string,
)

logger = logging.getLogger(__name__)

STATUSES = (
    "ok",
    "compile_error",
    "eval_error",
    "wrong_lines",
    "fires_on_negative",
    "no_findings",
    "timeout",
    "invalid_tests",
)
MALFORMED = "malformed"  # check_tree only: a query directory that could not be loaded
DEFAULT_TREE = Path(__file__).parent / "kics_queries"
LIBRARY_DIR = "libraries"
QUERY_FILE = "query.rego"
METADATA_FILE = "metadata.json"
TEST_DIR = "test"
EXPECTED_FILE = "positive_expected_result.json"
METADATA_KEYS = ("id", "queryName", "severity", "category", "descriptionText")
RESULTS_QUERY = "x := [r | data.Cx.CxPolicy[r]]"  # regopy yields `true` for `CxPolicy[_]`, so bind the element
DEFAULT_TIMEOUT_S = 10.0
_PACKAGE_CX = re.compile(r"^\s*package\s+Cx\s*(#.*)?$", re.MULTILINE)
_ERRORMSG = re.compile(r"errormsg (\d+):")  # rego-cpp prints `(errormsg <length>:<message>)`


# ---------------------------------------------------------------- HCL → KICS input documents
def document_id(file_name: str) -> str:
    """A stable KICS-style document id (a UUID) for a test file."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tfpredict-kics:{file_name}"))


def _is_block(value: Any) -> bool:
    """python-hcl2 v7 (with_meta) marks every block body with ``__start_line__``; attributes have none."""
    return isinstance(value, dict) and "__start_line__" in value


def _is_labeled(value: Any) -> bool:
    """``{label: {label2: body}}``: a labeled block (``resource "t" "n"``, ``dynamic "x"``) as v7 nests it."""
    return (
        isinstance(value, dict)
        and bool(value)
        and not _is_block(value)
        and all(_is_block(v) or _is_labeled(v) for v in value.values())
    )


def _merge_labeled(out: dict[str, Any], value: dict[str, Any]) -> None:
    """Merge one labeled block into ``out`` by label; a repeated full label path becomes a list."""
    for label, inner in value.items():
        if _is_block(inner):
            body = _body(inner)
            if label not in out:
                out[label] = body
            elif isinstance(out[label], list):
                out[label].append(body)
            else:
                out[label] = [out[label], body]
        else:
            _merge_labeled(out.setdefault(label, {}), inner)


def _body(block: Mapping[str, Any]) -> dict[str, Any]:
    """A block body in KICS's shape: meta dropped; nested blocks once → object, repeated → list."""
    out: dict[str, Any] = {}
    for key, value in block.items():
        if key in ("__start_line__", "__end_line__"):
            continue
        if isinstance(value, list) and value and all(_is_block(v) for v in value):
            bodies = [_body(v) for v in value]
            out[key] = bodies[0] if len(bodies) == 1 else bodies
        elif isinstance(value, list) and value and all(_is_labeled(v) for v in value):
            merged: dict[str, Any] = {}
            for v in value:
                _merge_labeled(merged, v)
            out[key] = merged
        else:
            out[key] = value
    return out


def hcl_to_document(parsed: Mapping[str, Any], file_name: str) -> dict[str, Any]:
    """python-hcl2 v7 output (``with_meta=True``) → one KICS input document (``id``, ``file``, ``resource`` ...)."""
    return {"id": document_id(file_name), "file": file_name, **_body(parsed)}


# ---------------------------------------------------------------- line index and searchKey resolution
_KEY_PART = re.compile(r"\s*([^\[=]*?)\s*(?:\[(.*)\])?\s*(?:=.*)?", re.DOTALL)  # name[label]=value


def parse_search_key(key: str) -> list[tuple[str, str | None]]:
    """``aws_s3_bucket[{{b}}].ingress[1].cidr_blocks=x`` → ``[("aws_s3_bucket", "b"), ("ingress", "1"), ...]``.

    Splits on dots outside brackets; ``{{ }}`` and quotes around names are dropped; ``key=value`` keeps the key;
    a bare number after a key (``ingress.1``) becomes that key's index.
    """
    parts, buf, depth = [], [], 0
    for c in key.replace("{{", "").replace("}}", ""):
        if c == "." and depth == 0:
            parts.append("".join(buf))
            buf = []
            continue
        depth += (c == "[") - (c == "]")
        buf.append(c)
    parts.append("".join(buf))
    comps: list[tuple[str, str | None]] = []
    for part in parts:
        m = _KEY_PART.fullmatch(part)
        if m is None:
            continue
        name = m.group(1).strip("\"'")
        label = None if m.group(2) is None else m.group(2).strip("\"' ")
        if name.isdigit() and label is None and comps and comps[-1][1] is None:
            comps[-1] = (comps[-1][0], name)  # `ingress.1`
        elif name:
            comps.append((name, label))
    return comps


def search_line_components(path: Sequence[Any]) -> list[tuple[str, str | None]]:
    """A KICS ``searchLine`` path (``["resource", "aws_s3_bucket", "b", "acl"]``) → resolver components."""
    items = [str(p) for p in path]
    comps: list[tuple[str, str | None]] = []
    if len(items) >= 3 and items[0] in ("resource", "data"):
        comps = [(items[0], None), (items[1], items[2])]
        items = items[3:]
    for item in items:
        if item.isdigit() and comps and comps[-1][1] is None:
            comps[-1] = (comps[-1][0], item)
        else:
            comps.append((item, None))
    return comps


_TOP_SINGLE_LABEL = ("module", "variable", "output", "provider")


@dataclass(frozen=True)
class _Node:
    tok: int  # the token whose line the node reports: a block's type, an attribute's or object key's name
    block: Block | None = None  # a block's body
    value: tuple[int, int] | None = None  # an attribute's (or object key's) value tokens [start, end)


class LineIndex:
    """Resolves KICS search keys to 1-based line numbers in one Terraform file's text (``pipelines/hcl_syntax``)."""

    def __init__(self, text: str) -> None:
        self.src = text
        try:
            self.file: HclFile | None = load_file("", text)
        except HclLexError:  # python-hcl2 accepted it, our lexer did not: no line can be resolved
            self.file = None

    def _name(self, i: int) -> str | None:
        assert self.file is not None
        t = self.file.toks[i]
        return t.text if t.kind == "ident" else plain_string(t, self.src)

    def _find_top(self, kind: str, head: str, label: str) -> _Node | None:
        assert self.file is not None
        for b in self.file.items:
            if not isinstance(b, Block):
                continue
            typ, labels = self._name(b.type), self.file.block_labels(b) or []
            if (
                (typ == head and labels[:1] == [label])
                if head in _TOP_SINGLE_LABEL
                else (typ == kind and labels[:2] == [head, label])
            ):
                return _Node(b.type, block=b)
        return None

    def _object_keys(self, span: tuple[int, int]) -> list[_Node]:
        """Keys of an object value (``tags = { Name = "x" }``), each with its own value span."""
        assert self.file is not None
        toks, (i, end) = self.file.toks, span
        out, depth = [], 0
        while i < end:
            t = toks[i]
            if t.kind == "punct" and t.text in OPEN_BRACKETS:
                depth += 1
            elif t.kind == "punct" and t.text in CLOSE_BRACKETS:
                depth -= 1
            elif depth == 1 and t.kind in ("ident", "string") and i + 1 < end and toks[i + 1].text in ("=", ":"):
                j, d = i + 2, 0
                while j < end and not (d == 0 and (toks[j].kind == "newline" or toks[j].is_punct(","))):
                    if toks[j].kind == "punct" and toks[j].text in OPEN_BRACKETS:
                        d += 1
                    elif toks[j].kind == "punct" and toks[j].text in CLOSE_BRACKETS:
                        if d == 0:
                            break
                        d -= 1
                    j += 1
                out.append(_Node(i, value=(i + 2, j)))
                i = j
                continue
            i += 1
        return out

    def _find_child(self, node: _Node, key: str, index: str | None) -> _Node | None:
        assert self.file is not None
        toks = self.file.toks
        blocks: list[_Node] = []
        attrs: list[_Node] = []
        if node.block is not None:
            for it in node.block.items:
                if isinstance(it, Block) and self._name(it.type) == key:
                    blocks.append(_Node(it.type, block=it))
                elif isinstance(it, Attr) and toks[it.key].text == key:
                    attrs.append(_Node(it.key, value=(it.eq + 1, it.end)))
        elif node.value is not None:
            attrs = [n for n in self._object_keys(node.value) if self._name(n.tok) == key]
        if index is not None and index.isdigit() and int(index) < len(blocks):
            return blocks[int(index)]
        found = sorted(blocks + attrs, key=lambda n: n.tok)
        if not found:
            return None
        if index is not None and not index.isdigit():  # `tags[Name]`: a key inside the found block/map
            return self._find_child(found[0], index, None) or found[0]
        return found[0]

    def resolve(self, comps: Sequence[tuple[str, str | None]]) -> int:
        """Line (1-based) of the deepest component found; -1 when the top-level block is not in the file."""
        comps = list(comps)
        kind = "resource"
        if comps and comps[0][0] in ("resource", "data") and comps[0][1] is None:
            kind = comps[0][0]
            comps = comps[1:]
        if not comps or self.file is None:
            return -1
        head, label = comps[0]
        if label is None:  # `resource.aws_s3_bucket.b.acl`: the name is the next component
            if len(comps) < 2:
                return -1
            label, comps = comps[1][0], [(head, comps[1][0]), *comps[2:]]
        node = self._find_top(kind, head, label)
        if node is None:
            return -1
        for key, index in comps[1:]:
            found = self._find_child(node, key, index)
            if found is None:
                break
            node = found
        return line_of(self.src, self.file.toks[node.tok].start)

    def result_line(self, result: Any) -> int:
        """The line a CxPolicy result points at: ``searchLine`` when it resolves, else ``searchKey``; -1 if none."""
        if not isinstance(result, dict):
            return -1
        search_line = result.get("searchLine")
        if isinstance(search_line, int) and not isinstance(search_line, bool) and search_line > 0:
            return search_line
        if isinstance(search_line, list) and search_line:
            line = self.resolve(search_line_components(search_line))
            if line > 0:
                return line
        key = result.get("searchKey")
        if isinstance(key, str) and key:
            return self.resolve(parse_search_key(key))
        return -1


# ---------------------------------------------------------------- the engine process
def _error_text(text: str) -> str:
    """rego-cpp error node text → its messages on one line."""
    msgs = [text[m.end() : m.end() + int(m.group(1))].strip() for m in _ERRORMSG.finditer(text)]
    return "; ".join(dict.fromkeys(msgs)) if msgs else " ".join(text.split())[:300]


def _query_results(interp: Any) -> list[Any]:
    """Run the results query; raise RuntimeError with the engine's message when it fails."""
    from regopy.rego_shared import rego_output_ok, rego_output_string, rego_query

    out = rego_query(interp._impl, RESULTS_QUERY)
    text = rego_output_string(out)
    if not rego_output_ok(out):
        raise RuntimeError(_error_text(text) if text != "<error>" else "engine error (rego-cpp gave no message)")
    if text == "undefined":
        return []
    try:
        value = json.loads(text)
    except ValueError:  # rego-cpp puts error nodes (e.g. a failed builtin) into its output text
        raise RuntimeError(_error_text(text)) from None
    results = value.get("bindings", {}).get("x", []) if isinstance(value, dict) else []
    return results if isinstance(results, list) else []


def run_job(modules: Sequence[tuple[str, str]], files: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Compile ``modules`` (libraries first, the query last) and evaluate each test file; in-process, no timeout.

    Returns ``{"compile_error": str | None, "files": {name: {"results": [...]} | {"error": ...} |
    {"parse_error": ...}}}``. rego-cpp compiles lazily, so a failure on an empty input also counts as a
    compile error.
    """
    import hcl2
    import regopy

    interp = regopy.Interpreter()
    interp.log_level = regopy.LogLevel.NONE  # per interpreter: the process default may be set only once
    for name, source in modules:
        try:
            interp.add_module(name, source)
        except Exception as e:  # RegoError, or anything the binding raises on odd text
            return {"compile_error": f"{name}: {_error_text(str(e))}", "files": {}}
    try:
        interp.set_input({"document": []})
        _query_results(interp)
    except Exception as e:  # every engine failure is data
        return {"compile_error": str(e), "files": {}}
    out: dict[str, Any] = {}
    for name, text in files:
        try:
            parsed = hcl2.loads(text, with_meta=True)
        except Exception as e:  # lark raises many exception types for bad input
            out[name] = {"parse_error": f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"}
            continue
        try:
            interp.set_input({"document": [hcl_to_document(parsed, name)]})
            out[name] = {"results": _query_results(interp)}
        except Exception as e:  # every engine failure is data
            out[name] = {"error": str(e)}
    return {"compile_error": None, "files": out}


def _warmup() -> None:
    import hcl2

    hcl2.loads("a = 1\n")  # build (or load the cached) lark parser once, outside any check's timeout
    run_job([("warmup.rego", "package warmup\nx := 1\n")], [])


def _run_request(request: tuple[list[tuple[str, str]], list[tuple[str, str]]]) -> dict[str, Any]:
    return run_job(*request)


class EngineTimeout(Exception):
    """A check exceeded its timeout (the engine process was killed)."""


class RegoEngine:
    """Runs :func:`run_job` in a child process with a per-call timeout. One per worker; calls are serialized."""

    def __init__(self) -> None:
        self._child = ChildService("rego-engine", _warmup, _run_request)

    def run(
        self, modules: Sequence[tuple[str, str]], files: Sequence[tuple[str, str]], timeout_s: float
    ) -> dict[str, Any]:
        """:func:`run_job` in the child; EngineTimeout past ``timeout_s``, RuntimeError if the child dies."""
        try:
            return self._child.call((list(modules), list(files)), timeout_s)
        except ChildTimeout as e:
            raise EngineTimeout(f"evaluation did not finish within {timeout_s:g}s") from e
        except ChildDied as e:  # a crash in native code (rego-cpp), or regopy missing
            raise RuntimeError(f"rego engine process died (a crash in rego-cpp? is regopy installed?): {e}") from e
        except ChildError as e:
            raise RuntimeError(str(e)) from e

    def close(self) -> None:
        """Kill the child (the next call starts a fresh one)."""
        self._child.close()


_ENGINE: RegoEngine | None = None


def default_engine() -> RegoEngine:
    """This process's shared engine (started on first use)."""
    global _ENGINE  # noqa: PLW0603 - one engine process per worker, built on first use
    if _ENGINE is None:
        _ENGINE = RegoEngine()
    return _ENGINE


# ---------------------------------------------------------------- checking one query
@dataclass
class FileCheck:
    """What one test file expected and what the policy reported (lines sorted; -1 = unresolvable result)."""

    name: str
    kind: str  # positive | negative
    expected_lines: list[int] = field(default_factory=list)
    found_lines: list[int] = field(default_factory=list)
    error: str = ""


@dataclass
class CheckResult:
    """The outcome of :func:`check_query`: a status from STATUSES, a one-line reason, per-file details."""

    status: str
    reason: str = ""
    files: list[FileCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_library(root: str | Path | None = None) -> dict[str, str]:
    """The helper modules (``<root>/libraries/*.rego``, sorted by name) of a query tree; default: ours."""
    lib = Path(root or DEFAULT_TREE) / LIBRARY_DIR
    return {p.name: p.read_text() for p in sorted(lib.glob("*.rego"))} if lib.is_dir() else {}


def natural_key(name: str) -> tuple[Any, ...]:
    """``positive2.tf`` sorts before ``positive10.tf``."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def expected_pairs(expected: Any, positive_names: Sequence[str]) -> set[tuple[str, int]]:
    """KICS expected results → {(positive file name, line)}; ValueError says what is malformed.

    ``fileName`` may be omitted when there is exactly one positive file; it may also be a path whose
    basename names a positive file.
    """
    if not isinstance(expected, list):
        raise ValueError("expected results must be a JSON list of {queryName, severity, line, fileName}")
    by_base = {Path(n).name: n for n in positive_names}
    pairs: set[tuple[str, int]] = set()
    for i, item in enumerate(expected):
        if not isinstance(item, dict) or not isinstance(item.get("line"), int) or isinstance(item["line"], bool):
            raise ValueError(f"expected result #{i} has no integer 'line'")
        name = item.get("fileName")
        if name is None:
            if len(positive_names) != 1:
                raise ValueError(
                    f"expected result #{i} has no 'fileName' but there are {len(positive_names)} positives"
                )
            name = positive_names[0]
        if not isinstance(name, str):
            raise ValueError(f"expected result #{i}: 'fileName' must be a string")
        if name not in positive_names:
            name = by_base.get(Path(name).name, name)
        if name not in positive_names:
            raise ValueError(f"expected result #{i} names {name!r}, which is not a positive test file")
        pairs.add((name, item["line"]))
    return pairs


def _lines_text(lines: Sequence[int]) -> str:
    return "[" + ", ".join(map(str, lines)) + "]"


def check_query(
    rego: str,
    positives: Mapping[str, str],
    negatives: Mapping[str, str],
    expected: Any,
    *,
    library: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    engine: RegoEngine | None = None,
) -> CheckResult:
    """Run ``rego`` on the tests; ``ok`` only when positives fire on exactly ``expected`` and negatives never.

    ``positives``/``negatives`` map file names (``positive1.tf``) to Terraform text; ``expected`` is the parsed
    ``positive_expected_result.json``; ``library`` maps module names to helper Rego (default: ours). Never raises
    for any input: every failure is a status with a reason.
    """
    try:
        return _check(rego, positives, negatives, expected, library, timeout_s, engine or default_engine())
    except Exception as e:  # the contract: a status, never a crash
        logger.exception("rego check failed unexpectedly")
        return CheckResult("eval_error", f"checker failure: {type(e).__name__}: {e}")


def _check(  # noqa: PLR0917 - check_query's private body, same arguments
    rego: str,
    positives: Mapping[str, str],
    negatives: Mapping[str, str],
    expected: Any,
    library: Mapping[str, str] | None,
    timeout_s: float,
    engine: RegoEngine,
) -> CheckResult:
    if not isinstance(rego, str) or not _PACKAGE_CX.search(rego):
        return CheckResult("compile_error", "a KICS query must declare `package Cx` (rules `CxPolicy[result] {...}`)")
    pos_names = sorted(positives, key=natural_key)
    neg_names = sorted(negatives, key=natural_key)
    if not pos_names:
        return CheckResult("invalid_tests", "no positive test file")
    try:
        want = expected_pairs(expected, pos_names)
    except ValueError as e:
        return CheckResult("invalid_tests", str(e))
    lib = load_library() if library is None else library
    modules = [*sorted(lib.items()), (QUERY_FILE, rego)]
    files = [(n, positives[n]) for n in pos_names] + [(n, negatives[n]) for n in neg_names]
    try:
        job = engine.run(modules, files, timeout_s)
    except EngineTimeout as e:
        return CheckResult("timeout", str(e))
    except RuntimeError as e:
        return CheckResult("eval_error", str(e))
    if job["compile_error"] is not None:
        return CheckResult("compile_error", job["compile_error"])
    checks: list[FileCheck] = []
    for kind, names, source in (("positive", pos_names, positives), ("negative", neg_names, negatives)):
        for name in names:
            out = job["files"].get(name, {"error": "no result for this file"})
            fc = FileCheck(name, kind, sorted(line for f, line in want if f == name))
            if "results" in out:
                index = LineIndex(source[name])
                fc.found_lines = sorted({index.result_line(r) for r in out["results"]})
            else:
                fc.error = out.get("parse_error") or out.get("error", "")
                fc.error = f"{'not HCL: ' if 'parse_error' in out else ''}{fc.error}"
            checks.append(fc)
    return _verdict(checks, out_of=len(want))


def _verdict(checks: list[FileCheck], out_of: int) -> CheckResult:
    """The status of a check from its per-file details (first failing kind wins, in a fixed order)."""
    bad_hcl = [c for c in checks if c.error.startswith("not HCL: ")]
    if bad_hcl:
        return CheckResult("invalid_tests", f"{bad_hcl[0].name}: {bad_hcl[0].error}", checks)
    errors = [c for c in checks if c.error]
    if errors:
        return CheckResult("eval_error", f"{errors[0].name}: {errors[0].error}", checks)
    if not any(c.found_lines for c in checks):
        return CheckResult("no_findings", f"no finding on any test file (expected {out_of})", checks)
    fired = [c for c in checks if c.kind == "negative" and c.found_lines]
    if fired:
        c = fired[0]
        return CheckResult("fires_on_negative", f"{c.name}: findings at lines {_lines_text(c.found_lines)}", checks)
    wrong = [c for c in checks if c.kind == "positive" and c.found_lines != c.expected_lines]
    if wrong:
        c = wrong[0]
        text = f"{c.name}: expected lines {_lines_text(c.expected_lines)}, found {_lines_text(c.found_lines)}"
        return CheckResult("wrong_lines", text, checks)
    return CheckResult("ok", "", checks)


# ---------------------------------------------------------------- KICS-layout trees
@dataclass
class Query:
    """One query directory of a KICS-layout tree; ``error`` says why it is malformed ("" when loadable)."""

    path: str  # relative to the tree root, e.g. "aws/s3_bucket_public_acl"
    provider: str  # metadata cloudProvider, else the parent directory's name
    rego: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    positives: dict[str, str] = field(default_factory=dict)
    negatives: dict[str, str] = field(default_factory=dict)
    expected: Any = None
    error: str = ""

    @property
    def query_id(self) -> str:
        return str(self.metadata.get("id") or self.path)

    @property
    def name(self) -> str:
        return str(self.metadata.get("queryName") or Path(self.path).name)


def _test_files(test_dir: Path, prefix: str) -> dict[str, str]:
    """``positive*.tf`` files (and ``positive*/**.tf``, named by their path under test/) of a test dir."""
    out: dict[str, str] = {}
    for p in sorted(test_dir.rglob("*.tf")):
        rel = p.relative_to(test_dir).as_posix()
        if rel.startswith(prefix):
            out[rel] = p.read_text(errors="replace")
    return out


def load_query(directory: Path, root: Path) -> Query:
    """Read one query directory; problems go to ``Query.error`` instead of raising."""
    rel = directory.relative_to(root).as_posix()
    q = Query(path=rel, provider=directory.parent.name if directory.parent != root else "")
    try:
        q.rego = (directory / QUERY_FILE).read_text()
    except OSError:
        q.error = f"missing {QUERY_FILE}"
    try:
        meta = json.loads((directory / METADATA_FILE).read_text())
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
        q.metadata = meta
        missing = [k for k in METADATA_KEYS if k not in meta]
        if missing and not q.error:
            q.error = f"{METADATA_FILE} lacks {', '.join(missing)}"
    except OSError:
        q.error = q.error or f"missing {METADATA_FILE}"
    except ValueError as e:
        q.error = q.error or f"invalid {METADATA_FILE}: {e}"
    q.provider = str(q.metadata.get("cloudProvider") or q.provider or "unknown")
    test_dir = directory / TEST_DIR
    q.positives = _test_files(test_dir, "positive")
    q.negatives = _test_files(test_dir, "negative")
    try:
        q.expected = json.loads((test_dir / EXPECTED_FILE).read_text())
    except OSError:
        q.error = q.error or f"missing {TEST_DIR}/{EXPECTED_FILE}"
    except ValueError as e:
        q.error = q.error or f"invalid {TEST_DIR}/{EXPECTED_FILE}: {e}"
    if not q.positives and not q.error:
        q.error = f"no {TEST_DIR}/positive*.tf"
    return q


def load_tree(root: str | Path | None = None) -> list[Query]:
    """Every query directory (one with query.rego or metadata.json) under ``root``, sorted by path."""
    base = Path(root or DEFAULT_TREE)
    if not base.is_dir():
        raise FileNotFoundError(f"query tree {base} is not a directory: pass a KICS-layout tree (<provider>/<query>/)")
    dirs = {p.parent for pattern in (QUERY_FILE, METADATA_FILE) for p in base.rglob(pattern)}
    dirs = {d for d in dirs if TEST_DIR not in d.relative_to(base).parts and d != base}
    return [load_query(d, base) for d in sorted(dirs, key=lambda d: d.relative_to(base).as_posix())]


def check_loaded(
    q: Query,
    library: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    engine: RegoEngine | None = None,
) -> CheckResult:
    """Check a loaded query against its own tests (``malformed`` when it could not be loaded)."""
    if q.error:
        return CheckResult(MALFORMED, q.error)
    return check_query(
        q.rego, q.positives, q.negatives, q.expected, library=library, timeout_s=timeout_s, engine=engine
    )


def check_tree(
    root: str | Path | None = None,
    library: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> dict[str, Any]:
    """How many queries of a KICS-layout tree the checker evaluates to each status.

    Returns ``{"total": n, "by_status": {status: count}, "problems": {path: "status: reason"}}`` (``malformed``
    counts directories that could not be loaded). ``library`` defaults to the tree's own ``libraries/`` when it
    has one, else ours.
    """
    base = Path(root or DEFAULT_TREE)
    lib = library if library is not None else (load_library(base) or load_library())
    counts: Counter[str] = Counter()
    problems: dict[str, str] = {}
    for q in load_tree(base):
        res = check_loaded(q, lib, timeout_s)
        counts[res.status] += 1
        if not res.ok:
            problems[q.path] = f"{res.status}: {res.reason}"
    return {"total": sum(counts.values()), "by_status": dict(sorted(counts.items())), "problems": problems}


def main(argv: Sequence[str] | None = None) -> int:
    """``tfpredict-check-rego [TREE] [--library DIR]``: how many queries of a KICS tree the checker evaluates."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("tree", nargs="?", default=None, help="a KICS-layout tree (default: the embedded fixture tree)")
    p.add_argument("--library", help="directory of .rego helper modules (default: the tree's libraries/, else ours)")
    p.add_argument("--timeout-s", type=float, default=DEFAULT_TIMEOUT_S, help="per-check evaluation timeout")
    args = p.parse_args(argv)
    library = {f.name: f.read_text() for f in sorted(Path(args.library).glob("*.rego"))} if args.library else None
    report = check_tree(args.tree, library=library, timeout_s=args.timeout_s)
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0 if report["total"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
