"""Augmentation of plan-prediction rows, checked against real ``terraform plan``: the augmented files of
a workspace must plan exactly the relabelled changes that ``augment`` returns. Plus the pieces that
make that safe: the lexer/splitter on strings, heredocs and comments, the python-hcl2 fallback, the
rename op's refusals, and determinism by seed.
"""

from __future__ import annotations

import json
import re
import textwrap
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import git
import pytest

from pipelines.collect.discover import DiscoverLimits, discover
from pipelines.collect.hcl import parse_hcl_inline
from pipelines.collect.synthetic import SyntheticConfig, SyntheticRepo, generate_corpus
from pipelines.dataset import augment as aug
from pipelines.dataset.augment import TopItem, augment, augment_with_report, parse_address, split_top_level
from pipelines.terraform.sandbox import SandboxConfig, plan_workspace

# app (count, for_each, create_before_destroy), network (for_each module nesting a module, count module),
# envs (shared module nesting for_each and count modules), pipeline (count module), aws (static planner).
CORPUS = SyntheticConfig(n_repos=5, commits_per_repo=1, seed=0, cloud_fraction=0.2)
PLANNED = {"synth-0000-app", "synth-0001-net", "synth-0002-envs", "synth-0003-etl"}
SEED = 11


def _dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# A hand-written workspace with every reference form rename must follow: tfvars keys, interpolations in
# strings and heredocs, depends_on, a moved block, module arguments, locals, one-line blocks, comments
# with code-like text, for_each keys with dots/brackets/quotes, and a name that also appears in a string.
LITERAL = {
    "live/versions.tf": _dedent("""
        terraform {
          required_providers {
            null = { source = "hashicorp/null", version = "~> 2.1" }
          }
        }
    """),
    "live/variables.tf": _dedent("""
        variable "stage" {
          type = string
        }

        variable "copies" {
          type    = number
          default = 1
        }
    """),
    "live/terraform.tfvars": 'stage  = "qa"\ncopies = 2\n',
    "live/main.tf": _dedent("""
        /* Every reference form. { "braces" } and var.stage in a comment are not code. */
        locals {
          prefix = "${var.stage}-app" // trailing comment mentioning local.prefix
          keys   = toset(["a.b", "c[0]", "d\\"q"])
        }

        resource "null_resource" "first" {
          for_each = local.keys

          triggers = {
            name   = "${local.prefix}-${each.key}"
            script = <<-EOT
              echo "${var.stage}" }
              resource "x" "y" {
            EOT
          }

          lifecycle { create_before_destroy = true }
        }

        resource "terraform_data" "second" {
          count      = var.copies
          input      = "${null_resource.first["a.b"].id}/${count.index}"
          depends_on = [null_resource.first]
        }

        # The child module, once.
        module "child" {
          source = "./modules/child"
          count  = 1
          label  = "x-${var.stage}"
        }

        resource "null_resource" "third" {
          triggers = { child = join(",", module.child[0].ids) }
        }

        moved {
          from = null_resource.legacy
          to   = null_resource.third
        }

        resource "null_resource" "keep" {
          triggers = { note = "null_resource.keep is referenced by name" }
        }

        output "first_ids" { value = [for k, r in null_resource.first : r.id] }
    """),
    "live/modules/child/main.tf": _dedent("""
        variable "label" { type = string }

        locals { tag = upper(var.label) }

        resource "null_resource" "leaf" {
          count    = 2
          triggers = { tag = "${local.tag}-${count.index}" }
        }

        output "ids" { value = null_resource.leaf[*].id }
    """),
}
LITERAL_ADDRESSES = [
    "module.child[0].null_resource.leaf[0]",
    "module.child[0].null_resource.leaf[1]",
    'null_resource.first["a.b"]',
    'null_resource.first["c[0]"]',
    'null_resource.first["d\\"q"]',
    "null_resource.keep",
    "null_resource.third",
    "terraform_data.second[0]",
    "terraform_data.second[1]",
]


