"""Arrow schemas of every table tfpredict writes, declared once and enforced before each write."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

STATUS_REPO = ("ok", "error", "skipped")
STATUS_PARSE = ("ok", "error", "timeout", "skipped")
STATUS_PLAN = ("ok", "error", "timeout", "too_large", "blocked", "skipped")
ISOLATIONS = ("bwrap", "none")
PLANNERS = ("terraform", "static", "none")
COMPLEXITY_BUCKETS = ("low", "medium", "high")

FILE = pa.struct([("path", pa.string()), ("content", pa.string())])
RESOURCE_CHANGE = pa.struct(
    [
        ("address", pa.string()),
        ("module_address", pa.string()),
        ("type", pa.string()),
        ("name", pa.string()),
        ("provider", pa.string()),
        ("actions", pa.list_(pa.string())),
    ]
)
KIND_COUNT = pa.struct([("kind", pa.string()), ("count", pa.int32())])
TS = pa.timestamp("us", tz="UTC")

REPOS = pa.schema(
    [
        ("source_url", pa.string()),
        ("repo_id", pa.string()),
        ("origin", pa.string()),  # url | manifest | local | github | azure_devops | synthetic
        ("ref", pa.string()),
        ("commit_sha", pa.string()),  # HEAD of the ref (local dirs: a content hash)
        ("status", pa.string()),  # STATUS_REPO
        ("error", pa.string()),  # reason when status != ok; "" never used, null instead
        ("n_tf_files", pa.int32()),
        ("n_workspaces", pa.int32()),
        ("n_commits", pa.int32()),  # commits collected (history mode > 1)
        ("bytes", pa.int64()),  # bytes fetched (git objects) or read (local)
        ("skipped_files", pa.list_(pa.struct([("path", pa.string()), ("reason", pa.string())]))),
        ("license", pa.string()),
        ("labels", pa.string()),  # JSON object, sorted keys
        ("secrets_found", pa.int32()),  # secrets scrubbed from its files (all collected commits)
        ("duration_s", pa.float64()),
        ("collected_at", TS),
    ]
)

PLANS = pa.schema(
    [
        ("workspace_id", pa.string()),  # hash(repo_id, commit_sha, path[, prior])
        ("repo_id", pa.string()),
        ("source_url", pa.string()),
        ("commit_sha", pa.string()),
        ("prior", pa.string()),  # history mode: the commit applied before planning; else null
        ("path", pa.string()),  # root module directory, repo-relative ("." for the root)
        ("files", pa.list_(FILE)),  # the workspace's files and its local modules', secrets scrubbed
        ("providers", pa.list_(pa.string())),
        ("resource_types", pa.list_(pa.string())),
        ("n_resources", pa.int32()),  # resource blocks (not instances)
        ("n_modules", pa.int32()),  # module calls, recursively through local modules
        ("n_variables", pa.int32()),
        ("n_outputs", pa.int32()),
        ("complexity_score", pa.float64()),
        ("complexity_bucket", pa.string()),  # COMPLEXITY_BUCKETS
        ("risky_constructs", pa.list_(pa.string())),
        ("secrets_found", pa.int32()),
        ("secret_kinds", pa.list_(KIND_COUNT)),
        ("parse_status", pa.string()),  # STATUS_PARSE
        ("parse_error", pa.string()),
        ("plan_status", pa.string()),  # STATUS_PLAN
        ("plan_error", pa.string()),
        ("plan_step", pa.string()),  # init | apply | plan | show | screen | static | ""
        ("planner", pa.string()),  # PLANNERS
        ("planner_notes", pa.list_(pa.string())),  # static planner: what it could not resolve
        ("terraform_version", pa.string()),
        ("resource_changes", pa.list_(RESOURCE_CHANGE)),
        ("duration_s", pa.float64()),
        ("node_id", pa.string()),  # Ray node that planned it
        ("isolation", pa.string()),  # ISOLATIONS: what terraform ran under; null when it never ran
        ("rules_version", pa.string()),  # screen/scrubber/sandbox rules that made the row (rerun replans older)
        ("collected_at", TS),
    ]
)

SPLITS = ("train", "val", "test")
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string()), ("weight", pa.int8())])

# datasets/<name>/{split}.parquet: the JSONL's examples with their metadata (build_dataset)
EXAMPLES = pa.schema(
    [
        ("example_id", pa.string()),  # hash of (task, messages)
        ("split", pa.string()),  # SPLITS
        ("task", pa.string()),  # plan_prediction | rego_policy | terminal_report | records | imported
        ("subtask", pa.string()),  # e.g. plan | change, write_policy | write_tests
        ("group", pa.string()),  # leakage unit (repo_id, query, incident ...)
        ("cluster", pa.string()),  # near-duplicate cluster (its smallest example_id)
        ("component", pa.string()),  # split unit: smallest group key among linked groups and clusters
        ("source_id", pa.string()),  # the source row (workspace_id, query path, record id ...)
        ("repo_id", pa.string()),
        ("provider", pa.string()),  # stratum
        ("complexity_bucket", pa.string()),
        ("labels", pa.string()),  # JSON object, sorted keys
        ("n_tokens", pa.int32()),  # rendered with the tokenizer's chat template
        ("n_trainable", pa.int32()),  # assistant tokens that carry loss (after truncation)
        ("truncated", pa.bool_()),  # longer than length.max_tokens, kept (length.over_limit = truncate)
        ("messages", pa.list_(MESSAGE)),
    ]
)

# datasets/<name>/dropped.parquet: every source row or example that did not make it, with the reason
DROPPED = pa.schema(
    [
        ("task", pa.string()),
        ("source_id", pa.string()),
        ("example_id", pa.string()),  # null when the source yielded no example
        ("stage", pa.string()),  # DROP_STAGES
        ("reason", pa.string()),  # short code, counted in stats
        ("detail", pa.string()),
    ]
)
DROP_STAGES = ("source", "validate", "length", "dedup")

TABLES: dict[str, pa.Schema] = {"repos": REPOS, "plans": PLANS, "examples": EXAMPLES, "dropped": DROPPED}

_ALLOWED: dict[str, dict[str, tuple[str, ...]]] = {
    "repos": {"status": STATUS_REPO},
    "plans": {
        "parse_status": STATUS_PARSE,
        "plan_status": STATUS_PLAN,
        "planner": PLANNERS,
        "complexity_bucket": COMPLEXITY_BUCKETS,
        "isolation": ISOLATIONS,
    },
    "examples": {"split": SPLITS},
    "dropped": {"stage": DROP_STAGES},
}


class SchemaError(ValueError):
    """Rows do not match a declared table schema."""


def conform(rows: Iterable[Mapping[str, Any]], table: str) -> pa.Table:
    """Rows → an Arrow table of the declared schema; every problem is listed in one SchemaError.

    Columns are selected and ordered by the schema; a missing column or a value of the wrong type or
    outside its allowed set is an error (a programmer error: producers must fill every column).
    """
    schema = TABLES[table]
    rows = list(rows)
    errors: list[str] = []
    for i, row in enumerate(rows):
        missing = [n for n in schema.names if n not in row]
        if missing:
            errors.append(f"row {i}: missing columns {missing}")
        for col, allowed in _ALLOWED.get(table, {}).items():
            if col in row and row[col] is not None and row[col] not in allowed:
                errors.append(f"row {i}: {col}={row[col]!r} not in {allowed}")
    if errors:
        raise SchemaError(f"{table}: {len(errors)} problem(s):\n  " + "\n  ".join(errors[:50]))
    try:
        return pa.Table.from_pylist([{n: r[n] for n in schema.names} for r in rows], schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as e:
        for f in schema:  # name the columns that do not convert
            try:
                pa.array([r[f.name] for r in rows], type=f.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as col_err:
                errors.append(f"column {f.name} ({f.type}): {col_err}")
        raise SchemaError(f"{table}: " + "; ".join(errors or [str(e)])) from e
