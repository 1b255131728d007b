"""Collect one source: fetch (or read) it, scrub secrets, discover its workspaces.

One call per source returns exactly one ``repos`` row and the workspaces to plan, whatever fails: a
bad repository is a row with a status and a reason, never an exception.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipelines.collect import secrets
from pipelines.collect.discover import DiscoverLimits, discover
from pipelines.collect.git import (
    FetchLimits,
    FileLimits,
    ReadAborted,
    ReadBudget,
    fetch,
    read_local_dir,
    read_tree,
)
from pipelines.collect.sources import Source
from pipelines.collect.synthetic.corpus import SCHEME as SYNTHETIC_SCHEME
from pipelines.collect.synthetic.corpus import materialize
from pipelines.ids import short_hash, workspace_id
from pipelines.terraform.install import tfpredict_home

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CollectSettings:
    """Everything a worker needs to collect a source; plain values so Ray can ship it."""

    cache_dir: str | None = None  # None: $TFPREDICT_HOME/git-cache of the node that clones
    fetch: FetchLimits = field(default_factory=FetchLimits)
    files: FileLimits = field(default_factory=FileLimits)
    discover: DiscoverLimits = field(default_factory=DiscoverLimits)


@dataclass
class WorkspaceTask:
    """A workspace to analyze and plan: what the plan stage needs, self-contained."""

    workspace_id: str
    repo_id: str
    source_url: str
    commit_sha: str
    path: str
    files: list[dict[str, str]]
    prior: str | None = None
    prior_files: list[dict[str, str]] | None = None
    dropped: str | None = None
    history: bool = False
    trusted: bool = False  # our own generated repository (Source.trusted)
    secret_kinds: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WorkspaceTask:
        return cls(**json.loads(text))


def _now() -> datetime:
    return datetime.now(UTC)


def safe_url(src: Source) -> str:
    """The source URL to store and log: credentials in it replaced by placeholders (clone with ``src.url``)."""
    return secrets.scrub_url(src.url)[0]


def _scrub_message(src: Source, text: str) -> str:
    """An error or log text with the source's URL (as given, credentials and all) and any secret scrubbed."""
    return secrets.scrub_text(text.replace(src.url, safe_url(src)), "error")[0]


def _repo_row(src: Source, **kw: Any) -> dict[str, Any]:
    url, url_findings = secrets.scrub_url(src.url)
    if isinstance(kw.get("error"), str):  # git's messages may quote the URL or a secret of the repository
        kw["error"] = _scrub_message(src, kw["error"])
    row = {
        "source_url": url,
        "repo_id": src.repo_id,
        "origin": src.origin,
        "ref": src.ref,
        "commit_sha": "",
        "status": "ok",
        "error": None,
        "n_tf_files": 0,
        "n_workspaces": 0,
        "n_commits": 0,
        "bytes": 0,
        "skipped_files": [],
        "license": src.license,
        "labels": json.dumps(dict(src.labels), sort_keys=True),
        "secrets_found": 0,
        "duration_s": 0.0,
        "collected_at": _now(),
    }
    row.update(kw)
    row["secrets_found"] += len(url_findings)  # a credential in the source URL counts as scrubbed from the row
    return row


def collect_source(src: Source, settings: CollectSettings) -> tuple[dict[str, Any], list[WorkspaceTask]]:
    """One source → (repos row, workspace tasks). Never raises for problems of the repository itself."""
    start = time.monotonic()
    try:
        return _collect(src, settings, start)
    except Exception as e:  # a bug or an unforeseen repository shape: keep the row, say what happened
        trace = _scrub_message(src, "".join(traceback.format_exception(e)))
        logger.error("collect failed for %s:\n%s", safe_url(src), trace)
        last = _scrub_message(src, traceback.format_exception_only(e)[-1].strip())  # scrub before the cut
        return _repo_row(src, status="error", error=f"internal: {last[:300]}", duration_s=time.monotonic() - start), []


