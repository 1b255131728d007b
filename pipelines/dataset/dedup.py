"""Exact and near-duplicate detection over a whole dataset, before splitting.

Exact: a hash of the normalized conversation (roles + contents, whitespace runs collapsed). Of each set of
exact duplicates the example with the smallest id is kept (deterministic), the others are dropped.

Near: MinHash signatures of word shingles (computed in parallel on workers), LSH on the driver, per task.
Near-duplicates are either kept and *clustered* (``near_mode = "group"``, the default: a cluster is one
leakage unit, so forks and copies never straddle splits) or dropped but one (``"drop"``). Clusters are
connected components of the "similar" relation, which is not transitive: a chain of pairwise-similar
examples becomes one cluster; the largest cluster's size is reported in stats.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_WS = re.compile(r"\s+")
MINHASH_SEED = 1
MINHASH_SCHEME = "affine32"  # 32-bit values; fixed so that stored signatures stay comparable


def normalized_text(messages: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(f"{m.get('role')}: {_WS.sub(' ', str(m.get('content') or '')).strip()}" for m in messages)


def content_hash(messages: Sequence[Mapping[str, Any]]) -> str:
    return hashlib.sha256(normalized_text(messages).encode()).hexdigest()[:32]


def shingles(text: str, n: int) -> list[bytes]:
    words = text.split()
    if len(words) <= n:
        return [" ".join(words).encode()]
    return [" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)]


def minhash_signature(messages: Sequence[Mapping[str, Any]], num_perm: int, shingle: int) -> np.ndarray:
    """MinHash hash values (uint32) of the conversation's word shingles."""
    from datasketch import MinHash

    m = MinHash(num_perm=num_perm, seed=MINHASH_SEED, scheme=MINHASH_SCHEME)
    m.update_batch(shingles(normalized_text(messages), shingle))
    return m.hashvalues.astype(np.uint32)


class UnionFind:
    """Disjoint sets over hashable keys; the representative of a set is its smallest key (deterministic)."""

    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def find(self, x: Any) -> Any:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: Any, b: Any) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = sorted((ra, rb))
            self.parent[hi] = lo


@dataclass
class DedupResult:
    dropped: dict[str, str] = field(default_factory=dict)  # example_id → reason
    cluster: dict[str, str] = field(default_factory=dict)  # kept example_id → near-dup cluster id (smallest member)
    exact_dropped: int = 0
    near_pairs: int = 0
    near_dropped: int = 0
    clusters: int = 0  # near-duplicate clusters with ≥ 2 kept members
    largest_cluster: int = 1


def deduplicate(
    rows: Iterable[Mapping[str, Any]], threshold: float, num_perm: int, near_mode: str = "group"
) -> DedupResult:
    """rows: {example_id, task, content_hash, minhash} (minhash may be None to skip near-dup detection)."""
    from datasketch import LeanMinHash, MinHashLSH

    res = DedupResult()
    rows = sorted(rows, key=lambda r: r["example_id"])
    seen: dict[str, str] = {}
    kept = []
    for r in rows:
        first = seen.setdefault(r["content_hash"], r["example_id"])
        if first != r["example_id"]:
            res.dropped[r["example_id"]] = f"exact_duplicate: of {first}"
            res.exact_dropped += 1
        else:
            kept.append(r)
    uf = UnionFind()
    by_task: dict[str, list[Mapping[str, Any]]] = {}
    for r in kept:
        uf.find(r["example_id"])
        if threshold < 1 and r.get("minhash") is not None:
            by_task.setdefault(r["task"], []).append(r)
    for members in by_task.values():
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        sigs = {}
        for r in members:
            sigs[r["example_id"]] = LeanMinHash(
                seed=MINHASH_SEED, hashvalues=np.asarray(r["minhash"], dtype=np.uint32), scheme=MINHASH_SCHEME
            )
            lsh.insert(r["example_id"], sigs[r["example_id"]])
        for eid, sig in sigs.items():
            for other in lsh.query(sig):
                # LSH candidates are verified against the estimated Jaccard similarity
                if other > eid and sig.jaccard(sigs[other]) >= threshold:
                    uf.union(eid, other)
                    res.near_pairs += 1
    members_of: dict[str, list[str]] = {}
    for r in kept:
        members_of.setdefault(uf.find(r["example_id"]), []).append(r["example_id"])
    for root, ids in members_of.items():
        if len(ids) > 1:
            res.clusters += 1
            res.largest_cluster = max(res.largest_cluster, len(ids))
        for eid in ids:
            if near_mode == "drop" and eid != root:
                res.dropped[eid] = f"near_duplicate: of {root}"
                res.near_dropped += 1
            else:
                res.cluster[eid] = root
    return res
