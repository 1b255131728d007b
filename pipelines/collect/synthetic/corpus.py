"""Repo specs (pure), git (side effects) and the manifest: the corpus on disk and what it expects."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import random
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git

from pipelines.collect.synthetic.config import Flavor, SyntheticConfig, resolve_flavor
from pipelines.collect.synthetic.families import CLOUD_FAMILIES, FAMILIES, NONCLOUD_FAMILIES, Family
from pipelines.collect.synthetic.model import Instances, for_flavor, fresh_plan, history_plan
from pipelines.collect.synthetic.mutations import mutate
from pipelines.collect.synthetic.text import Rendered, flavor_of

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
AUTHOR = ("tfpredict synthetic", "synthetic@tfpredict.invalid")
BASE_EPOCH = 1704067200  # 2024-01-01T00:00:00Z; commit k of repo i is at + i days + k hours
GIT_TIMEOUT_S = 60

ROTATION_STRIDE = 2  # repo j's first history commit starts at KINDS[2j]: 3 repos x 2 commits cover the first six


@dataclass(frozen=True)
class SyntheticRepo:
    name: str
    path: Path
    url: str
    commits: tuple[str, ...]
    workspaces: tuple[str, ...]
    cloud: bool
    expected: Mapping[tuple[str, str], list[dict[str, Any]]]
    expected_history: Mapping[tuple[str, str, str], list[dict[str, Any]]]
    family: str = ""
    flavor: Flavor = "terraform_data"  # resource flavor the plannable workspaces are written in


# --------------------------------------------------------------------------------------------------
# Repo specs (pure) and git (side effects)
# --------------------------------------------------------------------------------------------------


@dataclass
class _Commit:
    files: dict[str, str]
    message: str
    instances: dict[str, Instances]


@dataclass
class _Spec:
    index: int
    name: str
    family: str
    cloud: bool
    flavor: Flavor
    commits: list[_Commit] = field(default_factory=list)

    @property
    def workspaces(self) -> tuple[str, ...]:
        return tuple(sorted(self.commits[0].instances))

    def digest(self) -> str:
        h = hashlib.sha256()
        for c in self.commits:
            h.update(json.dumps([c.message, sorted(c.files.items())]).encode())
        return h.hexdigest()[:16]


def _is_cloud(cfg: SyntheticConfig, i: int) -> bool:
    """Spread cloud repos evenly: repo i is cloud when the running cloud quota steps up at i."""
    f = cfg.cloud_fraction
    return math.floor((i + 1) * f + 1e-9) > math.floor(i * f + 1e-9)


def _repo_spec(cfg: SyntheticConfig, i: int, flavor: Flavor) -> _Spec:
    """Everything about repo ``i`` except its SHAs; depends only on (cfg, i, flavor), not on n_repos.

    The flavor changes only how resources are written, never a random draw: both flavors of a repo have
    the same names, counts, keys and mutations.
    """
    rng = random.Random(f"tfpredict-synthetic:{cfg.seed}:{i}")
    n_cloud_before = sum(_is_cloud(cfg, j) for j in range(i))
    cloud = _is_cloud(cfg, i)
    if cloud:
        family = CLOUD_FAMILIES[(n_cloud_before + cfg.seed) % len(CLOUD_FAMILIES)]
    else:
        ordinal = i - n_cloud_before
        family = NONCLOUD_FAMILIES[(ordinal + cfg.seed) % len(NONCLOUD_FAMILIES)]
    fam = FAMILIES[family]
    spec = _Spec(i, f"synth-{i:04d}-{fam.label}", family, cloud, flavor)
    params = fam.init(rng, cfg)
    params["style"]["flavor"] = flavor
    files, insts = _render(fam, params)
    title = (
        params["names"].get("project")
        or params["names"].get("service")
        or params["names"].get("pipeline")
        or params["names"].get("network")
    )
    spec.commits.append(_Commit(files, f"Initial {title} infrastructure", insts))
    for k in range(1, cfg.commits_per_repo):
        params = copy.deepcopy(params)
        # Independent of commits_per_repo, so that more commits only extend a repo's history.
        rotation = None if cloud else (i - n_cloud_before) * ROTATION_STRIDE + k - 1
        message = mutate(params, rng, rotation)
        files, insts = _render(fam, params)
        spec.commits.append(_Commit(files, message, insts))
    return spec


def _render(fam: Family, params: dict[str, Any]) -> Rendered:
    files, insts = fam.render(params)
    flavor = flavor_of(params)
    return files, {ws: for_flavor(model, flavor) for ws, model in insts.items()}


def _git_env(repo_dir: Path, when: int) -> dict[str, str]:
    """Environment for every git call: no user/system config or hooks, fixed identity and dates."""
    stamp = f"{when} +0000"
    return {
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_DIR": str(repo_dir / ".git"),
        "GIT_WORK_TREE": str(repo_dir),
        "GIT_INDEX_FILE": str(repo_dir / ".git" / "index"),
        "GIT_AUTHOR_NAME": AUTHOR[0],
        "GIT_AUTHOR_EMAIL": AUTHOR[1],
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_NAME": AUTHOR[0],
        "GIT_COMMITTER_EMAIL": AUTHOR[1],
        "GIT_COMMITTER_DATE": stamp,
    }


def _sync_worktree(root: Path, old: Mapping[str, str], new: Mapping[str, str]) -> None:
    for path in sorted(set(old) - set(new)):
        target = root / path
        target.unlink()
        parent = target.parent
        while parent != root and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    for path, content in new.items():
        if old.get(path) != content:
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode("utf-8"))


def _build_repo(spec: _Spec, path: Path) -> list[str]:
    """Write the repo's commits into a temp dir, then swap it in place of ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    g = git.Git(str(tmp))
    shas: list[str] = []
    base = BASE_EPOCH + spec.index * 86400
    try:
        g.execute(
            ["git", "init", "-q", "-b", "main", "--template=", str(tmp)],
            env=_git_env(tmp, base),
            kill_after_timeout=GIT_TIMEOUT_S,
        )
        previous: dict[str, str] = {}
        for k, commit in enumerate(spec.commits):
            env = _git_env(tmp, base + k * 3600)
            _sync_worktree(tmp, previous, commit.files)
            previous = commit.files
            g.execute(["git", "add", "-A"], env=env, kill_after_timeout=GIT_TIMEOUT_S)
            g.execute(
                [
                    "git",
                    "commit",
                    "-q",
                    "--no-verify",
                    "--no-gpg-sign",
                    "--allow-empty",
                    "--cleanup=verbatim",
                    "-m",
                    commit.message,
                ],
                env=env,
                kill_after_timeout=GIT_TIMEOUT_S,
            )
            shas.append(str(g.execute(["git", "rev-parse", "HEAD"], env=env, kill_after_timeout=GIT_TIMEOUT_S)))
    except git.GitCommandError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(
            f"git failed while generating {spec.name}: {e}. Fix: check that `git` >= 2.28 "
            "is installed and the output directory is writable."
        ) from e
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
    return shas


