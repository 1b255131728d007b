"""The plan stage: complete an analyzed workspace row with real ``terraform plan`` ground truth."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from pipelines.collect import secrets
from pipelines.terraform.install import terraform_version
from pipelines.terraform.sandbox import SandboxConfig, plan_workspace

logger = logging.getLogger(__name__)

PLAN_DISABLED = "plan_disabled: plan.enabled=false (analyzed and screened only)"


def plan_encoded(encoded: str, cfg: SandboxConfig | None, node_id: str | None = None) -> dict[str, Any]:
    """Analyzed row (``workspace.encode``) → complete plans row. Never raises for workspace problems.

    ``cfg=None`` means planning is disabled: rows routed to terraform end ``skipped`` and no terraform runs.
    """
    payload = json.loads(encoded)
    row, route = payload["row"], payload["route"]
    row["node_id"] = node_id
    if route != "terraform":
        return row
    if cfg is None:
        row.update(plan_status="skipped", plan_error=PLAN_DISABLED, plan_step="plan")
        return row
    start = time.monotonic()
    try:
        res = plan_workspace(
            row["files"], row["path"], cfg, prior_files=payload.get("prior_files"), trusted=payload["trusted"]
        )
    except Exception as e:  # the sandbox itself broke (e.g. disk full): keep the row
        logger.exception("plan failed for %s", row["workspace_id"])
        row.update(
            plan_status="error",
            plan_error=f"internal: {type(e).__name__}: {e}"[:600],
            plan_step="sandbox",
            planner="terraform",
            terraform_version=terraform_version(cfg.terraform),
            duration_s=time.monotonic() - start,
        )
        return row
    # terraform echoes configuration values in errors, and for_each keys land in addresses:
    # scrub both so that no secret is ever written
    error = secrets.scrub_text(res.error, "plan_error")[0] if res.error else None
    changes, _ = secrets.scrub_json(res.resource_changes, "resource_changes")
    row.update(
        plan_status=res.status,
        plan_error=error,
        plan_step=res.step,
        planner="terraform",
        terraform_version=res.terraform_version,
        resource_changes=changes,
        duration_s=res.duration_s,
        isolation=res.isolation or None,
    )
    return row
