"""The one resolver for local module sources, attacked with every spelling of "leave the repository"."""

from __future__ import annotations

import pytest

from pipelines.collect.modules import (
    decode_escapes,
    labelled,
    module_dirs,
    repo_path,
    resolve_source,
)

DIRS = module_dirs(["main.tf", "envs/dev/main.tf", "modules/a/main.tf", "modules/b/x.tf.json", "docs/README.md"])


def test_module_dirs_are_the_directories_holding_tf_or_tf_json() -> None:
    assert {".", "envs/dev", "modules/a", "modules/b"} == DIRS


@pytest.mark.parametrize(
    ("caller", "source", "want"),
    [
        (".", "./modules/a", ("local", "modules/a")),
        ("envs/dev", "../../modules/a", ("local", "modules/a")),
        ("modules/a", "../b", ("local", "modules/b")),
        (".", "./modules/a/", ("local", "modules/a")),  # trailing slash
        (".", ".//modules//a", ("local", "modules/a")),  # double slashes clean away, as in terraform
        (".", "./modules/./a/../a", ("local", "modules/a")),
        (".", ".\\modules\\a", ("local", "modules/a")),  # terraform reads backslashes as slashes
        ("envs/dev", "..\\..\\modules\\a", ("local", "modules/a")),
        (".", "./", ("local", ".")),  # a module calling itself: the planners report the cycle
        (".", "./modules/gone", ("missing", "modules/gone")),
        (".", "./docs", ("missing", "docs")),  # a directory, but no .tf files in it
        (".", "./modules/a?ref=v1", ("missing", "modules/a?ref=v1")),  # local paths take no query
        (".", "../x", ("outside", None)),
        ("envs/dev", "../../../../etc", ("outside", None)),
        ("modules/a", "../../../x", ("outside", None)),  # a child module that climbs out itself
        (".", "./a/../../..", ("outside", None)),
        (".", "./modules/../../modules/a", ("outside", None)),  # out and back in is still out
        (".", ".\\..\\..\\etc", ("outside", None)),
        (".", "./%2e%2e/%2e%2e/etc", ("outside", None)),  # URL-encoded dots
        (".", "./%2E%2E%2f%2E%2E%2fetc", ("outside", None)),  # encoded slashes too
        (".", "./%252e%252e/x", ("outside", None)),  # double encoding
        (".", "./..%5c..%5cetc", ("outside", None)),  # encoded backslash
        (".", "/etc", ("outside", None)),  # go-getter would copy a host directory
        (".", "//etc", ("outside", None)),
        (".", "\\etc", ("outside", None)),
        (".", "~/src/mod", ("outside", None)),
        (".", "C:\\modules\\a", ("outside", None)),
        (".", "c:/modules/a", ("outside", None)),
        (".", "terraform-aws-modules/vpc/aws", ("remote", None)),
        (".", "git::https://example.com/m.git//sub?ref=v1", ("remote", None)),
        (".", "github.com/org/mod", ("remote", None)),
        (".", "https://example.com/m.zip", ("remote", None)),
        (".", "s3::https://s3.amazonaws.com/b/m.zip", ("remote", None)),
        (".", "file::./modules/a", ("remote", None)),  # a forced getter is not terraform's local path
        (".", "..", ("remote", None)),  # no "./" prefix: terraform hands it to go-getter
        (".", "${var.src}", ("not_literal", None)),
        (".", "./modules/${var.name}", ("not_literal", None)),
        (".", None, ("not_literal", None)),
        (".", ["./modules/a"], ("not_literal", None)),
    ],
)
def test_resolve_source(caller: str, source: object, want: tuple[str, str | None]) -> None:
    r = resolve_source(caller, source, DIRS)
    assert (r.kind, r.dir) == want
    assert r.blocked == (want[0] != "local")


def test_reasons_name_the_call_and_the_source() -> None:
    where = "main.tf module.x"
    assert resolve_source(".", "../../../../etc", DIRS).reason(where) == (
        'module_source_outside_repo: main.tf module.x source "../../../../etc" resolves outside the repository'
    )
    assert resolve_source(".", "./gone", DIRS).reason(where) == (
        'module_source_missing: main.tf module.x source "./gone" resolves to "gone": no such module directory '
        "in the workspace (no .tf or .tf.json files there)"
    )
    assert resolve_source(".", "hashicorp/consul/aws", DIRS).reason(where) == (
        "remote_module: main.tf module.x source 'hashicorp/consul/aws' would be fetched by init"
    )
    assert resolve_source(".", "${var.s}", DIRS).reason(where) == (
        'module_source_not_literal: main.tf module.x source "${var.s}" is not a literal string '
        "(terraform init rejects it)"
    )
    # hostile text is quoted and cut, never spliced raw into the reason
    reason = resolve_source(".", "../\n" + "a" * 500, DIRS).reason(where)
    assert reason.startswith('module_source_outside_repo: main.tf module.x source "../\\naaa')
    assert len(reason) < 220


@pytest.mark.parametrize(
    ("base", "rel", "want"),
    [
        (".", "files/a.txt", "files/a.txt"),
        ("envs/dev", "../shared/x", "envs/shared/x"),  # climbing that stays inside is fine
        ("envs/dev", "../../x", "x"),
        ("envs/dev", "../../../x", None),
        (".", "", "."),
        (".", "/proc/self/environ", None),
        (".", "~", None),
        (".", "~root/.ssh", None),
        (".", "..\\x", None),
        (".", "%2e%2e/x", None),
        (".", "D:/x", None),
        (".", "a:b.txt", "a:b.txt"),  # a colon inside a name is not a drive
    ],
)
def test_repo_path(base: str, rel: str, want: str | None) -> None:
    assert repo_path(base, rel) == want


def test_decode_escapes() -> None:
    assert decode_escapes(r"\u002e\u002e/\"x\"\\n\t") == '../"x"\\n\t'
    assert decode_escapes(r"\U0001F600 \uZZZZ \q") == "\U0001f600 uZZZZ q"
    assert decode_escapes(r"\UFFFFFFFF") == r"\UFFFFFFFF"  # out of range: left as written


def test_labelled_reads_hcl2_lists_and_every_json_form() -> None:
    hcl2_shape = [{"http": {"a": {"url": "u"}}}, {"http": {"b": {}}}]
    json_forms = [{"http": {"a": {"url": "u"}, "b": {}}}, {"http": [{"a": {"url": "u"}}, {"b": [{}]}]}]
    want = [(("http", "a"), {"url": "u"}), (("http", "b"), {})]
    assert list(labelled(hcl2_shape, 2)) == want
    assert [list(labelled(f, 2)) for f in json_forms] == [want, want]
    assert list(labelled("not a block", 1)) == []
    assert list(labelled({"k": "string value"}, 1)) == []  # attributes are not bodies