def _head(path: Path) -> str | None:
    try:
        return git.Repo(path).head.commit.hexsha
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return None


# --------------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------------


def _entry(spec: _Spec, shas: list[str]) -> dict[str, Any]:
    expected = [
        {"commit": sha, "workspace": ws, "resource_changes": fresh_plan(c.instances[ws])}
        for sha, c in zip(shas, spec.commits, strict=True)
        for ws in spec.workspaces
    ]
    history = []
    if not spec.cloud:
        for k in range(1, len(shas)):
            for ws in spec.workspaces:
                history.append(
                    {
                        "prior": shas[k - 1],
                        "commit": shas[k],
                        "workspace": ws,
                        "resource_changes": history_plan(
                            spec.commits[k - 1].instances[ws], spec.commits[k].instances[ws]
                        ),
                    }
                )
    return {
        "name": spec.name,
        "family": spec.family,
        "cloud": spec.cloud,
        "flavor": spec.flavor,
        "digest": spec.digest(),
        "commits": shas,
        "workspaces": list(spec.workspaces),
        "expected": expected,
        "expected_history": history,
    }


def _repo_from_entry(out_dir: Path, e: Mapping[str, Any]) -> SyntheticRepo:
    path = (out_dir / e["name"]).resolve()
    return SyntheticRepo(
        name=e["name"],
        path=path,
        url=path.as_uri(),
        commits=tuple(e["commits"]),
        workspaces=tuple(e["workspaces"]),
        cloud=bool(e["cloud"]),
        expected={(x["commit"], x["workspace"]): x["resource_changes"] for x in e["expected"]},
        expected_history={
            (x["prior"], x["commit"], x["workspace"]): x["resource_changes"] for x in e["expected_history"]
        },
        family=e["family"],
        flavor=e.get("flavor", "terraform_data"),
    )


