"""build_dataset job end to end on the real two-node Ray cluster, from a real collect run.

The corpus: 4 synthetic repos (histories planned by real terraform) plus a planted fork (a clone of
repo 0 at its first commit: identical examples) and a planted near-copy (repo 1's first commit with
one comment line added: near-duplicate examples under another repo_id).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import pytest

from pipelines.collect.synthetic import SyntheticConfig, generate_corpus
from pipelines.collect.synthetic.corpus import repo_refs
from pipelines.dataset import split as split_lib
from pipelines.dataset.validate import validate_file
from pipelines.ids import repo_id, synthetic_repo_id
from pipelines.terraform.plan_json import canonical_prediction
from ray_jobs import build_dataset, collect
from schemas.config import load_config
from tests.conftest import make_git_repo

SYNTH = {"n_repos": 4, "seed": 0, "commits_per_repo": 2, "cloud_fraction": 0.0}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def _files_at(repo: Path, commit: str) -> dict[str, str]:
    return {n: _git(repo, "show", f"{commit}:{n}") for n in _git(repo, "ls-tree", "-r", "--name-only", commit).split()}


@pytest.fixture(scope="module")
def collected(ray_cluster: object, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("build")
    out = root / "out"
    repos = generate_corpus(SyntheticConfig(**SYNTH), out / "synthetic")
    fork_files = _files_at(repos[0].path, repos[0].commits[0])
    make_git_repo(root / "fork", [fork_files])
    near_files = _files_at(repos[1].path, repos[1].commits[0])
    main_tf = next(p for p in sorted(near_files) if p.endswith("main.tf"))
    near_files[main_tf] = "# vendored copy, see upstream\n" + near_files[main_tf]
    make_git_repo(root / "near", [near_files])
    urls = {"fork": (root / "fork").as_uri(), "near": (root / "near").as_uri()}
    cfg = load_config(
        collect.CollectConfig,
        None,
        [
            f"output_dir={out}",
            f"cache_dir={root / 'git-cache'}",
            f"sources.synthetic={json.dumps(SYNTH)}",
            f"sources.urls={json.dumps(list(urls.values()))}",
        ],
    )
    collect.run(cfg)
    plans = pq.read_table(out / "plans.parquet").to_pylist()
    return {"root": root, "out": out, "repos": repos, "urls": urls, "plans": plans}


def build(out: Path, name: str, *overrides: str) -> dict[str, Any]:
    cfg = load_config(build_dataset.BuildDatasetConfig, None, [f"output_dir={out}", f"name={name}", *overrides])
    return build_dataset.run(cfg)


def read_split_tables(path: Path) -> list[dict[str, Any]]:
    return [r for s in ("train", "val", "test") for r in pq.read_table(path / f"{s}.parquet").to_pylist()]


@pytest.fixture(scope="module")
def dataset(collected: dict[str, Any]) -> dict[str, Any]:
    summary = build(collected["out"], "plans", "dedup.near_threshold=0.85")
    path = collected["out"] / "datasets" / "plans"
    return {"summary": summary, "path": path, "rows": read_split_tables(path)}


def test_assistant_turns_equal_the_real_plans(collected: dict[str, Any], dataset: dict[str, Any]) -> None:
    plans = {p["workspace_id"]: p for p in collected["plans"]}
    ok = {w for w, p in plans.items() if p["plan_status"] == "ok" and p["planner"] == "terraform"}
    seen = set()
    for r in dataset["rows"]:
        plan = plans[r["source_id"]]
        answer = json.loads(r["messages"][-1]["content"])
        assert answer == json.loads(canonical_prediction(plan["resource_changes"]))
        assert answer["resource_changes"] == [
            {"address": c["address"], "actions": c["actions"]}
            for c in sorted(plan["resource_changes"], key=lambda c: c["address"])
        ]
        assert r["subtask"] == ("change" if plan["prior"] else "plan")
        seen.add(r["source_id"])
    dropped = pq.read_table(dataset["path"] / "dropped.parquet").to_pylist()
    exact = {d["source_id"] for d in dropped if d["reason"] == "exact_duplicate"}
    # every terraform-planned workspace is an example, or an exact duplicate of one (the fork)
    assert seen | exact == ok and not seen & exact
    fork = [w for w, p in plans.items() if p["source_url"] == collected["urls"]["fork"]]
    upstream = [w for w, p in plans.items() if p["commit_sha"] == collected["repos"][0].commits[0] and not p["prior"]]
    assert len(fork) == len(upstream) == 1  # the fork's copy of the first commit: one kept, one dropped as identical
    assert sorted([fork[0] in exact, upstream[0] in exact]) == [False, True]
    assert sum(1 for p in plans.values() if p["prior"] and p["workspace_id"] in seen) > 0  # history examples


def test_every_line_passes_the_validator(dataset: dict[str, Any]) -> None:
    for split in ("train", "val", "test"):
        report = validate_file(dataset["path"] / f"{split}.jsonl")
        assert report.errors == [], (split, report.errors[:3])


def test_no_repo_and_no_near_duplicate_cluster_spans_two_splits(
    collected: dict[str, Any], dataset: dict[str, Any]
) -> None:
    rows = dataset["rows"]
    for key in ("group", "cluster"):
        splits: dict[str, set[str]] = {}
        for r in rows:
            splits.setdefault(r[key], set()).add(r["split"])
        assert all(len(v) == 1 for v in splits.values()), key
    near_group = repo_id(collected["urls"]["near"])
    up_group = synthetic_repo_id(SYNTH["seed"], collected["repos"][1].name)
    near = [r for r in rows if r["group"] == near_group]
    upstream = [r for r in rows if r["group"] == up_group]
    assert len(near) == 1 and upstream
    assert near[0]["cluster"] in {r["cluster"] for r in upstream}  # planted near-copy found by MinHash
    assert {r["split"] for r in near} == {r["split"] for r in upstream}
    stats = json.loads((dataset["path"] / "stats.json").read_text())
    assert stats["dedup"]["near_clusters"] >= 1 and stats["dedup"]["exact_dropped"] >= 1
    assert stats["splits"]["leakage"] == []


def test_stats_and_card_count_what_was_written(dataset: dict[str, Any]) -> None:
    stats = json.loads((dataset["path"] / "stats.json").read_text())
    rows = dataset["rows"]
    assert stats["examples"]["total"] == len(rows)
    for split in ("train", "val", "test"):
        lines = (dataset["path"] / f"{split}.jsonl").read_text().splitlines()
        assert len(lines) == stats["jsonl_lines"][split] == sum(1 for r in rows if r["split"] == split)
        assert all(lines)  # no blank lines
    dropped = pq.read_table(dataset["path"] / "dropped.parquet").to_pylist()
    assert stats["dropped"]["total"] == len(dropped)
    assert sum(stats["dropped"]["by_reason"].values()) == len(dropped)
    assert all(r["n_trainable"] > 0 and r["n_tokens"] > r["n_trainable"] for r in rows)
    card = (dataset["path"] / "README.md").read_text()
    assert f"## Examples ({len(rows)})" in card and "leakage check passed" in card
    harmony = (dataset["path"] / "harmony" / "train.txt").read_text()
    assert harmony.count("<|return|>") == stats["jsonl_lines"]["train"]


def test_rerun_is_byte_identical(collected: dict[str, Any], dataset: dict[str, Any]) -> None:
    first = {p.relative_to(dataset["path"]): p.read_bytes() for p in dataset["path"].rglob("*") if p.is_file()}
    build(collected["out"], "plans", "dedup.near_threshold=0.85")
    second = {p.relative_to(dataset["path"]): p.read_bytes() for p in dataset["path"].rglob("*") if p.is_file()}
    assert first.keys() == second.keys() and len(first) >= 11
    assert [k for k in first if first[k] != second[k]] == []


def test_adding_repositories_keeps_every_example_in_its_split(
    collected: dict[str, Any],
    dataset: dict[str, Any],  # built first: the tokenizer comes from the whole corpus
) -> None:
    out = collected["out"]
    table = pq.read_table(out / "plans.parquet")

    def plans_of(name: str, urls: set[str]) -> str:
        (out.parent / name).mkdir(exist_ok=True)
        rows = [r for r in table.to_pylist() if r["source_url"] in urls]
        pq.write_table(table.from_pylist(rows, schema=table.schema), out.parent / name / "plans.parquet")
        return f"plan_prediction.plans_path={out.parent / name / 'plans.parquet'}"

    synthetic = [url for url, _, _ in repo_refs(SyntheticConfig(**SYNTH))]  # the plans' source_url, by repo
    ids = [synthetic_repo_id(SYNTH["seed"], r.name) for r in collected["repos"]]
    # pick the salt that puts repo 0 in train and repo 2 in test: the growth assertions below then always have
    # examples in both to keep in place
    ratios = {s: getattr(build_dataset.SplitConfig(), s) for s in ("train", "val", "test")}
    salt = next(
        f"t{i}"
        for i in range(10_000)
        if [split_lib.split_of(split_lib.bucket(f"t{i}", ids[n]), ratios) for n in (0, 2)] == ["train", "test"]
    )
    small = plans_of("small", {synthetic[0], synthetic[2]})
    # pure hash assignment (no earlier build, no stratified minimum, no near-dup merges): new repositories that
    # are not copies of existing ones never move an example
    hashed = ["split.sticky=false", "split.min_groups=1000", "dedup.near_threshold=1.0", f"split.salt={salt}"]
    build(out, "small", small, *hashed)
    build(out, "large", plans_of("large", set(synthetic)), *hashed)
    fresh = {r["example_id"]: r["split"] for r in read_split_tables(out / "datasets" / "small")}
    full = {r["example_id"]: r["split"] for r in read_split_tables(out / "datasets" / "large")}
    assert fresh and len(full) > len(fresh) and {e: full.get(e) for e in fresh} == fresh
    # growing one dataset in place, now with the fork and the near-copy joining existing components and the
    # stratified minimum moving groups: every example keeps the split of the earlier build
    grow = ["dedup.near_threshold=0.85", "split.min_groups=2", f"split.salt={salt}"]
    build(out, "grow", small, *grow)
    before = {r["example_id"]: r["split"] for r in read_split_tables(out / "datasets" / "grow")}
    build(out, "grow", *grow)
    after = {r["example_id"]: r["split"] for r in read_split_tables(out / "datasets" / "grow")}
    assert len(after) > len(before) and {e: after.get(e) for e in before} == before
    assert set(before.values()) >= {"train", "test"}


def test_all_four_tasks_mix_into_one_valid_dataset(collected: dict[str, Any]) -> None:
    tasks = "tasks={plan_prediction: 1.0, rego_policy: 2.0, terminal_report: 1.0, records: 0.5}"
    summary = build(collected["out"], "mix", tasks, "terminal_report.n_synthetic=40", "records.limit=60")
    path = collected["out"] / "datasets" / "mix"
    rows = read_split_tables(path)
    by_task = {
        t: sum(1 for r in rows if r["task"] == t)
        for t in ("plan_prediction", "rego_policy", "terminal_report", "records")
    }
    assert by_task["rego_policy"] == 22 and by_task["terminal_report"] == 40  # 11 queries x 2 subtasks
    assert by_task["plan_prediction"] > 0 and 0 < by_task["records"] <= 60
    lines = 0
    for split in ("train", "val", "test"):
        report = validate_file(path / f"{split}.jsonl")
        assert report.errors == [], (split, report.errors[:3])
        lines += len((path / f"{split}.jsonl").read_text().splitlines())
    # mixture weights: rego x2 and records x0.5 in train.jsonl only
    train = [r for r in rows if r["split"] == "train"]
    expected_train = sum({"rego_policy": 2, "records": 0}.get(r["task"], 1) for r in train) + sum(
        1
        for r in train
        if r["task"] == "records" and build_dataset.split_lib.bucket("tfpredict:weight", r["example_id"]) < 0.5
    )
    assert summary["jsonl_lines"]["train"] == expected_train
    assert lines == expected_train + sum(1 for r in rows if r["split"] != "train")
    first = {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    build(collected["out"], "mix", tasks, "terminal_report.n_synthetic=40", "records.limit=60")
    assert {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()} == first  # byte-identical


def _ray_worker_running(fn: str) -> psutil.Process | None:
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if cmd.startswith("ray::") and fn in cmd:  # Ray titles a worker ray::<task> while it runs one
            return proc
    return None


def test_killed_worker_mid_build_changes_nothing(collected: dict[str, Any]) -> None:
    args = ["tasks={plan_prediction: 1.0, terminal_report: 1.0}", "terminal_report.n_synthetic=600"]
    build(collected["out"], "kill-ref", *args)
    reference = collected["out"] / "datasets" / "kill-ref"
    result: dict[str, Any] = {}
    t = threading.Thread(target=lambda: result.update(build(collected["out"], "kill", *args)))
    t.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and t.is_alive() and time.monotonic() < deadline:
        worker = _ray_worker_running("prepare_udf")
        if worker is not None:
            worker.kill()
            killed = worker.pid
        time.sleep(0.05)
    t.join(timeout=600)
    assert killed is not None, "no tokenization task was running to kill"
    path = collected["out"] / "datasets" / "kill"
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "train.parquet", "dropped.parquet"):
        assert (path / name).read_bytes() == (reference / name).read_bytes(), name
