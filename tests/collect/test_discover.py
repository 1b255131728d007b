"""Root-module discovery and its quality filters."""

from __future__ import annotations

from pipelines.collect.discover import DiscoverLimits, discover


def f(path: str, content: str = "") -> dict[str, str]:
    return {"path": path, "content": content}


FILES = [
    f("envs/dev/main.tf", 'module "app" {\n  source = "../../modules/app"\n}\n'),
    f("envs/dev/terraform.tfvars", "n = 1\n"),
    f("envs/prod/main.tf", 'module "app" {\n  source = "../../modules/app"\n}\n'),
    f("modules/app/main.tf", 'module "net" {\n  source = "../net"\n}\n'),
    f("modules/net/main.tf", 'resource "terraform_data" "n" {}\n'),
    f("README.md", "# docs\n"),
    f("scripts/x.sh", "echo\n"),
]


def test_roots_are_dirs_no_one_calls_and_carry_their_modules() -> None:
    ws = discover(FILES, DiscoverLimits())
    assert [w.path for w in ws] == ["envs/dev", "envs/prod"]
    assert [x["path"] for x in ws[0].files] == [
        "envs/dev/main.tf",
        "envs/dev/terraform.tfvars",
        "modules/app/main.tf",
        "modules/net/main.tf",
    ]
    assert ws[0].modules == ["modules/app", "modules/net"]
    assert [w.dropped for w in ws] == [None, None]


def test_repo_root_workspace_and_outside_sources_ignored() -> None:
    ws = discover([f("main.tf", 'module "x" {\n  source = "../../elsewhere"\n}\n')], DiscoverLimits())
    assert [(w.path, w.modules, w.dropped) for w in ws] == [(".", [], None)]


def test_quality_filters_give_reasons() -> None:
    ws = discover(FILES, DiscoverLimits(max_tf_files=2))
    assert [w.dropped for w in ws] == ["too_many_tf_files: 3 > discover.max_tf_files=2"] * 2
    ws = discover(FILES, DiscoverLimits(max_workspaces=1))
    assert [w.dropped for w in ws] == [None, "too_many_workspaces: repository has 2 > discover.max_workspaces=1"]
    ws = discover([f("a/main.tf", "#" * 4096)], DiscoverLimits(max_workspace_kb=2))
    assert ws[0].dropped == "too_large: 4 KB > discover.max_workspace_kb=2"