def _read_entries(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Entries of an existing manifest by name; {} when there is none or it is unreadable."""
    try:
        data = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        return {e["name"]: e for e in data["repos"]} if data.get("version") == MANIFEST_VERSION else {}
    except (OSError, ValueError, KeyError, TypeError) as e:
        if (out_dir / MANIFEST).exists():
            logger.warning("synthetic: ignoring unreadable %s (%s); rebuilding", out_dir / MANIFEST, e)
        return {}


def generate_corpus(cfg: SyntheticConfig, out_dir: Path) -> list[SyntheticRepo]:
    """Generate (or reuse) ``cfg.n_repos`` git repositories under ``out_dir`` plus ``manifest.json``.

    Repos whose manifest entry has the same content digest and whose HEAD matches are kept as they
    are; any other repo is rebuilt from scratch. The resource flavor is ``resolve_flavor(cfg)``; the
    manifest's ``config`` records the resolved one.
    """
    out_dir = Path(out_dir)
    flavor = resolve_flavor(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    old = _read_entries(out_dir)
    entries = []
    built = 0
    for i in range(cfg.n_repos):
        spec = _repo_spec(cfg, i, flavor)
        path = out_dir / spec.name
        prev = old.get(spec.name)
        reusable = bool(prev and prev.get("digest") == spec.digest() and prev.get("commits"))
        if reusable and prev is not None and _head(path) == prev["commits"][-1]:
            shas = list(prev["commits"])
        else:
            shas = _build_repo(spec, path)
            built += 1
        entries.append(_entry(spec, shas))
    config = cfg.model_dump() | {"resource_flavor": flavor}
    manifest = {"version": MANIFEST_VERSION, "config": config, "repos": entries}
    tmp = out_dir / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / MANIFEST)
    logger.info(
        "synthetic corpus at %s: %d repos (%d built, %d reused), %s flavor",
        out_dir,
        len(entries),
        built,
        len(entries) - built,
        flavor,
    )
    return [_repo_from_entry(out_dir, e) for e in entries]


def load_manifest(out_dir: Path) -> list[SyntheticRepo]:
    """The repos recorded by the last ``generate_corpus`` into ``out_dir``."""
    path = Path(out_dir) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise FileNotFoundError(f"no synthetic corpus manifest at {path}; run generate_corpus first") from e
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); delete it and run generate_corpus again") from e
    if data.get("version") != MANIFEST_VERSION:
        raise ValueError(
            f"{path} has manifest version {data.get('version')!r}, expected {MANIFEST_VERSION}; "
            "run generate_corpus again to rebuild it"
        )
    return [_repo_from_entry(Path(out_dir), e) for e in data["repos"]]


# --------------------------------------------------------------------------------------------------
# Repos built where they are cloned
# --------------------------------------------------------------------------------------------------
SCHEME = "synthetic://"


def repo_refs(cfg: SyntheticConfig) -> list[tuple[str, str, str]]:
    """``(url, name, spec)`` per repo of the corpus, without building any: the URL names the repo's commits
    (``synthetic://<key>/<name>``, the same on every machine), the spec is what ``materialize`` needs to
    build it on whichever node collects it (so no node reads another's disk for the corpus)."""
    flavor = resolve_flavor(cfg)
    out = []
    for i in range(cfg.n_repos):
        spec = _repo_spec(cfg, i, flavor)
        blob = json.dumps({"config": cfg.model_dump(), "index": i, "flavor": flavor}, sort_keys=True)
        out.append((f"{SCHEME}{_key(spec)}/{spec.name}", spec.name, blob))
    return out


def _key(spec: _Spec) -> str:
    """Content and commit dates (which the index sets): equal keys, equal SHAs."""
    return hashlib.sha256(f"{spec.digest()}:{spec.index}".encode()).hexdigest()[:16]


def materialize(spec_json: str, root: Path) -> Path:
    """Build (once per node: the path names the commits) the repo a ``repo_refs`` spec describes; its path."""
    from pipelines.storage import node_lock

    d = json.loads(spec_json)
    spec = _repo_spec(SyntheticConfig(**d["config"]), int(d["index"]), d["flavor"])
    path = Path(root) / _key(spec) / spec.name
    with node_lock(path.with_name(f".{spec.name}.lock")):
        if _head(path) is None:
            _build_repo(spec, path)
    return path
