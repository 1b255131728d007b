"""Dedup (exact + MinHash near-duplicates) and grouped, growth-stable, leak-free splits."""

from __future__ import annotations

from typing import Any

from pipelines.dataset import dedup, split
from pipelines.dataset.example import chat

RATIOS = {"train": 0.8, "val": 0.1, "test": 0.1}


def text(i: int, n: int = 200) -> str:
    return " ".join(f"w{i}_{k}" for k in range(n))


def row(eid: str, content: str, task: str = "t") -> dict[str, Any]:
    msgs = chat("sys", content, "answer")
    return {
        "example_id": eid,
        "task": task,
        "content_hash": dedup.content_hash(msgs),
        "minhash": dedup.minhash_signature(msgs, 128, 5).tolist(),
    }


def test_exact_duplicates_keep_the_smallest_id_and_whitespace_does_not_matter() -> None:
    res = dedup.deduplicate([row("b", "x  y\nz"), row("a", "x y z"), row("c", "other " * 20)], 0.9, 128)
    assert res.dropped == {"b": "exact_duplicate: of a"}
    assert res.exact_dropped == 1 and set(res.cluster) == {"a", "c"}


def test_near_duplicates_cluster_or_drop() -> None:
    base = text(1)
    near = base.replace("w1_30 ", "edited ")  # one word of 200 changed: Jaccard of 5-shingles ~0.95
    rows = [row("e1", base), row("e2", near), row("e3", text(2)), row("e4", near.replace("w1_90 ", "x "), task="other")]
    res = dedup.deduplicate(rows, 0.8, 128, "group")
    assert res.cluster == {"e1": "e1", "e2": "e1", "e3": "e3", "e4": "e4"}  # other task: never compared
    assert (res.near_pairs, res.clusters, res.largest_cluster, res.dropped) == (1, 1, 2, {})
    dropped = dedup.deduplicate(rows, 0.8, 128, "drop")
    assert dropped.dropped == {"e2": "near_duplicate: of e1"} and dropped.near_dropped == 1


def test_threshold_one_turns_near_dedup_off() -> None:
    res = dedup.deduplicate([row("e1", text(1)), row("e2", text(1).replace("w1_3", "x"))], 1.0, 128)
    assert res.near_pairs == 0 and res.cluster == {"e1": "e1", "e2": "e2"}


def examples(groups: dict[str, list[str]], clusters: dict[str, str] | None = None) -> list[dict[str, Any]]:
    clusters = clusters or {}
    return [{"example_id": e, "group": g, "cluster": clusters.get(e, e)} for g, ids in groups.items() for e in ids]


def test_groups_never_straddle_and_ratios_hold_roughly() -> None:
    rows = examples({f"repo{i}": [f"r{i}e{k}" for k in range(3)] for i in range(400)})
    assigned = split.assign(rows, RATIOS, "salt")
    assert split.leakage(rows, assigned) == []
    by = {s: sum(1 for v in assigned.values() if v == s) / len(assigned) for s in split.SPLITS}
    assert 0.74 < by["train"] < 0.86 and 0.06 < by["val"] < 0.14 and 0.06 < by["test"] < 0.14


def test_near_duplicate_cluster_merges_groups_into_one_component() -> None:
    # a fork: repo "zfork" has a near-copy of repo "a"'s example; both repos must share a split
    rows = examples({"a": ["a1", "a2"], "zfork": ["f1", "f2"], "b": ["b1"]}, clusters={"f1": "a1"})
    comp = split.components(rows)
    assert comp == {"a1": "a", "a2": "a", "f1": "a", "f2": "a", "b1": "b"}
    for salt in ("s1", "s2", "s3", "s4", "s5"):
        assigned = split.assign(rows, RATIOS, salt)
        assert len({assigned[e] for e in ("a1", "a2", "f1", "f2")}) == 1


def test_growth_never_moves_existing_examples() -> None:
    before = examples({f"repo{i}": [f"r{i}e{k}" for k in range(2)] for i in range(100)})
    after = before + examples({f"new{i}": [f"n{i}e{k}" for k in range(2)] for i in range(100)})
    a, b = split.assign(before, RATIOS, "s"), split.assign(after, RATIOS, "s")
    assert all(b[e] == s for e, s in a.items())
    assert {b[e] for e in b if e.startswith("n")} == set(split.SPLITS)  # the new repos spread too


