"""Root-module discovery: which directories of a repository are workspaces, and which files each needs.

A root module is a directory with ``.tf`` files that no other directory of the repository calls as a
local module (``source = "./x"`` or ``"../x"``). A workspace carries its own files plus, transitively,
the files of the local modules it calls, so it can be planned anywhere (on another node) from the row alone.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# `source = "./..."` / `"../..."`: only module blocks take local-path sources, so a line scan is
# enough to build the module graph (screening later parses properly; a miss only means that a child
# module is also planned as a root, where it usually fails on required variables).
LOCAL_SOURCE = re.compile(r'^\s*source\s*=\s*"(\.{1,2}/[^"]*)"', re.MULTILINE)
TF_SUFFIXES = (".tf", ".tf.json")
VAR_SUFFIXES = (".tfvars", ".tfvars.json")


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
    d = posixpath.dirname(path)
    return d or "."


def _join(base: str, rel: str) -> str | None:
    """Normalize ``base/rel``; None when it leaves the repository."""
    joined = posixpath.normpath(posixpath.join(base if base != "." else "", rel))
    if joined.startswith("..") or posixpath.isabs(joined):
        return None
    return joined if joined not in ("", ".") else "."


def module_graph(files: Sequence[Mapping[str, str]]) -> dict[str, set[str]]:
    """directory → local module directories it calls (that exist in the repository)."""
    by_dir: dict[str, list[Mapping[str, str]]] = defaultdict(list)
    for f in files:
        by_dir[_dir(f["path"])].append(f)
    tf_dirs = {d for d, fs in by_dir.items() if any(f["path"].endswith(TF_SUFFIXES) for f in fs)}
    graph: dict[str, set[str]] = {d: set() for d in tf_dirs}
    for d in tf_dirs:
        for f in by_dir[d]:
            if not f["path"].endswith(".tf"):
                continue
            for rel in LOCAL_SOURCE.findall(f["content"]):
                target = _join(d, rel)
                if target is not None and target in tf_dirs and target != d:
                    graph[d].add(target)
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