def _files(mapping: dict[str, str]) -> list[dict[str, str]]:
    return [{"path": p, "content": c} for p, c in mapping.items()]


def _files_at(repo: SyntheticRepo) -> list[dict[str, str]]:
    tree = git.Repo(repo.path).commit(repo.commits[0]).tree
    return [{"path": b.path, "content": b.data_stream.read().decode()} for b in tree.traverse() if b.type == "blob"]


def _change(address: str, provider: str = "registry.terraform.io/hashicorp/null") -> dict[str, Any]:
    """A normalized change row as the plans table holds it, built from its address."""
    steps = parse_address(address)
    module = ".".join(f"module.{steps[i + 1].name}{steps[i + 1].key}" for i in range(0, len(steps) - 2, 2))
    rtype = steps[-2].name
    prov = "terraform.io/builtin/terraform" if rtype == "terraform_data" else provider
    return {
        "address": address,
        "module_address": module or None,
        "type": rtype,
        "name": steps[-1].name,
        "provider": prov,
        "actions": ["create"],
    }


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[list[dict[str, str]], str, SyntheticRepo]]:
    """One workspace per repo, as the collect stage cuts them (discover), keyed by repo name."""
    out = {}
    for repo in generate_corpus(CORPUS, tmp_path_factory.mktemp("corpus")):
        ws = next(w for w in discover(_files_at(repo), DiscoverLimits()) if w.dropped is None)
        out[repo.name] = (ws.files, ws.path, repo)
    return out