def _collect(src: Source, settings: CollectSettings, start: float) -> tuple[dict[str, Any], list[WorkspaceTask]]:
    rid = src.repo_id
    snapshots: list[tuple[str, list[dict[str, str]]]] = []
    skipped: list[dict[str, str]] = []
    n_bytes = 0
    # one deadline for fetch + reading + discovery; every read cap ends the source as one row, no workspaces
    budget = ReadBudget.starting(settings.fetch.source_timeout_s, start)
    fetched_sha = ""
    try:
        if src.kind == "local":
            files, skipped, n_bytes = read_local_dir(src.url, settings.files, budget)
            commit = "local-" + short_hash(*(f"{f['path']}\0{f['content']}" for f in files))
            snapshots.append((commit, files))
        else:
            url = src.url
            if src.origin == "synthetic" and url.startswith(SYNTHETIC_SCHEME):
                url = materialize(src.labels["spec"], tfpredict_home() / "synthetic").as_uri()
            res = fetch(
                url,
                src.ref,
                settings.cache_dir or tfpredict_home() / "git-cache",
                settings.fetch,
                history=src.history and src.trusted,
                budget=budget,
            )
            if res.status != "ok":
                return _repo_row(
                    src, status=res.status, error=res.error, bytes=res.bytes, duration_s=time.monotonic() - start
                ), []
            n_bytes, fetched_sha = res.bytes, res.commit_sha
            for commit in res.commits:
                files, sk = read_tree(res.git_dir, commit, settings.files, budget)
                snapshots.append((commit, files))
                skipped = sk  # report what the newest commit skipped
    except ReadAborted as e:
        return _repo_row(
            src,
            status=e.status,
            error=e.reason,
            commit_sha=fetched_sha,
            bytes=n_bytes,
            duration_s=time.monotonic() - start,
        ), []
    findings_total = 0
    tasks: list[WorkspaceTask] = []
    prior: tuple[str, dict[str, list[dict[str, str]]]] | None = None
    head_files: list[dict[str, str]] = []
    for commit, raw_files in snapshots:
        files, findings = secrets.scrub_files(raw_files)
        findings_total += len(findings)
        by_file: dict[str, dict[str, int]] = {}
        for fd in findings:
            by_file.setdefault(fd.path, {}).setdefault(fd.kind, 0)
            by_file[fd.path][fd.kind] += 1
        workspaces = discover(files, settings.discover)
        current: dict[str, list[dict[str, str]]] = {}
        for ws in workspaces:
            kinds: dict[str, int] = {}
            for f in ws.files:
                for k, n in by_file.get(f["path"], {}).items():
                    kinds[k] = kinds.get(k, 0) + n
            prior_sha, prior_files = None, None
            if prior is not None and ws.path in prior[1]:
                prior_sha, prior_files = prior[0], prior[1][ws.path]
            tasks.append(
                WorkspaceTask(
                    workspace_id=workspace_id(rid, commit, ws.path, prior_sha),
                    repo_id=rid,
                    source_url=safe_url(src),
                    commit_sha=commit,
                    path=ws.path,
                    files=ws.files,
                    prior=prior_sha,
                    prior_files=prior_files,
                    dropped=ws.dropped,
                    history=src.history and src.trusted,
                    trusted=src.trusted,
                    secret_kinds=kinds,
                )
            )
            current[ws.path] = ws.files
        if budget.expired():  # scrubbing and discovery share the source's deadline
            return _repo_row(
                src,
                status="error",
                error=budget.timeout().reason,
                commit_sha=fetched_sha,
                bytes=n_bytes,
                duration_s=time.monotonic() - start,
            ), []
        prior = (commit, current)
        head_files = files
    head = snapshots[-1][0]
    n_tf = sum(f["path"].endswith((".tf", ".tf.json")) for f in head_files)
    n_ws = sum(1 for t in tasks if t.commit_sha == head)
    row = _repo_row(
        src,
        commit_sha=head,
        n_tf_files=n_tf,
        n_workspaces=n_ws,
        n_commits=len(snapshots),
        bytes=n_bytes,
        skipped_files=skipped,
        secrets_found=findings_total,
        duration_s=time.monotonic() - start,
    )
    if n_tf == 0:
        row.update(status="skipped", error="no_terraform: no .tf files at this commit")
    elif n_ws == 0:
        row.update(status="skipped", error="no_root_modules: every .tf directory is a child module")
    return row, tasks
