"""The collect job end to end on the session's two-node Ray cluster, with real git and terraform.

Sources: a small synthetic corpus (ground truth checked against what the generator knows) plus one
hostile or broken repository per failure mode. The only fake is none: the repo "requiring auth" is a
real HTTP server on loopback answering 401, as a private git host does.
"""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.collect.synthetic import generate_corpus
from pipelines.collect.synthetic.corpus import repo_refs
from ray_jobs import collect
from schemas.config import load_config
from tests.collect.test_hcl import HANGING_HCL
from tests.conftest import make_git_repo

MARKER = Path(f"/tmp/tfpredict-external-ran-{uuid.uuid4().hex}")
SYMLINK_TARGET_TEXT = f"SYMLINK-TARGET-{uuid.uuid4().hex}"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GITHUB_TOKEN = "ghp_" + "Zq3vT8xWm2Lk9Pd4Rs7Yb1Nc6Hf0Ja5Ue2Gi"
PASSWORD = "Tr0ub4dor&3-horse-battery"
PRIVATE_KEY_BODY = "MIIEowIBAAKCAQEA7bq98C3nGbXx1Tj2dV0hFqGgHsJmVpTq2mC0FvR8eXq1fZkJ"
PRIVATE_KEY = f"-----BEGIN RSA PRIVATE KEY-----\n{PRIVATE_KEY_BODY}\n-----END RSA PRIVATE KEY-----"
PLANTED = (AWS_KEY_ID, AWS_SECRET, GITHUB_TOKEN, PASSWORD, PRIVATE_KEY_BODY)

HOSTILE: dict[str, dict[str, str]] = {
    "bad-hcl": {"main.tf": 'resource "terraform_data" "a" {\n  input = \n'},
    "hang-hcl": {"main.tf": HANGING_HCL},
    "plan-error": {"main.tf": 'resource "null_resource" "x" {\n  nope = 1\n}\n'},
    "plan-hang": {"main.tf": 'resource "terraform_data" "x" {\n  count = 60000\n}\n'},
    "external": {"main.tf": f'data "external" "x" {{\n  program = ["sh", "-c", "touch {MARKER}"]\n}}\n'},
    "symlink": {"main.tf": 'resource "terraform_data" "ok" {}\n', "escape.tf": "symlink:{target}"},
    "remote-module": {"main.tf": 'module "vpc" {\n  source = "git::https://example.com/vpc.git"\n}\n'},
    "secrets": {
        "main.tf": (
            'variable "db_password" {\n  default = "' + PASSWORD + '"\n}\n'
            'provider "null" {}\n'
            'resource "terraform_data" "db" {\n  input = var.db_password\n}\n'
            'resource "terraform_data" "key" {\n  input = <<EOF\n' + PRIVATE_KEY + "\nEOF\n}\n"
        ),
        "terraform.tfvars": f'aws_access_key = "{AWS_KEY_ID}"\naws_secret_key = "{AWS_SECRET}"\n'
        f'github_token = "{GITHUB_TOKEN}"\n',
        "variables.tf": 'variable "aws_access_key" {}\nvariable "aws_secret_key" {}\nvariable "github_token" {}\n',
    },
    "too-large": {"main.tf": 'resource "terraform_data" "a" {}\n', "blob.txt": os.urandom(700_000).hex()},
}


class _AuthRequired(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="private"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def auth_server() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AuthRequired)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/org/private.git"
    srv.shutdown()


def job_config(out: Path, urls: list[str], local_dirs: list[str], n_synth: int) -> collect.CollectConfig:
    return load_config(
        collect.CollectConfig,
        None,
        [
            f"output_dir={out}",
            f"cache_dir={out.parent / 'git-cache'}",
            f"sources.urls={json.dumps(urls)}",
            f"sources.local_dirs={json.dumps(local_dirs)}",
            f"sources.synthetic={json.dumps({'n_repos': n_synth, 'seed': 0, 'commits_per_repo': 3})}"
            if n_synth
            else "sources.synthetic=null",
            "clone.allowed_protocols=[https, ssh, file, http]",
            "clone.max_repo_mb=0.5",
            "files.max_file_kb=200",
            "plan.parse_timeout_s=3",
            "plan.timeout_s=25",
        ],
    )