def test_leakage_check_reports_a_planted_crossing() -> None:
    rows = examples({"a": ["a1", "a2"]})
    assert split.leakage(rows, {"a1": "train", "a2": "test"}) == ["group a in ['test', 'train']"]


def test_small_strata_get_val_and_test_from_the_train_components_closest_to_the_cut() -> None:
    rows = [{**r, "stratum": "t/aws"} for r in examples({f"g{i}": [f"e{i}"] for i in range(6)})]
    salt = next(
        s
        for s in (f"s{k}" for k in range(1000))
        if set(split.assign(rows, RATIOS, s, min_groups=99).values()) == {"train"}
    )
    assigned = split.assign(rows, RATIOS, salt, min_groups=5)
    by_u = sorted((f"g{i}" for i in range(6)), key=lambda g: split.bucket(salt, g))
    assert assigned == {f"e{g[1:]}": s for g, s in zip(by_u, ["train"] * 4 + ["val", "test"], strict=True)}
    assert split.assign(rows[:4], RATIOS, salt, min_groups=5) == {r["example_id"]: "train" for r in rows[:4]}


def test_previous_assignments_are_sticky_even_across_merges() -> None:
    rows = examples({"a": ["a1"], "b": ["b1"], "c": ["c1"]}, clusters={"c1": "b1"})  # b and c: one component
    previous = {"a": "test", "c": "val"}
    assigned = split.assign(rows, RATIOS, "s", previous=previous)
    assert assigned == {"a1": "test", "b1": "val", "c1": "val"}


def test_linked_groups_share_a_component_and_a_sticky_split() -> None:
    # the fork's copy was kept (smaller id) and upstream's dropped: the link keeps upstream's earlier split
    rows = examples({"zfork": ["f1"], "b": ["b1"]})
    assert split.components(rows, [("zfork", "upstream")]) == {"f1": "upstream", "b1": "b"}
    for salt in ("s1", "s2", "s3"):
        assigned = split.assign(rows, RATIOS, salt, previous={"upstream": "val"}, links=[("zfork", "upstream")])
        assert assigned["f1"] == "val"


def test_a_small_stratum_gets_its_share_of_val_and_test_a_large_one_keeps_the_pure_hash() -> None:
    rows = [{**r, "stratum": "plan/null"} for r in examples({f"g{i:02d}": [f"e{i:02d}"] for i in range(36)})]
    # a salt whose hash alone gives test fewer than its share (3 of 36): the case the top-up is for
    salt = next(
        s
        for s in (f"s{k}" for k in range(1000))
        if list(split.assign(rows, RATIOS, s, min_groups=99).values()).count("test") < 2
    )
    hashed = split.assign(rows, RATIOS, salt, min_groups=99)
    topped = split.assign(rows, RATIOS, salt, min_groups=5)
    counts = {s: list(topped.values()).count(s) for s in split.SPLITS}
    assert counts["test"] == 3 and counts["val"] >= 3 and counts["train"] == 36 - counts["test"] - counts["val"]
    moved = {e for e in topped if topped[e] != hashed[e]}
    assert all(hashed[e] == "train" for e in moved)  # only train components move, and only those closest to the cut
    stay = [e for e in hashed if hashed[e] == "train" and e not in moved]
    assert min(split.bucket(salt, f"g{e[1:]}") for e in moved) > max(split.bucket(salt, f"g{e[1:]}") for e in stay)
    # sticky components never move, even when the split is short of its share
    previous = {f"g{i:02d}": hashed[f"e{i:02d}"] for i in range(36)}
    assert split.assign(rows, RATIOS, salt, previous=previous) == hashed
    # at top_up_below or above, only an empty split is filled (one component each): the pure hash stands
    large = split.assign(rows, RATIOS, salt, min_groups=5, top_up_below=36)
    empty = sum(s not in hashed.values() for s in ("val", "test"))
    assert sum(large[e] != hashed[e] for e in hashed) == empty
