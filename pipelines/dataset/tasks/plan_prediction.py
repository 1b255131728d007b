"""plan_prediction: a workspace's Terraform files → the resource changes terraform plans for them.

Source rows: ``plans.parquet`` rows with ``plan_status == ok`` (other rows are counted drops). The user turn
follows the contract in ARCHITECTURE.md: the root module's files, then its local modules' files, each headed
``# file: <repo-relative path>`` in a stable order (root first; ``*.tf`` before ``*.tfvars`` within a directory,
then by path). The assistant turn is the canonical JSON of ``pipelines.terraform.plan_json.canonical_prediction``.

History-mode rows (planned after applying their parent commit) become change-prediction examples
(subtask ``change``): the current files in full, then a unified diff from the applied commit's files,
whose answer includes update/delete/replace actions.

Token budget (``max_input_tokens``, counted with the dataset's tokenizer): files are added whole, in order,
while they fit. The first file that does not fit is cut at a line boundary after its header (the header is
never cut) and ends with ``# [truncated: N more lines]``; every later file is named on one final
``# [omitted files: a.tf, b.tf]`` line (not counted against the budget). A history diff is cut the same
way. Examples whose input had to be cut are dropped (``input_over_budget``) unless ``keep_truncated``: their
answer may name resources the model cannot see.

Augmentation (``augment_copies`` > 0, off by default): each fresh-state row also yields that many rewrites
(rename, reorder, reformat; ``pipelines/dataset/augment.py``) with relabelled targets, in the row's group.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.dataset.augment import augment_with_report
from pipelines.dataset.example import SkipSource, chat, make_example
from pipelines.ids import short_hash
from pipelines.terraform.plan_json import canonical_prediction
from schemas.config import Strict

NAME = "plan_prediction"
TF_SUFFIXES = (".tf", ".tf.json", ".tfvars", ".tfvars.json")
SYSTEM_PROMPT = (
    "You are a Terraform planner. Given a root module's files, answer with the resource changes "
    "`terraform plan` would show for an empty state, as JSON: "
    '{"resource_changes": [{"address": ..., "actions": [...]}]}, addresses sorted, no-op changes omitted.'
)
SYSTEM_PROMPT_CHANGE = (
    "You are a Terraform planner. The state was applied from the previous version of a root module; given "
    "its current files and the diff from the applied version, answer with the resource changes `terraform plan` "
    'would show, as JSON: {"resource_changes": [{"address": ..., "actions": [...]}]}, addresses sorted, '
    "no-op changes omitted."
)


class Config(Strict):
    plans_path: str | None = None  # the collect stage's output; None: <output_dir>/plans.parquet (build job)
    include_static: bool = False  # keep rows labelled by the static planner (marked in labels.planner)
    include_history: bool = True  # change-prediction examples from history-mode rows
    max_input_tokens: int = 6144  # user-turn budget, counted with the dataset's tokenizer
    keep_truncated: bool = False
    system_prompt: str = SYSTEM_PROMPT
    system_prompt_change: str = SYSTEM_PROMPT_CHANGE
    tokenizer: str | None = None  # set by the build job (the dataset's tokenizer)
    # semantics-preserving rewrites (pipelines/dataset/augment.py), fresh-state rows only; off by default
    augment_copies: int = 0  # extra examples per row, each a differently seeded rewrite with relabelled targets
    augment_ops: list[str] = ["rename", "reorder", "reformat"]


# ---------------------------------------------------------------- sources
PLAN_COLUMNS = [
    "workspace_id",
    "repo_id",
    "source_url",
    "commit_sha",
    "prior",
    "path",
    "files",
    "providers",
    "complexity_bucket",
    "plan_status",
    "plan_error",
    "planner",
    "resource_changes",
]


def sources(cfg: Config) -> list[dict[str, Any]]:
    """One row per plans row (sorted by workspace_id); history rows carry the applied commit's files."""
    import pyarrow.parquet as pq

    if cfg.plans_path is None:
        raise ValueError("plan_prediction.plans_path is not set (the build job sets it to <output_dir>/plans.parquet)")
    rows = pq.read_table(cfg.plans_path, columns=PLAN_COLUMNS).to_pylist()
    by_commit = {(r["repo_id"], r["commit_sha"], r["path"]): r["files"] for r in rows}
    out = []
    for r in sorted(rows, key=lambda r: r["workspace_id"]):
        r["prior_files"] = by_commit.get((r["repo_id"], r["prior"], r["path"])) if r["prior"] else None
        out.append(r)
    return out