@pytest.fixture(scope="module")
def run(ray_cluster: object, tmp_path_factory: pytest.TempPathFactory, auth_server: str) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("collect")
    outside = root / "outside"
    outside.mkdir()
    (outside / "target.tf").write_text(f"# {SYMLINK_TARGET_TEXT}\n")
    urls = {}
    for name, spec in HOSTILE.items():
        files = {k: v.format(target=outside / "target.tf") if k == "escape.tf" else v for k, v in spec.items()}
        make_git_repo(root / "repos" / name, [files])
        urls[name] = (root / "repos" / name).as_uri()
    urls["missing"] = (root / "repos" / "does-not-exist").as_uri()
    urls["auth"] = auth_server
    local = root / "plain-dir"
    (local / "net").mkdir(parents=True)
    (local / "main.tf").write_text('module "net" {\n  source = "./net"\n}\n')
    (local / "net" / "main.tf").write_text('resource "null_resource" "n" {\n  count = 2\n}\n')
    (local / "peek.tf").symlink_to(outside / "target.tf")
    cfg = job_config(root / "out", list(urls.values()), [str(local)], n_synth=4)
    summary = collect.run(cfg)
    repos = pq.read_table(root / "out" / "repos.parquet").to_pylist()
    plans = pq.read_table(root / "out" / "plans.parquet").to_pylist()
    return {
        "root": root,
        "cfg": cfg,
        "summary": summary,
        "urls": urls,
        "local": str(local),
        "repos": {r["source_url"]: r for r in repos},
        "plans": plans,
        "n_repos_rows": len(repos),
    }


