"""terraform plan JSON → normalized resource changes (the plans table and the model's target).

``terraform show -json`` differs across versions (format_version 0.2 in 1.0.x, 1.2 in 1.11); we keep
only fields present in both and sort by address so that the output is stable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

# Actions recorded for fresh state omit no-op rows (ARCHITECTURE.md, plan-prediction contract).
SKIP_ACTIONS = (["no-op"], ["read"])


def normalize_resource_changes(plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Managed resource changes of a plan, sorted by address, without no-op and read rows."""
    out = []
    for rc in plan.get("resource_changes") or []:
        if rc.get("mode", "managed") != "managed":
            continue
        actions = list((rc.get("change") or {}).get("actions") or [])
        if actions in SKIP_ACTIONS or not actions:
            continue
        out.append(
            {
                "address": rc["address"],
                "module_address": rc.get("module_address"),
                "type": rc["type"],
                "name": rc["name"],
                "provider": rc.get("provider_name", ""),
                "actions": actions,
            }
        )
    return sorted(out, key=lambda r: r["address"])


def canonical_prediction(changes: Iterable[Mapping[str, Any]]) -> str:
    """The assistant turn of the plan-prediction task: canonical JSON, addresses sorted."""
    rows = sorted(
        ({"address": c["address"], "actions": list(c["actions"])} for c in changes), key=lambda r: r["address"]
    )
    return json.dumps({"resource_changes": rows}, separators=(",", ":"), sort_keys=True)