def test_augmented_plans_equal_relabelled_changes(
    workspaces: dict[str, tuple[list[dict[str, str]], str, SyntheticRepo]], sandbox_cfg: SandboxConfig
) -> None:
    """Real terraform, fresh state: plan the original, augment with every op, plan the augmented files."""
    cases = {name: (files, path) for name, (files, path, _) in workspaces.items() if name in PLANNED}
    cases["literal"] = (_files(LITERAL), "live")
    assert sorted(cases) == ["literal", *sorted(PLANNED)]

    def plan(item: tuple[str, tuple[list[dict[str, str]], str]]) -> tuple[str, Any]:
        name, (files, path) = item
        return name, plan_workspace(files, path, sandbox_cfg)

    with ThreadPoolExecutor(max_workers=2) as pool:
        originals = dict(pool.map(plan, cases.items()))
    assert {n: (r.status, r.error) for n, r in originals.items()} == dict.fromkeys(cases, ("ok", None))
    for name, (_, path, repo) in workspaces.items():
        if name in PLANNED:
            want = repo.expected[(repo.commits[0], path)]
            assert [(c["address"], c["actions"]) for c in originals[name].resource_changes] == [
                (c["address"], c["actions"]) for c in want
            ]
    assert [c["address"] for c in originals["literal"].resource_changes] == LITERAL_ADDRESSES
    assert originals["literal"].resource_changes == [_change(a) for a in LITERAL_ADDRESSES]

    results = {
        name: augment_with_report(files, originals[name].resource_changes, path, SEED)
        for name, (files, path) in cases.items()
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        augmented = dict(pool.map(plan, ((n, (r.files, cases[n][1])) for n, r in results.items())))

    assert {n: (r.status, r.error) for n, r in augmented.items()} == dict.fromkeys(cases, ("ok", None))
    for name, res in results.items():
        assert res.applied == ["rename", "reorder", "reformat"], name
        assert augmented[name].resource_changes == res.changes, name
        before = {c["address"] for c in originals[name].resource_changes}
        after = {c["address"] for c in res.changes}
        assert len(after) == len(before) and after != before, name  # rename really moved addresses
        assert [f["path"] for f in res.files] != [f["path"] for f in cases[name][0]], name  # reordered
        assert sorted(f["path"] for f in res.files) == sorted(f["path"] for f in cases[name][0])
        cbd = [
            sum(re.sub(r"\s+", "", f["content"]).count("create_before_destroy=true") for f in fs)
            for fs in (res.files, cases[name][0])
        ]
        assert cbd[0] == cbd[1] >= 1, name
    assert results["literal"].notes == [
        "rename: kept resource null_resource.keep in live: it also appears inside a string"
    ]
    assert all(r.notes == [] for n, r in results.items() if n != "literal")

    # renamed module calls and keys survive in nested addresses: count [0] and for_each ["k"] keys
    renamed = [a for r in results.values() for a in (c["address"] for c in r.changes)]
    orig = [c["address"] for r in originals.values() for c in r.resource_changes]
    assert any(a.count("module.") == 2 for a in renamed)
    assert {a.rsplit("[", 1)[-1] for a in renamed if "[" in a} == {a.rsplit("[", 1)[-1] for a in orig if "[" in a}


def test_rename_every_entity_of_the_literal_workspace(sandbox_cfg: SandboxConfig) -> None:
    """rename_p=1: every safe name changes, in every reference form, and terraform agrees."""
    changes = [_change(a) for a in LITERAL_ADDRESSES]
    res = augment_with_report(_files(LITERAL), changes, "live", 3, ops=("rename",), rename_p=1.0)
    n = res.names
    assert sorted(n) == [
        "live/modules/child:local:tag",
        "live/modules/child:resource:null_resource.leaf",
        "live/modules/child:var:label",
        "live:local:keys",
        "live:local:prefix",
        "live:module:child",
        "live:resource:null_resource.first",
        "live:resource:null_resource.third",
        "live:resource:terraform_data.second",
        "live:var:copies",
        "live:var:stage",
    ]
    files = {f["path"]: f["content"] for f in res.files}
    stage, prefix, first = n["live:var:stage"], n["live:local:prefix"], n["live:resource:null_resource.first"]
    assert files["live/terraform.tfvars"] == f'{stage}  = "qa"\n{n["live:var:copies"]} = 2\n'
    main = files["live/main.tf"]
    assert f'  {prefix} = "${{var.{stage}}}-app" // trailing comment mentioning local.prefix\n' in main
    assert f'      echo "${{var.{stage}}}" }}\n      resource "x" "y" {{\n    EOT\n' in main
    assert f"depends_on = [null_resource.{first}]" in main
    assert f'input      = "${{null_resource.{first}["a.b"].id}}/${{count.index}}"' in main
    assert f"  to   = null_resource.{n['live:resource:null_resource.third']}\n" in main
    assert "  from = null_resource.legacy\n" in main  # not declared: not ours to rename
    assert f'  {n["live/modules/child:var:label"]}  = "x-${{var.{stage}}}"\n' in main  # the child's variable
    assert '/* Every reference form. { "braces" } and var.stage in a comment are not code. */' in main
    assert 'note = "null_resource.keep is referenced by name"' in main
    assert f'output "first_ids" {{ value = [for k, r in null_resource.{first} : r.id] }}' in main
    child = files["live/modules/child/main.tf"]
    assert f"locals {{ {n['live/modules/child:local:tag']} = upper(var.{n['live/modules/child:var:label']}) }}" in child
    assert files["live/versions.tf"] == LITERAL["live/versions.tf"]

    mod, leaf = n["live:module:child"], n["live/modules/child:resource:null_resource.leaf"]
    second, third = n["live:resource:terraform_data.second"], n["live:resource:null_resource.third"]
    assert [c["address"] for c in res.changes] == sorted(
        [
            f"module.{mod}[0].null_resource.{leaf}[0]",
            f"module.{mod}[0].null_resource.{leaf}[1]",
            f'null_resource.{first}["a.b"]',
            f'null_resource.{first}["c[0]"]',
            f'null_resource.{first}["d\\"q"]',
            "null_resource.keep",
            f"null_resource.{third}",
            f"terraform_data.{second}[0]",
            f"terraform_data.{second}[1]",
        ]
    )
    assert [c["module_address"] for c in res.changes if c["name"] == leaf] == [f"module.{mod}[0]"] * 2
    plan = plan_workspace(res.files, "live", sandbox_cfg)
    assert (plan.status, plan.error) == ("ok", None)
    assert plan.resource_changes == res.changes


def test_deterministic_by_seed(workspaces: dict[str, tuple[list[dict[str, str]], str, SyntheticRepo]]) -> None:
    files, path, repo = workspaces["synth-0001-net"]
    changes = [_change(c["address"]) for c in repo.expected[(repo.commits[0], path)]]
    runs = {seed: augment(files, changes, path, seed) for seed in (1, 2, 3)}
    assert augment(files, changes, path, 1) == runs[1]
    assert runs[1][0] != runs[2][0] != runs[3][0] != runs[1][0]
    assert runs[1][1] != runs[2][1] != runs[3][1] != runs[1][1]
    assert files == workspaces["synth-0001-net"][0]  # inputs untouched
    with pytest.raises(ValueError, match=r"unknown augmentation op\(s\) \['shuffle'\]; choose from"):
        augment(files, changes, path, 1, ops=("shuffle",))


def test_cloud_workspace_all_ops_parse(workspaces: dict[str, tuple[list[dict[str, str]], str, SyntheticRepo]]) -> None:
    """aws rows (static planner, no terraform here): files parse, addresses follow the rename map."""
    files, path, repo = workspaces["synth-0004-aws"]
    want = repo.expected[(repo.commits[0], path)]
    changes = [_change(c["address"], "registry.terraform.io/hashicorp/aws") for c in want]
    res = augment_with_report(files, changes, path, SEED, rename_p=1.0)
    assert (res.applied, res.notes) == (["rename", "reorder", "reformat"], [])
    for f in res.files:
        if f["path"].endswith((".tf", ".tfvars")):
            parse_hcl_inline(f["content"])
    n = res.names

    def expected(c: dict[str, Any]) -> str:  # this repo's changes are all in the root module
        key = parse_address(c["address"])[-1].key
        return f"{c['type']}.{n['.:resource:' + c['type'] + '.' + c['name']]}{key}"

    assert [c["module_address"] for c in changes] == [None] * len(changes)
    assert [c["address"] for c in res.changes] == sorted(expected(c) for c in changes)
    assert sorted(json.dumps({**c, "address": "", "name": "", "module_address": ""}) for c in res.changes) == sorted(
        json.dumps({**c, "address": "", "name": "", "module_address": ""}) for c in changes
    )


SPLIT_SRC = _dedent("""
    # File header, kept on top.

    # About a.
    resource "null_resource" "a" {
      triggers = {
        s = "} not the end { ${join("}", ["{"])}"
        h = <<EOT
    }
    resource "fake" "b" {
    EOT
      }
    } # after a, /* not a comment start

    /* block comment
    resource "fake" "c" { } */
    locals { x = "#not a comment" } // y

    // About c
    variable "c" {
      default = <<-EOF
        }}} ${"}"}
        EOF
    }
    # trailing remark
""")


def test_splitter_respects_strings_heredocs_and_comments() -> None:
    split = split_top_level(SPLIT_SRC)
    assert split.header == "# File header, kept on top.\n\n"
    assert [(t.kind, t.name) for t in split.items] == [
        ("block", 'resource "null_resource" "a"'),
        ("block", "locals"),
        ("block", 'variable "c"'),
    ]
    assert split.items[0].text.startswith("# About a.\nresource")
    assert split.items[0].text.endswith("} # after a, /* not a comment start\n")
    assert split.items[1] == TopItem(
        "block", "locals", '/* block comment\nresource "fake" "c" { } */\nlocals { x = "#not a comment" } // y\n'
    )
    assert split.items[2].text.startswith("// About c\nvariable")
    assert split.trailer == "# trailing remark\n"
    assert aug.join_top_level(split) == SPLIT_SRC

    tfvars = split_top_level('# header\n\na = 1\nb = <<EOT\nc = 2\nEOT\nd = {\n  e = "}"\n}\n')
    assert [(t.kind, t.name) for t in tfvars.items] == [("attribute", "a"), ("attribute", "b"), ("attribute", "d")]
    assert tfvars.items[1].text == "b = <<EOT\nc = 2\nEOT\n"

    for broken, why in [
        ('x = "unterminated\n', "unterminated string at line 1"),
        ("x = <<EOT\nno end\n", "unterminated heredoc EOT at line 3"),
        ("/* open\n", "unterminated /* comment at line 1"),
        ('x = "${var.a"\n', "unterminated string at line 1"),
    ]:
        with pytest.raises(aug.HclLexError, match=re.escape(why)):
            split_top_level(broken)


def test_reorder_and_reformat_keep_meaning() -> None:
    files = [{"path": "main.tf", "content": SPLIT_SRC}, {"path": "vars.tfvars", "content": "a = 1\nbb = 2\n"}]
    res = augment_with_report(files, [], ".", 5, ops=("reorder",))
    assert (res.applied, res.notes) == (["reorder"], [])
    by_path = {f["path"]: f["content"] for f in res.files}
    assert [f["path"] for f in res.files] == ["vars.tfvars", "main.tf"]
    assert by_path["main.tf"] != SPLIT_SRC and by_path["main.tf"].startswith("# File header, kept on top.\n\n")
    assert sorted(t.text for t in split_top_level(by_path["main.tf"]).items) == sorted(
        t.text for t in split_top_level(SPLIT_SRC).items
    )
    assert by_path["vars.tfvars"] == "bb = 2\na = 1\n"

    res = augment_with_report(files, [], ".", 5, ops=("reformat",))
    assert (res.applied, res.notes) == (["reformat"], [])
    new = {f["path"]: f["content"] for f in res.files}["main.tf"]
    assert new != SPLIT_SRC
    assert parse_hcl_inline(new) == parse_hcl_inline(SPLIT_SRC)
    for verbatim in (
        '    h = <<EOT\n}\nresource "fake" "b" {\nEOT\n',
        '/* block comment\nresource "fake" "c" { } */\n',
        '    }}} ${"}"}\n    EOF\n',
        '"} not the end { ${join("}", ["{"])}"',
    ):
        assert verbatim.lstrip() in new
    assert re.sub(r"\s+", "", new) == re.sub(r"\s+", "", SPLIT_SRC)  # only whitespace moved


def test_reformat_styles_change_only_whitespace() -> None:
    src = 'resource "null_resource" "a" {\n  count = 2\n\n  triggers = {\n    name  = "x"\n    other = "y"\n  }\n}\n'
    out = aug._reformat_file("main.tf", src, aug.Style(4, False, "compact"))
    assert out == (
        'resource "null_resource" "a" {\n    count = 2\n    triggers = {\n        name = "x"\n        other = "y"\n'
        "    }\n}\n"
    )
    out = aug._reformat_file("main.tf", src, aug.Style(3, True, "keep"))
    assert out == (
        'resource "null_resource" "a" {\n   count = 2\n\n   triggers = {\n      name  = "x"\n      other = "y"\n'
        "   }\n}\n"
    )
    nested = 'resource "a" "b" {\n  x = 1\n  lifecycle {\n    create_before_destroy = true\n  }\n}\n'
    out = aug._reformat_file("main.tf", nested, aug.Style(2, True, "spacious"))
    assert out == 'resource "a" "b" {\n  x = 1\n\n  lifecycle {\n    create_before_destroy = true\n  }\n}\n'


def test_hcl_parse_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    good = 'locals {\n  a = 1\n}\n\nvariable "b" {\n  default = 2\n}\n'
    files = [{"path": "main.tf", "content": good}, {"path": "bad.tf", "content": 'locals {\n  x = "open\n}\n'}]
    res = augment_with_report(files, [], ".", 1, ops=("reformat", "reorder"))
    assert res.notes == [
        "reformat: bad.tf: cannot tokenize: unterminated string at line 2",
        "reorder: bad.tf: cannot split: unterminated string at line 2",
    ]
    assert {f["path"]: f["content"] for f in res.files}["bad.tf"] == files[1]["content"]

    monkeypatch.setattr(aug, "_reformat_file", lambda path, src, style: src + "resource {\n")
    res = augment_with_report(files[:1], [], ".", 1, ops=("reformat",))
    assert res.files == files[:1] and res.applied == []
    assert len(res.notes) == 1 and res.notes[0].startswith("reformat: main.tf: augmented HCL does not parse: ")

    monkeypatch.setattr(aug, "_reformat_file", lambda path, src, style: src.replace("= 2", "= 3"))
    res = augment_with_report(files[:1], [], ".", 1, ops=("reformat",))
    assert (res.files, res.notes) == (files[:1], ["reformat: main.tf: augmented HCL parses to a different tree"])

    monkeypatch.setattr(aug, "_apply_edits", lambda src, edits: src + "}}\n" if edits else src)
    changes = [_change("null_resource.a")]
    tf = [{"path": "main.tf", "content": 'resource "null_resource" "a" {\n}\n'}]
    res = augment_with_report(tf, changes, ".", 1, ops=("rename",))
    assert (res.files, res.changes, res.applied) == (tf, changes, [])
    assert len(res.notes) == 1 and res.notes[0].startswith("rename: skipped: main.tf: augmented HCL does not parse: ")


@pytest.mark.parametrize(
    ("files", "changes", "note"),
    [
        (
            {"main.tf": 'resource "null_resource" "a" {}\n', "extra.tf.json": "{}"},
            ["null_resource.a"],
            "rename: skipped: extra.tf.json: JSON syntax is not supported",
        ),
        (
            {"main.tf": 'resource "null_resource" "a" {}\n'},
            ["null_resource.b"],
            "rename: skipped: null_resource.b: resource is not declared in .",
        ),
        (
            {"main.tf": 'resource "null_resource" "a" {}\n'},
            ["module.m.null_resource.a"],
            "rename: skipped: module.m.null_resource.a: module 'm' is not declared in .",
        ),
        (
            {"main.tf": 'resource "null_resource" "a" {\n  triggers = { for var in ["x"] : var => var }\n}\n'},
            ["null_resource.a"],
            "rename: skipped: main.tf: iterator 'var' shadows a reference",
        ),
        (
            {"main.tf": 'module "m" {\n  source = "./${"x"}"\n}\n'},
            [],
            "rename: skipped: main.tf: module source is not a plain string",
        ),
    ],
)
def test_rename_refuses_what_it_cannot_do_safely(files: dict[str, str], changes: list[str], note: str) -> None:
    rows = [_change(a) for a in changes]
    res = augment_with_report(_files(files), rows, ".", 1, ops=("rename",))
    assert (res.files, res.changes, res.applied, res.notes) == (_files(files), rows, [], [note])


def test_parse_address() -> None:
    steps = parse_address('module.a["x.y"].module.b[10].null_resource.c["q\\"].]"]')
    assert [(s.name, s.key) for s in steps] == [
        ("module", ""),
        ("a", '["x.y"]'),
        ("module", ""),
        ("b", "[10]"),
        ("null_resource", ""),
        ("c", '["q\\"].]"]'),
    ]
    with pytest.raises(aug.RenameUnsafe, match="cannot parse address"):
        parse_address("null_resource.a[x]")
