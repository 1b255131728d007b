"""Leak-free, growth-stable, stratified train/val/test assignment.

The unit of assignment is a *component*: examples connected by sharing a group (a repository, a KICS
query, an incident ...) or a near-duplicate cluster; its key is its smallest group key. In order:

1. Sticky: a component containing a group that an earlier build of the same dataset assigned keeps that
   split (the earlier build's ``{split}.parquet``), so rebuilding with more data never moves an example.
2. Hash: otherwise ``sha256(salt, key)`` mapped to [0, 1) and cut at the cumulative ratios; a pure function
   of the key, so it is stable under growth even without an earlier build.
3. Stratified minimum: in a stratum (task, provider) with at least ``min_groups`` components, a val or test
   split that the hash left empty takes the non-sticky train component whose hash is highest (closest to
   the cut); in a stratum of fewer than ``top_up_below`` components it takes them until it holds its share
   (rounded down). The hash alone gives small strata far less evaluation data than their share, or none
   (36 plan-prediction components once drew 1 for test); in large strata it is close to the share and
   stays a pure function of the key, so growth without an earlier build moves nothing there.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from pipelines.dataset.dedup import UnionFind
from schemas.tables import SPLITS


class LeakageError(RuntimeError):
    """A group or near-duplicate cluster spans two splits."""


def bucket(salt: str, key: str) -> float:
    """Uniform in [0, 1), stable across runs and machines."""
    return int.from_bytes(hashlib.sha256(f"{salt}\0{key}".encode()).digest()[:8], "big") / 2**64


def split_of(u: float, ratios: Mapping[str, float]) -> str:
    total = sum(ratios[s] for s in SPLITS)
    acc = 0.0
    for s in SPLITS:
        acc += ratios[s] / total
        if u < acc:
            return s
    return SPLITS[-1]


def components(rows: Iterable[Mapping[str, Any]], links: Iterable[tuple[str, str]] = ()) -> dict[str, str]:
    """example_id → component key (the smallest group key of its component).

    ``links``: extra (group, group) pairs that must share a split, e.g. the groups of exact duplicates.
    """
    uf = UnionFind()
    rows = list(rows)
    for r in rows:
        uf.union(f"g:{r['group']}", f"c:{r['cluster']}")
    for a, b in links:
        uf.union(f"g:{a}", f"g:{b}")
    # representative = smallest key, and "c:" < "g:", so map each set to its smallest *group* key explicitly
    smallest: dict[str, str] = {}
    for key in list(uf.parent):
        if key.startswith("g:"):
            root = uf.find(key)
            smallest[root] = min(smallest.get(root, key[2:]), key[2:])
    return {r["example_id"]: smallest[uf.find(f"g:{r['group']}")] for r in rows}


def assign(
    rows: Iterable[Mapping[str, Any]],
    ratios: Mapping[str, float],
    salt: str,
    *,
    previous: Mapping[str, str] | None = None,
    min_groups: int = 5,
    top_up_below: int = 50,
    links: Iterable[tuple[str, str]] = (),
) -> dict[str, str]:
    """rows: {example_id, group, cluster, stratum} → example_id → split. ``previous``: group → split.

    ``links`` (group pairs, see :func:`components`) join components; a linked group that an earlier build
    assigned makes the whole component sticky.
    """
    rows = sorted(rows, key=lambda r: r["example_id"])
    links = list(links)
    comp = components(rows, links)
    linked: dict[str, set[str]] = defaultdict(set)
    for a, b in links:
        linked[a].add(b)
        linked[b].add(a)
    previous = previous or {}
    members: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        members[comp[r["example_id"]]].append(r)
    split: dict[str, str] = {}
    sticky: set[str] = set()
    for key, rs in members.items():
        groups = {g for r in rs for g in (r["group"], *linked[r["group"]])}
        known = sorted((g, previous[g]) for g in groups if g in previous)
        if known:
            split[key] = known[0][1]
            sticky.add(key)
        else:
            split[key] = split_of(bucket(salt, key), ratios)
    strata: dict[str, list[str]] = defaultdict(list)
    for key, rs in members.items():
        strata[rs[0].get("stratum", "")].append(key)
    for keys in strata.values():
        if len(keys) < min_groups:
            continue
        total = sum(ratios[s] for s in SPLITS)
        for s in ("test", "val"):
            if ratios.get(s, 0) <= 0:
                continue
            # its share rounded down in a small stratum (the hash is noisy there), else at least one
            want = max(1, int(len(keys) * ratios[s] / total)) if len(keys) < top_up_below else 1
            movable = sorted(
                (k for k in keys if split[k] == "train" and k not in sticky), key=lambda k: bucket(salt, k)
            )
            while sum(split[k] == s for k in keys) < want and len(movable) > 1:  # never empty train
                split[movable.pop()] = s
    return {r["example_id"]: split[comp[r["example_id"]]] for r in rows}


def leakage(rows: Iterable[Mapping[str, Any]], split: Mapping[str, str]) -> list[str]:
    """Groups and clusters whose examples are in more than one split (empty = no leakage)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        s = split[r["example_id"]]
        seen[f"group {r['group']}"].add(s)
        seen[f"cluster {r['cluster']}"].add(s)
    return sorted(f"{k} in {sorted(v)}" for k, v in seen.items() if len(v) > 1)