# ---------------------------------------------------------------- rendering
def file_order(files: Sequence[Mapping[str, str]], root: str) -> list[dict[str, str]]:
    """Terraform files only, in the contract's stable order: the root module first, then local modules by path."""
    root = "" if root in ("", ".") else root.rstrip("/") + "/"

    def key(f: Mapping[str, str]) -> tuple[int, str, int, str]:
        path = f["path"]
        in_root = path.startswith(root) and "/" not in path[len(root) :]
        directory, _, name = path.rpartition("/")
        return (0 if in_root else 1, directory, 1 if ".tfvars" in name else 0, name)

    return [dict(f) for f in sorted((f for f in files if f["path"].endswith(TF_SUFFIXES)), key=key)]


@functools.lru_cache(maxsize=4)
def _tokenizer(path: str) -> Any:
    from pipelines.dataset.tokens import load_tokenizer

    return load_tokenizer(path)


def _counter(cfg: Config) -> Any:
    if cfg.tokenizer is None:
        raise ValueError("plan_prediction needs the dataset tokenizer (the build job sets plan_prediction.tokenizer)")
    tok = _tokenizer(cfg.tokenizer)
    return lambda text: len(tok.encode(text, add_special_tokens=False))


def _cut(header: str, body: str, budget: int, count: Any) -> str:
    """``header`` and as many whole lines of ``body`` as fit in ``budget`` tokens, then the truncation marker."""
    lines = body.rstrip().split("\n")

    def text(keep: int) -> str:
        return (
            f"{header}\n"
            + "".join(f"{line}\n" for line in lines[:keep])
            + f"# [truncated: {len(lines) - keep} more lines]\n"
        )

    keep, room = 0, budget - count(text(0))
    while keep < len(lines) and room >= count(lines[keep] + "\n"):  # whole lines while they fit
        room -= count(lines[keep] + "\n")
        keep += 1
    while keep and count(text(keep)) > budget:  # token counts are not exactly additive across lines
        keep -= 1
    return text(keep)


def _fit(chunks: Sequence[tuple[str, str]], budget: int, count: Any) -> tuple[str, bool]:
    """Join (header, body) chunks under ``budget`` tokens by the module docstring's rule; (text, was_cut)."""
    parts: list[str] = []
    used = 0
    for i, (header, body) in enumerate(chunks):
        text = f"{header}\n{body.rstrip()}\n\n"
        n = count(text)
        if used + n <= budget:
            parts.append(text)
            used += n
            continue
        parts.append(_cut(header, body, budget - used, count))
        rest = [h.removeprefix("# file: ") for h, _ in chunks[i + 1 :]]
        if rest:
            parts.append(f"# [omitted files: {', '.join(rest)}]\n")
        return "".join(parts), True
    return "".join(parts).rstrip("\n") + "\n", False


def render_files(files: Sequence[Mapping[str, str]], root: str, budget: int, count: Any) -> tuple[str, bool]:
    """The user turn's file section: ``# file: <path>`` headed files under a token budget."""
    return _fit([(f"# file: {f['path']}", f["content"]) for f in file_order(files, root)], budget, count)


def unified_diff(before: Sequence[Mapping[str, str]], after: Sequence[Mapping[str, str]], root: str) -> str:
    """A git-style diff of the Terraform files between two commits, files in the contract's order."""
    old = {f["path"]: f["content"] for f in file_order(before, root)}
    new = {f["path"]: f["content"] for f in file_order(after, root)}
    out: list[str] = []
    for path in sorted(old.keys() | new.keys()):
        a, b = old.get(path), new.get(path)
        if a == b:
            continue
        out += difflib.unified_diff(
            (a or "").splitlines(keepends=True),
            (b or "").splitlines(keepends=True),
            fromfile=f"a/{path}" if a is not None else "/dev/null",
            tofile=f"b/{path}" if b is not None else "/dev/null",
        )
    return "".join(line if line.endswith("\n") else line + "\n" for line in out)