def plans_of(run: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [p for p in run["plans"] if p["source_url"] == run["urls"][name]]


def test_every_source_yields_exactly_one_repo_row(run: dict[str, Any]) -> None:
    synth = [r for r in run["repos"].values() if r["origin"] == "synthetic"]
    assert run["n_repos_rows"] == len(run["urls"]) + 1 + 4 == len(run["repos"])
    assert len(synth) == 4 and all(r["status"] == "ok" and r["n_commits"] == 3 for r in synth)
    status = {
        name: (run["repos"][u]["status"], (run["repos"][u]["error"] or "").split(":")[0])
        for name, u in run["urls"].items()
    }
    assert status == {
        "bad-hcl": ("ok", ""),
        "hang-hcl": ("ok", ""),
        "plan-error": ("ok", ""),
        "plan-hang": ("ok", ""),
        "external": ("ok", ""),
        "symlink": ("ok", ""),
        "remote-module": ("ok", ""),
        "secrets": ("ok", ""),
        "too-large": ("skipped", "too_large"),
        "missing": ("error", "not_found"),
        "auth": ("error", "auth_required"),
    }
    assert run["repos"][run["urls"]["symlink"]]["skipped_files"] == [
        {"path": "escape.tf", "reason": "symlink (never followed)"}
    ]
    assert run["repos"][run["local"]]["skipped_files"] == [{"path": "peek.tf", "reason": "symlink (never followed)"}]


def test_every_workspace_yields_one_row_with_its_status(run: dict[str, Any]) -> None:
    ids = [p["workspace_id"] for p in run["plans"]]
    assert len(ids) == len(set(ids)) == run["summary"]["workspaces"] == run["summary"]["planned_now"]
    got = {
        name: [(p["parse_status"], p["plan_status"], p["plan_step"]) for p in plans_of(run, name)] for name in HOSTILE
    }
    assert got == {
        "bad-hcl": [("error", "skipped", "parse")],
        "hang-hcl": [("timeout", "skipped", "parse")],
        "plan-error": [("ok", "error", "plan")],
        "plan-hang": [("ok", "timeout", "plan")],
        "external": [("ok", "blocked", "screen")],
        "symlink": [("ok", "ok", "")],
        "remote-module": [("ok", "blocked", "screen")],
        "secrets": [("ok", "ok", "")],
        "too-large": [],
    }
    [ext] = plans_of(run, "external")
    assert ext["plan_error"].startswith("data_source_external: main.tf data.external.x would run at plan time")
    [rm] = plans_of(run, "remote-module")
    assert rm["plan_error"].startswith("remote_module: main.tf module.vpc source 'git::https://example.com/vpc.git'")
    assert plans_of(run, "plan-hang")[0]["plan_error"] == "terraform plan exceeded the 25s limit"
    assert plans_of(run, "hang-hcl")[0]["parse_error"] == "main.tf: parse did not finish within 3s"
    local = [p for p in run["plans"] if p["source_url"] == run["local"]]
    assert [(p["path"], [c["address"] for c in p["resource_changes"]]) for p in local] == [
        (".", ["module.net.null_resource.n[0]", "module.net.null_resource.n[1]"])
    ]


def test_blocked_code_never_ran_and_symlink_target_never_read(run: dict[str, Any]) -> None:
    assert not MARKER.exists()
    for p in run["plans"]:
        assert SYMLINK_TARGET_TEXT not in json.dumps(p, default=str)
    [sym] = plans_of(run, "symlink")
    assert [f["path"] for f in sym["files"]] == ["main.tf"]


def test_synthetic_ground_truth_matches_the_generator(run: dict[str, Any], tmp_path: Path) -> None:
    """The workers built each repo where they cloned it; the same corpus generated here has the same commits."""
    corpus = generate_corpus(run["cfg"].sources.synthetic, tmp_path / "synthetic")
    url = {name: u for u, name, _ in repo_refs(run["cfg"].sources.synthetic)}
    assert {r["source_url"] for r in run["repos"].values() if r["origin"] == "synthetic"} == set(url.values())
    assert all(u.startswith("synthetic://") for u in url.values())
    by_key = {(p["source_url"], p["commit_sha"], p["path"], p["prior"]): p for p in run["plans"]}
    checked, kinds = 0, set()
    for repo in corpus:
        for (sha, ws), expected in repo.expected.items():
            row = by_key.get((url[repo.name], sha, ws, None))
            if row is None:  # history mode plans later commits against their parent only
                continue
            assert row["plan_status"] == "ok", (repo.name, row["plan_error"])
            assert row["planner"] == ("static" if repo.cloud else "terraform")
            got = [{"address": c["address"], "actions": c["actions"]} for c in row["resource_changes"]]
            assert got == expected, (repo.name, sha, ws)
            checked += 1
        for (prior, sha, ws), expected in repo.expected_history.items():
            row = by_key[(url[repo.name], sha, ws, prior)]
            got = [{"address": c["address"], "actions": c["actions"]} for c in row["resource_changes"]]
            assert (row["plan_status"], row["planner"]) == ("ok", "terraform")
            assert got == expected, (repo.name, prior, sha, ws)
            kinds |= {tuple(c["actions"]) for c in got}
            checked += 1
    assert checked >= 8
    assert {("delete",), ("create", "delete")} <= kinds


def test_planted_secrets_never_written_and_counted(run: dict[str, Any]) -> None:
    out = run["root"] / "out"
    for path in out.rglob("*"):
        if not path.is_file() or "synthetic" in path.parts:
            continue
        text = (
            json.dumps(pq.read_table(path).to_pylist(), default=str)
            if path.suffix == ".parquet"
            else path.read_bytes().decode(errors="replace")
        )
        for secret in PLANTED:
            assert secret not in text, (path, secret[:6])
    repo = run["repos"][run["urls"]["secrets"]]
    assert repo["secrets_found"] >= 5
    [row] = plans_of(run, "secrets")
    kinds = {k["kind"] for k in row["secret_kinds"]}
    assert {"aws_access_key_id", "aws_secret_access_key", "github_token", "password", "private_key"} <= kinds
    assert run["summary"]["secrets_scrubbed"] >= 5


def test_plans_ran_on_both_nodes(run: dict[str, Any], ray_cluster: Any) -> None:
    import ray

    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    planned_on = {p["node_id"] for p in run["plans"] if p["planner"] == "terraform"}
    assert len(nodes) == 2
    assert planned_on == nodes


def test_rerun_skips_finished_work_and_duplicates_nothing(run: dict[str, Any]) -> None:
    def key(p: dict[str, Any]) -> tuple[Any, ...]:
        return (p["source_url"], p["path"], p["commit_sha"], p["prior"], p["workspace_id"], p["plan_status"])

    before = sorted(map(key, run["plans"]))
    summary = collect.run(run["cfg"])
    out = run["root"] / "out"
    after = sorted(map(key, pq.read_table(out / "plans.parquet").to_pylist()))
    assert after == before
    assert summary["planned_now"] == 0
    assert pq.read_table(out / "repos.parquet").num_rows == run["n_repos_rows"]


def _ray_worker_running_terraform() -> psutil.Process | None:
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] != "terraform" or "plan" not in (proc.info["cmdline"] or []):
            continue
        for parent in proc.parents():
            if " ".join(parent.cmdline()).startswith("ray::"):  # Ray names its worker processes ray::<task>
                return parent
    return None


