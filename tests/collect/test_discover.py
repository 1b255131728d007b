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


def roots(files: list[dict[str, str]]) -> dict[str, list[str]]:
    return {w.path: w.modules for w in discover(files, DiscoverLimits())}


def test_module_blocks_are_read_from_real_blocks_in_tf_and_tf_json() -> None:
    files = [
        f("a/main.tf", 'module "one" { source = "../lib/one" }\n'),  # one line: no line-start anchor
        f("b/main.tf.json", '{"module": {"two": {"source": "../lib/two"}}}'),
        f("c/main.tf", 'module "win" {\n  source = "..\\\\lib\\\\one"\n}\n'),  # terraform reads \ as /
        f("lib/one/main.tf", 'resource "terraform_data" "x" {}\n'),
        f("lib/two/main.tf", 'resource "terraform_data" "y" {}\n'),
    ]
    assert roots(files) == {"a": ["lib/one"], "b": ["lib/two"], "c": ["lib/one"]}


def test_text_that_only_looks_like_a_module_call_is_not_followed() -> None:
    lib = f("lib/main.tf", 'resource "terraform_data" "x" {}\n')
    for text in [
        '# module "m" { source = "../lib" }\n',
        '/* module "m" {\n  source = "../lib"\n} */\n',
        'resource "aws_s3_object" "o" {\n  source = "../lib"\n}\n',  # a source argument, not a module call
        'locals {\n  doc = <<EOT\nmodule "m" {\n  source = "../lib"\n}\nEOT\n}\n',
        'module "m" { source = "${var.lib}" }\n',
    ]:
        assert roots([f("app/main.tf", text), lib]) == {"app": [], "lib": []}, text


def test_sources_that_leave_the_repository_are_never_followed() -> None:
    files = [
        f("modules/a/main.tf", 'module "up" { source = "../../../x" }\nmodule "b" { source = "../b" }\n'),
        f("modules/b/main.tf", 'module "enc" { source = "./%2e%2e/%2e%2e/%2e%2e/etc" }\n'),
        f("envs/dev/main.tf", 'module "a" { source = "../../modules/a" }\n'),
    ]
    assert roots(files) == {"envs/dev": ["modules/a", "modules/b"]}


def test_files_the_lexer_rejects_contribute_no_calls() -> None:
    """A miss is safe: the caller's workspace lacks the module, and the screen blocks it as missing."""
    files = [
        f("app/main.tf", 'module "m" {\n  source = "../lib"\n'),  # unterminated
        f("deep/main.tf", "a {\n" * 5000),
        f("bad/main.tf.json", '{"module": ' + "[" * 100_000),
        f("lib/main.tf", 'resource "terraform_data" "x" {}\n'),
    ]
    assert roots(files) == {"app": [], "bad": [], "deep": [], "lib": []}