def provider_stratum(providers: Sequence[str]) -> str:
    """``registry.terraform.io/hashicorp/aws`` → ``aws``; builtin-only workspaces → ``terraform``."""
    names = sorted({p.rsplit("/", 1)[-1] for p in providers if not p.startswith("terraform.io/builtin/")})
    return "+".join(names) if names else "terraform"


def user_turn(files: Sequence[Mapping[str, str]], root: str, max_input_tokens: int, count: Any) -> tuple[str, bool]:
    """A fresh-plan user turn (``Root module:`` and the files under the budget); (text, was_cut). Serve's
    /predict builds its prompt with this too."""
    header = f"Root module: {root}\n\n"
    files_text, cut = render_files(files, root, max_input_tokens - count(header), count)
    return header + files_text, cut


# ---------------------------------------------------------------- examples
def examples(row: dict[str, Any], cfg: Config) -> list[dict[str, Any]]:
    if row["plan_status"] != "ok":
        raise SkipSource(f"plan_{row['plan_status']}: {(row.get('plan_error') or '')[:200]}")
    if row["planner"] == "static" and not cfg.include_static:
        raise SkipSource("static_label: labelled by the static planner (plan_prediction.include_static=false)")
    history = bool(row.get("prior"))
    if history and not cfg.include_history:
        raise SkipSource("history_excluded: plan_prediction.include_history=false")
    if history and row.get("prior_files") is None:
        raise SkipSource(f"prior_missing: no plans row for the applied commit {row['prior']}")
    out = [_example(row, cfg, row["files"], row["resource_changes"], {})]
    for k in range(1, cfg.augment_copies + 1) if not history else ():
        res = augment_with_report(row["files"], row["resource_changes"], row["path"], _seed(row, k), cfg.augment_ops)
        if res.applied:  # an op that could not be applied safely leaves the row as it was: no copy then
            out.append(_example(row, cfg, res.files, res.changes, {"augmented": k, "augment_ops": res.applied}))
    return out


def _seed(row: Mapping[str, Any], k: int) -> int:
    return int(short_hash(row["workspace_id"], str(k), n=8), 16)


def _example(
    row: Mapping[str, Any],
    cfg: Config,
    files: Sequence[Mapping[str, str]],
    changes: Sequence[Mapping[str, Any]],
    extra_labels: Mapping[str, Any],
) -> dict[str, Any]:
    history = bool(row.get("prior"))
    count = _counter(cfg)
    root = row["path"]
    user, cut = user_turn(files, root, cfg.max_input_tokens, count)
    if history:
        diff = unified_diff(row["prior_files"], row["files"], root)
        intro = "\n# changes since the applied commit (unified diff)\n"
        budget = cfg.max_input_tokens - count(user) - count(intro)
        diff_text, diff_cut = _fit([("# diff", diff or "(no file changes)\n")], max(budget, 0), count)
        user += intro + diff_text
        cut = cut or diff_cut
    if cut and not cfg.keep_truncated:
        raise SkipSource(f"input_over_budget: files exceed plan_prediction.max_input_tokens={cfg.max_input_tokens}")
    answer = canonical_prediction(changes)
    system = cfg.system_prompt_change if history else cfg.system_prompt
    return make_example(
        NAME,
        chat(system, user, answer),
        group=row["repo_id"],
        source_id=row["workspace_id"],
        subtask="change" if history else "plan",
        repo_id=row["repo_id"],
        provider=provider_stratum(row["providers"] or []),
        complexity_bucket=row["complexity_bucket"] or "",
        labels={
            "planner": row["planner"],
            "path": root,
            "commit_sha": row["commit_sha"],
            "prior": row.get("prior"),
            "truncated": cut,
            "source_url": row["source_url"],
            **extra_labels,
        },
    )


def parse_answer(text: str) -> list[dict[str, Any]]:
    """The assistant turn back into [{address, actions}] (raises ValueError on malformed JSON)."""
    return list(json.loads(text)["resource_changes"])