def test_killed_worker_mid_run_loses_and_duplicates_nothing(ray_cluster: object, tmp_path: Path) -> None:
    urls = []
    for i in range(3):
        make_git_repo(
            tmp_path / f"slow{i}", [{"main.tf": f'resource "terraform_data" "x{i}" {{\n  count = 6000\n}}\n'}]
        )
        urls.append((tmp_path / f"slow{i}").as_uri())
    cfg = job_config(tmp_path / "out", urls, [], n_synth=0)
    result: dict[str, Any] = {}
    t = threading.Thread(target=lambda: result.update(collect.run(cfg)))
    t.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and t.is_alive() and time.monotonic() < deadline:
        worker = _ray_worker_running_terraform()
        if worker is not None:
            worker.kill()
            killed = worker.pid
        time.sleep(0.2)
    t.join(timeout=600)
    assert killed is not None, "no plan was running to kill"
    plans = pq.read_table(tmp_path / "out" / "plans.parquet").to_pylist()
    assert sorted(p["source_url"] for p in plans) == sorted(urls)
    assert {p["plan_status"] for p in plans} <= {"ok", "timeout"}
    assert result["workspaces"] == 3


def test_every_row_records_its_isolation_and_rules(run: dict[str, Any]) -> None:
    from pipelines.collect.workspace import RULES_VERSION

    ran = {p["isolation"] for p in run["plans"] if p["planner"] == "terraform"}
    never = {p["isolation"] for p in run["plans"] if p["planner"] != "terraform"}
    assert (ran, never) == ({"bwrap"}, {None})
    assert {p["rules_version"] for p in run["plans"]} == {RULES_VERSION}
    assert run["summary"]["plans_by_isolation"] == {"bwrap": sum(p["planner"] == "terraform" for p in run["plans"])}


def test_rerun_replans_rows_made_under_older_rules(run: dict[str, Any]) -> None:
    from pipelines.collect.workspace import RULES_VERSION

    out = run["root"] / "out"
    table = pq.read_table(out / "plans.parquet")
    rows = table.to_pylist()
    stale = {p["workspace_id"] for p in rows if p["source_url"] in (run["urls"]["plan-error"], run["urls"]["external"])}
    for p in rows:
        if p["workspace_id"] in stale:
            p["rules_version"] = "screen=1,scrub=1,sandbox=1"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), out / "plans.parquet" / "part-00000.parquet")
    for extra in sorted((out / "plans.parquet").glob("*.parquet")):
        if extra.name != "part-00000.parquet":
            extra.unlink()
    summary = collect.run(run["cfg"])
    after = pq.read_table(out / "plans.parquet").to_pylist()
    assert summary["planned_now"] == len(stale) == 2
    assert len(after) == len(rows) and {p["rules_version"] for p in after} == {RULES_VERSION}
