"""Root-module discovery: which directories of a repository are workspaces, and which files each needs.

A root module is a directory with ``.tf`` files that no other directory of the repository calls as a
local module. A workspace carries its own files plus, transitively, the files of the local modules it
calls, so it can be planned anywhere (on another node) from the row alone.

Module calls are read from real module blocks: ``.tf`` files with the linear-time lexer of
``pipelines/hcl_syntax.py`` (no python-hcl2 here: it needs a child process with a timeout, and discovery
reads every file of every commit, where the screen later parses only each workspace), ``.tf.json`` with
``json``. Sources go through ``modules.resolve_source``, the resolver the screen uses. A call this reader
misses (a file the lexer rejects, an escaped source) cannot open a hole: the screen re-resolves every call
against the workspace's own files and blocks it as ``module_source_missing``.
"""

from __future__ import annotations

import logging
import posixpath
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from pipelines.collect.analyze import load_tf_json
from pipelines.collect.modules import TF_SUFFIXES, decode_escapes, module_calls, module_dirs, resolve_source
from pipelines.hcl_syntax import Block, HclLexError, Tok, load_file

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiscoverLimits:
    min_tf_files: int = 1
    max_tf_files: int = 200  # per workspace, modules included
    max_workspace_kb: float = 2048  # all files of a workspace, modules included
    max_workspaces: int = 200  # per repository (commit)


@dataclass
class Workspace:
    path: str  # "." for the repository root
    files: list[dict[str, str]]  # {path, content}, repo-relative, sorted
    modules: list[str] = field(default_factory=list)  # local module directories it uses
    dropped: str | None = None  # reason when a quality filter rejects it


def _dir(path: str) -> str:
    return posixpath.dirname(posixpath.normpath(path)) or "."


def module_sources(path: str, text: str) -> Iterator[object]:
    """Source values of one file's module blocks (None where a source is not one plain string)."""
    if "module" not in text:  # most files call no module: skip the lexer
        return
    if path.endswith(".tf.json"):
        try:
            doc = load_tf_json(text)
        except (ValueError, RecursionError):
            return  # the screen reports the parse error
        yield from (source for _name, source in module_calls(doc))
        return
    try:
        hf = load_file(path, text)
    except (HclLexError, RecursionError) as e:
        logger.debug("discover: %s not lexed (%s); its module calls are not followed", path, e)
        return
    for item in hf.items:
        if isinstance(item, Block) and hf.toks[item.type].text == "module":
            yield _source_attr(hf.toks, item)


def _source_attr(toks: Sequence[Tok], block: Block) -> object:
    """The value of a module block's ``source`` when it is one string token without interpolation."""
    for item in block.items:
        if isinstance(item, Block) or toks[item.key].text != "source":
            continue
        value = toks[item.eq + 1 : item.end]
        if len(value) == 1 and value[0].kind == "string" and [type(p) for p in value[0].parts] == [tuple]:
            return decode_escapes(value[0].text[1:-1])
        return None
    return None


def module_graph(files: Sequence[Mapping[str, str]]) -> dict[str, set[str]]:
    """directory → local module directories it calls (that exist in the repository)."""
    tf_files = [f for f in files if f["path"].endswith(TF_SUFFIXES)]
    dirs = module_dirs(f["path"] for f in tf_files)
    graph: dict[str, set[str]] = {d: set() for d in dirs}
    for f in tf_files:
        d = _dir(f["path"])
        for source in module_sources(f["path"], f["content"]):
            r = resolve_source(d, source, dirs)
            if r.kind == "local" and r.dir != d:
                graph[d].add(r.dir)
    return graph


def discover(files: Sequence[Mapping[str, str]], limits: DiscoverLimits) -> list[Workspace]:
    """Workspaces of a repository snapshot, sorted by path; rejected ones carry ``dropped``."""
    by_dir: dict[str, list[Mapping[str, str]]] = defaultdict(list)
    for f in files:
        by_dir[_dir(f["path"])].append(f)
    graph = module_graph(files)
    called = {m for deps in graph.values() for m in deps}
    roots = sorted(d for d in graph if d not in called)
    out = []
    for i, root in enumerate(roots):
        seen: set[str] = set()
        stack = [root]
        while stack:
            d = stack.pop()
            if d in seen:
                continue
            seen.add(d)
            stack.extend(graph.get(d, ()))
        ws_files = sorted(
            ({"path": f["path"], "content": f["content"]} for d in seen for f in by_dir[d]),
            key=lambda f: f["path"],
        )
        n_tf = sum(f["path"].endswith(TF_SUFFIXES) for f in ws_files)
        size_kb = sum(len(f["content"].encode()) for f in ws_files) / 1024
        dropped = None
        if i >= limits.max_workspaces:
            dropped = (
                f"too_many_workspaces: repository has {len(roots)} > discover.max_workspaces={limits.max_workspaces}"
            )
        elif n_tf < limits.min_tf_files:
            dropped = f"too_few_tf_files: {n_tf} < discover.min_tf_files={limits.min_tf_files}"
        elif n_tf > limits.max_tf_files:
            dropped = f"too_many_tf_files: {n_tf} > discover.max_tf_files={limits.max_tf_files}"
        elif size_kb > limits.max_workspace_kb:
            dropped = f"too_large: {size_kb:.0f} KB > discover.max_workspace_kb={limits.max_workspace_kb:g}"
        out.append(Workspace(root, ws_files, sorted(seen - {root}), dropped))
    return out
