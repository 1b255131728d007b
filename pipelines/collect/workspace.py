"""Analyze one workspace task: parse, measure, screen, and decide how to label it.

Routes: ``terraform`` (every provider is in the offline mirror and nothing is blocked), ``static``
(providers we cannot run offline: the static planner labels it now), ``blocked`` (screening found
something plan would execute or fetch), ``skip`` (dropped by a quality filter or unparseable).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipelines.collect.analyze import analyze, parse_workspace
from pipelines.collect.hcl import HclParser
from pipelines.collect.repo import WorkspaceTask
from pipelines.collect.screen import SCREEN_RULES_VERSION, screen
from pipelines.collect.secrets import SCRUBBER_RULES_VERSION
from pipelines.terraform.sandbox import SANDBOX_RULES_VERSION
from pipelines.terraform.static_planner import static_plan

# the rules a plans row was made under; a rerun replans rows whose version differs (ray_jobs/collect.py)
RULES_VERSION = f"screen={SCREEN_RULES_VERSION},scrub={SCRUBBER_RULES_VERSION},sandbox={SANDBOX_RULES_VERSION}"


@dataclass(frozen=True)
class AnalyzeSettings:
    allowed_providers: tuple[str, ...]  # what the sandbox can plan offline
    static_fallback: bool = True  # label other providers with the static planner
    parse_timeout_s: float = 10.0


_PARSERS: dict[float, HclParser] = {}


def worker_parser(timeout_s: float) -> HclParser:
    """One parser process per worker process, reused across tasks."""
    if timeout_s not in _PARSERS:
        _PARSERS[timeout_s] = HclParser(timeout_s=timeout_s)
    return _PARSERS[timeout_s]


def base_row(task: WorkspaceTask) -> dict[str, Any]:
    return {
        "workspace_id": task.workspace_id,
        "repo_id": task.repo_id,
        "source_url": task.source_url,
        "commit_sha": task.commit_sha,
        "prior": task.prior,
        "path": task.path,
        "files": task.files,
        "providers": [],
        "resource_types": [],
        "n_resources": 0,
        "n_modules": 0,
        "n_variables": 0,
        "n_outputs": 0,
        "complexity_score": 0.0,
        "complexity_bucket": None,
        "risky_constructs": [],
        "secrets_found": sum(task.secret_kinds.values()),
        "secret_kinds": [{"kind": k, "count": n} for k, n in sorted(task.secret_kinds.items())],
        "parse_status": "skipped",
        "parse_error": None,
        "plan_status": "skipped",
        "plan_error": None,
        "plan_step": "",
        "planner": "none",
        "planner_notes": [],
        "terraform_version": None,
        "resource_changes": [],
        "duration_s": 0.0,
        "node_id": None,
        "isolation": None,
        "rules_version": RULES_VERSION,
    }


def analyze_task(task: WorkspaceTask, settings: AnalyzeSettings, parser: HclParser) -> tuple[dict[str, Any], str]:
    """→ (partial plans row, route). The plan stage completes rows whose route is ``terraform``."""
    row = base_row(task)
    if task.dropped:
        row.update(plan_error=task.dropped, plan_step="discover")
        return row, "skip"
    parsed = parse_workspace(task.files, parser)
    row.update(parse_status=parsed.status, parse_error=parsed.error)
    if parsed.status != "ok":
        row.update(plan_error=f"parse_{parsed.status}: {parsed.error}", plan_step="parse")
        return row, "skip"
    a = analyze(parsed)
    row.update(
        providers=a.providers,
        resource_types=a.resource_types,
        n_resources=a.n_resources,
        n_modules=a.n_modules,
        n_variables=a.n_variables,
        n_outputs=a.n_outputs,
        complexity_score=a.complexity_score,
        complexity_bucket=a.complexity_bucket,
    )
    s = screen(
        parsed, task.files, a.providers, settings.allowed_providers, root=task.path, history=task.prior is not None
    )
    row.update(risky_constructs=s.risky)
    if s.blocked:
        row.update(plan_status="blocked", plan_error="; ".join(s.blocked), plan_step="screen")
        return row, "blocked"
    if not s.providers_outside:
        return row, "terraform"
    if not settings.static_fallback:
        row.update(
            plan_error=f"provider_not_in_mirror: {s.providers_outside} (plan.static_fallback is off)",
            plan_step="screen",
        )
        return row, "skip"
    if task.prior is not None:  # the static planner knows nothing of prior state
        row.update(
            plan_error=f"provider_not_in_mirror: {s.providers_outside}; history needs the real planner",
            plan_step="screen",
        )
        return row, "skip"
    sp = static_plan({f["path"]: f["content"] for f in task.files}, task.path, parser=parser.parse)
    row.update(planner="static", planner_notes=sp.unresolved, plan_step="static")
    if sp.error:
        row.update(plan_status="error", plan_error=f"static: {sp.error}")
    else:
        row.update(plan_status="ok", resource_changes=sp.resource_changes)
    return row, "static"


def encode(row: dict[str, Any], route: str, task: WorkspaceTask) -> str:
    """Row + route (+ prior files for history plans) as one JSON string for the next Ray stage."""
    payload = {"row": row, "route": route, "prior_files": task.prior_files, "trusted": task.trusted}
    return json.dumps(payload, default=str)
