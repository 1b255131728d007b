"""Declared Arrow schemas: rows round-trip through Parquet; bad rows fail with every problem."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pyarrow.parquet as pq
import pytest

from schemas.tables import PLANS, REPOS, SchemaError, conform

ROOT = Path(__file__).resolve().parents[1]


def repo_row(**kw: object) -> dict[str, object]:
    row = {n: None for n in REPOS.names}
    row.update(
        source_url="file:///r",
        repo_id="abc",
        origin="url",
        status="ok",
        n_tf_files=2,
        skipped_files=[{"path": "l.tf", "reason": "symlink (never followed)"}],
        collected_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    row.update(kw)
    return row


def test_repos_round_trip_through_parquet(tmp_path: Path) -> None:
    rows = [repo_row(), repo_row(repo_id="def", status="error", error="not_found: x")]
    pq.write_table(conform(rows, "repos"), tmp_path / "r.parquet")
    back = pq.read_table(tmp_path / "r.parquet")
    assert back.schema.equals(REPOS)
    assert back.to_pylist() == rows


def test_plans_nested_columns_round_trip(tmp_path: Path) -> None:
    row = {n: None for n in PLANS.names}
    row.update(
        workspace_id="w",
        files=[{"path": "main.tf", "content": "a = 1\n"}],
        plan_status="ok",
        planner="terraform",
        parse_status="ok",
        complexity_bucket="low",
        secret_kinds=[{"kind": "aws_access_key_id", "count": 1}],
        resource_changes=[
            {"address": "a.b", "module_address": None, "type": "a", "name": "b", "provider": "p", "actions": ["create"]}
        ],
    )
    pq.write_table(conform([row], "plans"), tmp_path / "p.parquet")
    assert pq.read_table(tmp_path / "p.parquet").to_pylist() == [row]


def test_bad_rows_list_every_problem() -> None:
    bad = repo_row(status="weird")
    del bad["license"]
    with pytest.raises(SchemaError) as e:
        conform([bad, repo_row(status="ok"), repo_row(status="nope")], "repos")
    assert str(e.value) == (
        "repos: 3 problem(s):\n  row 0: missing columns ['license']\n"
        "  row 0: status='weird' not in ('ok', 'error', 'skipped')\n"
        "  row 2: status='nope' not in ('ok', 'error', 'skipped')"
    )
    with pytest.raises(SchemaError, match="n_tf_files"):
        conform([repo_row(n_tf_files="two")], "repos")


def test_plan_prediction_json_schema() -> None:
    schema = json.loads((ROOT / "schemas" / "plan_prediction.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    ok = {"resource_changes": [{"address": 'module.m["a"].null_resource.x[0]', "actions": ["create", "delete"]}]}
    jsonschema.validate(ok, schema)
    for bad in (
        {"resource_changes": [{"address": "x", "actions": ["create"]}]},
        {"resource_changes": [{"address": "a.b", "actions": ["no-op"]}]},
        {"resource_changes": [], "extra": 1},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
