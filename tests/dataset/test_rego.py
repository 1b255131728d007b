"""The Rego checker (regopy, KICS input documents, line resolution) and the rego_policy dataset task."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipelines.dataset import rego
from pipelines.dataset.example import ROLES, SkipSource
from pipelines.dataset.tasks import rego_policy as rp

N_QUERIES = 11
PUBLIC_ACL = "aws/s3_bucket_public_acl"


@pytest.fixture(scope="module")
def tree() -> dict[str, rego.Query]:
    return {q.path: q for q in rego.load_tree()}


def _check(q: rego.Query, policy: str, **kw) -> rego.CheckResult:
    return rego.check_query(policy, q.positives, q.negatives, q.expected, **kw)


def _policy(body: str, search_key: str) -> str:
    """A one-rule KICS query over aws_s3_bucket resources."""
    return (
        "package Cx\n\nCxPolicy[result] {\n\tdoc := input.document[i]\n\tbucket := doc.resource.aws_s3_bucket[name]\n"
        f'\t{body}\n\tresult := {{"documentId": doc.id, "searchKey": sprintf("{search_key}", [name])}}\n}}\n'
    )


# ---------------------------------------------------------------- the fixture tree
def test_fixture_tree_loads_every_query(tree: dict[str, rego.Query]) -> None:
    assert len(tree) == N_QUERIES
    assert [q.error for q in tree.values() if q.error] == []
    providers = sorted(q.provider for q in tree.values())
    assert providers == ["aws"] * 5 + ["azure"] * 3 + ["gcp"] * 3
    acl = tree[PUBLIC_ACL]
    assert sorted(acl.positives) == ["positive1.tf", "positive2.tf"]
    assert sorted(acl.negatives) == ["negative1.tf"]
    assert acl.metadata["queryName"] == "S3 Bucket ACL Allows Public Access"
    assert sorted(tree["azure/nsg_rdp_open"].positives) == ["positive1.tf", "positive2.tf", "positive3.tf"]


def test_every_fixture_query_passes_the_checker() -> None:
    assert rego.check_tree() == {"total": N_QUERIES, "by_status": {"ok": N_QUERIES}, "problems": {}}


def test_ok_details_list_expected_and_found_lines(tree: dict[str, rego.Query]) -> None:
    q = tree["aws/security_group_ssh_open"]
    res = _check(q, q.rego)
    assert res.ok and res.reason == ""
    assert [(f.name, f.kind, f.expected_lines, f.found_lines) for f in res.files] == [
        ("positive1.tf", "positive", [5], [5]),
        ("positive2.tf", "positive", [12, 26], [12, 26]),  # the second ingress block; the standalone rule
        ("negative1.tf", "negative", [], []),
    ]


# ---------------------------------------------------------------- statuses
def test_syntax_error_is_compile_error(tree: dict[str, rego.Query]) -> None:
    res = _check(tree[PUBLIC_ACL], "package Cx\nCxPolicy[result] { result := ")
    assert (res.status, res.reason) == ("compile_error", "query.rego: this is unclosed")


def test_unknown_function_and_missing_package_are_compile_errors(tree: dict[str, rego.Query]) -> None:
    q = tree[PUBLIC_ACL]
    res = _check(q, "package Cx\nimport data.generic.common as c\nCxPolicy[r] { r := c.nope(1) }")
    assert (res.status, res.reason) == ("compile_error", "Function not found: data.generic.common.nope")
    res = _check(q, "package policy\nallow := true\n")
    assert res.status == "compile_error"
    assert res.reason == "a KICS query must declare `package Cx` (rules `CxPolicy[result] {...}`)"


def test_policy_firing_on_a_negative_test(tree: dict[str, rego.Query]) -> None:
    # flags every bucket: negative1.tf has a private bucket (acl on line 3) and one without acl (block on line 6)
    res = _check(tree[PUBLIC_ACL], _policy("true", "aws_s3_bucket[%s].acl"))
    assert (res.status, res.reason) == ("fires_on_negative", "negative1.tf: findings at lines [3, 6]")


def test_policy_reporting_a_wrong_line(tree: dict[str, rego.Query]) -> None:
    policy = _policy('bucket.acl == "public-read"', "aws_s3_bucket[%s].bucket")  # points at `bucket`, not `acl`
    res = _check(tree[PUBLIC_ACL], policy)
    assert (res.status, res.reason) == ("wrong_lines", "positive1.tf: expected lines [3], found [2]")


def test_policy_that_never_fires(tree: dict[str, rego.Query]) -> None:
    res = _check(tree[PUBLIC_ACL], _policy('bucket.acl == "no-such-acl"', "aws_s3_bucket[%s].acl"))
    assert (res.status, res.reason) == ("no_findings", "no finding on any test file (expected 3)")


def test_runtime_error_is_eval_error(tree: dict[str, rego.Query]) -> None:
    res = _check(tree[PUBLIC_ACL], 'package Cx\nCxPolicy[r] { doc := input.document[_]; r := {"x": 1/0} }')
    assert (res.status, res.reason) == ("eval_error", "positive1.tf: Not a term")


def test_slow_policy_times_out_and_the_engine_recovers(tree: dict[str, rego.Query]) -> None:
    q = tree[PUBLIC_ACL]
    slow = 'package Cx\nCxPolicy[r] { x := numbers.range(1, 3000000); r := {"n": count([y | y := x[_]; y % 7 == 0])} }'
    res = _check(q, slow, timeout_s=0.5)
    assert (res.status, res.reason) == ("timeout", "evaluation did not finish within 0.5s")
    assert _check(q, q.rego).ok  # a fresh engine process answers the next check


GARBAGE = [
    "",
    "garbage !!! @@",
    "package Cx\n" + "{" * 2000,
    "package Cx\n" + "\x00\xff" * 50,
    "package Cx\nCxPolicy[r] { r := input.document[_] }",  # results without a searchKey
    "package Cx\nCxPolicy[r] { r := [1, 2] }",
    "package Cx\nx := 1\nx := 2\nCxPolicy[r] { r := x }",
    "package Cx\nf(x) = y { y := g(x) }\ng(x) = y { y := f(x) }\nCxPolicy[r] { r := f(1) }",
    'package Cx\nCxPolicy[r] { r := {"searchKey": 42, "searchLine": ["resource", null, {}]} }',
]


@pytest.mark.parametrize("policy", GARBAGE)
def test_garbage_policies_never_raise(tree: dict[str, rego.Query], policy: str) -> None:
    res = _check(tree[PUBLIC_ACL], policy)
    assert res.status in rego.STATUSES
    assert res.status != "ok"


def test_garbage_tests_are_invalid_tests(tree: dict[str, rego.Query]) -> None:
    q = tree[PUBLIC_ACL]
    assert rego.check_query(q.rego, {}, {}, []).reason == "no positive test file"
    res = rego.check_query(q.rego, q.positives, {}, {"line": 3})
    assert (res.status, res.reason) == (
        "invalid_tests",
        "expected results must be a JSON list of {queryName, severity, line, fileName}",
    )
    res = rego.check_query(q.rego, q.positives, {}, [{"line": "3", "fileName": "positive1.tf"}])
    assert (res.status, res.reason) == ("invalid_tests", "expected result #0 has no integer 'line'")
    res = rego.check_query(q.rego, {"positive1.tf": 'resource "x" {{{'}, {}, [{"line": 1}])
    assert res.status == "invalid_tests" and res.reason.startswith("positive1.tf: not HCL: ")
    assert rego.check_query(None, {}, {}, None).status == "compile_error"  # type: ignore[arg-type]


# ---------------------------------------------------------------- documents and lines
SG = """# security groups {
resource "aws_security_group" "web" {
  description = "braces } in a string"
  policy = <<EOF
{ "unbalanced": [
EOF

  ingress {
    from_port = 443
  }
  ingress {
    from_port   = 22 /* a { comment */
    cidr_blocks = ["0.0.0.0/0"]
  }
  tags = {
    Name = "web"
  }
}

resource "aws_s3_bucket" "b" { bucket = "x" }
module "net" {
  source = "./net"
}
"""


def test_search_keys_resolve_to_lines() -> None:
    index = rego.LineIndex(SG)
    cases = {
        "aws_security_group[web]": 2,
        "aws_security_group[{{web}}].ingress": 8,
        "aws_security_group[web].ingress[1]": 11,
        "aws_security_group[web].ingress.1.cidr_blocks": 13,
        "resource.aws_security_group[web].ingress[1].from_port": 12,
        "aws_security_group[web].tags.Name": 16,
        "aws_security_group[web].tags[Name]": 16,
        "aws_security_group[web].egress": 2,  # missing attribute → its block
        "aws_security_group[web].from_port": 2,  # only nested deeper: not an attribute of the resource
        "aws_security_group[web].description=braces": 3,
        "aws_s3_bucket[b].acl": 20,
        "module[net].source": 22,
        "aws_security_group[nope].ingress": -1,
        "": -1,
    }
    assert {key: index.resolve(rego.parse_search_key(key)) for key in cases} == cases


def test_search_keys_parse_into_components() -> None:
    assert rego.parse_search_key("aws_s3_bucket[{{b}}].ingress[1].cidr_blocks=x") == [
        ("aws_s3_bucket", "b"),
        ("ingress", "1"),
        ("cidr_blocks", None),
    ]
    assert rego.parse_search_key("resource.aws_x[n].a") == [("resource", None), ("aws_x", "n"), ("a", None)]
    assert rego.parse_search_key("aws_security_group[web].ingress.1") == [
        ("aws_security_group", "web"),
        ("ingress", "1"),
    ]
    assert rego.parse_search_key('aws_vpc[0.0.0.0/0].tags["Name"]') == [("aws_vpc", "0.0.0.0/0"), ("tags", "Name")]
    assert rego.parse_search_key("") == []


def test_result_line_prefers_a_resolvable_search_line() -> None:
    index = rego.LineIndex(SG)
    key = "aws_security_group[web]"
    assert (
        index.result_line({"searchKey": key, "searchLine": ["resource", "aws_security_group", "web", "ingress", "1"]})
        == 11
    )
    assert index.result_line({"searchKey": key, "searchLine": ["resource", "aws_instance", "x"]}) == 2
    assert index.result_line({"searchKey": key, "searchLine": 7}) == 7
    assert index.result_line({"searchKey": 3}) == -1
    assert index.result_line("not an object") == -1


def test_hcl_becomes_a_kics_document() -> None:
    import hcl2

    doc = rego.hcl_to_document(hcl2.loads(SG, with_meta=True), "positive1.tf")
    assert doc["id"] == rego.document_id("positive1.tf")
    assert doc["file"] == "positive1.tf"
    web = doc["resource"]["aws_security_group"]["web"]
    assert web["ingress"] == [{"from_port": 443}, {"from_port": 22, "cidr_blocks": ["0.0.0.0/0"]}]
    assert web["tags"] == {"Name": "web"}
    assert doc["resource"]["aws_s3_bucket"] == {"b": {"bucket": "x"}}
    assert doc["module"] == {"net": {"source": "./net"}}
    assert "__start_line__" not in json.dumps(doc)
    text = 'resource "aws_s3_bucket" "b" {\n  versioning {\n    enabled = true\n  }\n'
    text += '  dynamic "rule" {\n    for_each = []\n  }\n}\n'
    doc = rego.hcl_to_document(hcl2.loads(text, with_meta=True), "negative1.tf")
    assert doc["resource"]["aws_s3_bucket"]["b"] == {
        "versioning": {"enabled": True},
        "dynamic": {"rule": {"for_each": []}},
    }


def test_helper_library_runs_in_regopy() -> None:
    query = """package Cx
import data.generic.common as common_lib
import data.generic.terraform as tf_lib
CxPolicy[r] {
  doc := input.document[_]
  b := doc.resource[t][n]
  r := {"searchKey": sprintf("%s[%s]", [t, n]), "name": tf_lib.get_specific_resource_name(b, t, n),
        "ingress": count(common_lib.as_array(object.get(b, "ingress", []))),
        "ssh_open": [x | x := common_lib.as_array(b.ingress)[_]; tf_lib.port_in_range(x, 22);
                     tf_lib.open_to_internet(x)]}
}
"""
    tf = 'resource "aws_s3_bucket" "x" {\n  bucket = "bkt"\n}\nresource "aws_security_group" "y" {\n'
    tf += '  tags = { Name = "web" }\n  ingress {\n    from_port = 0\n    to_port = 0\n'
    tf += '    cidr_blocks = ["::/0"]\n  }\n}\n'
    job = rego.run_job([*sorted(rego.load_library().items()), ("query.rego", query)], [("p.tf", tf)])
    assert job == {
        "compile_error": None,
        "files": {
            "p.tf": {
                "results": [
                    {"ingress": 0, "name": "bkt", "searchKey": "aws_s3_bucket[x]", "ssh_open": []},
                    {
                        "ingress": 1,
                        "name": "web",
                        "searchKey": "aws_security_group[y]",
                        "ssh_open": [{"cidr_blocks": ["::/0"], "from_port": 0, "to_port": 0}],
                    },
                ]
            }
        },
    }


# ---------------------------------------------------------------- trees
def _copy_query(tree_root: Path, path: str, dest: Path) -> Path:
    shutil.copytree(tree_root / path, dest / path)
    return dest / path


def test_check_tree_reports_a_malformed_query(tmp_path: Path) -> None:
    _copy_query(rego.DEFAULT_TREE, PUBLIC_ACL, tmp_path)
    broken = _copy_query(rego.DEFAULT_TREE, "gcp/container_cluster_legacy_abac", tmp_path)
    (broken / "metadata.json").unlink()
    summary = rego.check_tree(tmp_path)
    assert summary == {
        "total": 2,
        "by_status": {"malformed": 1, "ok": 1},
        "problems": {"gcp/container_cluster_legacy_abac": "malformed: missing metadata.json"},
    }
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        rego.load_tree(tmp_path / "absent")


# ---------------------------------------------------------------- the task
def test_task_yields_two_examples_per_query() -> None:
    cfg = rp.Config()
    rows = rp.sources(cfg)
    assert len(rows) == N_QUERIES
    examples = [e for row in rows for e in rp.examples(row, cfg)]
    assert len(examples) == 2 * N_QUERIES
    assert [e["subtask"] for e in examples] == ["write_policy", "write_tests"] * N_QUERIES
    for e in examples:
        assert e["task"] == "rego_policy"
        assert [m["role"] for m in e["messages"]] == ["system", "user", "assistant"]
        assert all(m["role"] in ROLES and isinstance(m["content"], str) and m["content"] for m in e["messages"])
    groups = [e["group"] for e in examples]
    assert len(set(groups)) == N_QUERIES and groups[0] == groups[1]
    by_path = {row["path"]: row for row in rows}
    first = examples[0]
    assert first["group"] == f"aws/{json.loads(by_path[first['source_id']]['metadata'])['id']}"
    assert first["provider"] == "aws"
    assert first["messages"][2]["content"] == by_path[first["source_id"]]["rego"]
    assert sorted({e["provider"] for e in examples}) == ["aws", "azure", "gcp"]


def test_write_tests_answer_round_trips_and_passes() -> None:
    cfg = rp.Config(subtasks=["write_tests"])
    for row in rp.sources(cfg):
        (example,) = rp.examples(row, cfg)
        answer = example["messages"][2]["content"]
        suite = rp.parse_tests_answer(answer)
        assert {f"test/{k}": v for k, v in suite.positives.items()} == {
            f["path"]: f["content"] for f in row["positives"]
        }
        assert {f"test/{k}": v for k, v in suite.negatives.items()} == {
            f["path"]: f["content"] for f in row["negatives"]
        }
        assert suite.expected == json.loads(row["expected"])
        assert rp.check_tests_answer(row["rego"], answer).status == "ok", row["path"]


def test_policy_answers_are_scored_against_the_row_tests() -> None:
    row = next(r for r in rp.sources(rp.Config()) if r["path"] == PUBLIC_ACL)
    assert rp.check_policy_answer(row, row["rego"]).ok
    assert rp.check_policy_answer(row, "I cannot help with that.").status == "compile_error"


def test_bad_tests_answers_are_invalid_tests() -> None:
    with pytest.raises(ValueError, match="no '# file: <path>' header"):
        rp.parse_tests_answer("resource {}")
    with pytest.raises(ValueError, match=re.escape("missing '# file: test/positive_expected_result.json'")):
        rp.parse_tests_answer('# file: test/positive1.tf\nresource "a" "b" {}\n')
    with pytest.raises(ValueError, match=re.escape("unexpected file 'main.tf'")):
        rp.parse_tests_answer("# file: main.tf\n\n# file: test/positive_expected_result.json\n[]\n")
    res = rp.check_tests_answer("package Cx", "# file: test/positive_expected_result.json\n{not json")
    assert res.status == "invalid_tests" and res.reason.startswith("positive_expected_result.json is not valid JSON")


def test_sources_and_examples_are_deterministic() -> None:
    cfg = rp.Config()
    first, second = rp.sources(cfg), rp.sources(cfg)
    assert first == second
    assert json.dumps(first) == json.dumps(second)  # JSON-serializable rows
    ex1 = [e for row in first for e in rp.examples(row, cfg)]
    ex2 = [e for row in second for e in rp.examples(row, cfg)]
    assert json.dumps(ex1) == json.dumps(ex2)


def test_failing_and_malformed_queries_are_dropped_with_their_status(tmp_path: Path) -> None:
    q = _copy_query(rego.DEFAULT_TREE, PUBLIC_ACL, tmp_path)
    expected = q / "test" / "positive_expected_result.json"
    expected.write_text(re.sub(r'"line": 3,', '"line": 4,', expected.read_text()))
    (_copy_query(rego.DEFAULT_TREE, "gcp/container_cluster_legacy_abac", tmp_path) / "query.rego").unlink()
    cfg = rp.Config(queries_dir=str(tmp_path))
    failing, malformed = rp.sources(cfg)
    with pytest.raises(SkipSource, match=re.escape("wrong_lines: positive1.tf: expected lines [4], found [3]")):
        rp.examples(failing, cfg)
    with pytest.raises(SkipSource, match=re.escape("malformed: missing query.rego")) as info:
        rp.examples(malformed, cfg)
    assert info.value.reason == "malformed"
    unchecked = rp.Config(queries_dir=str(tmp_path), check=False)
    assert len(rp.examples(failing, unchecked)) == 2


def test_config_is_strict() -> None:
    with pytest.raises(ValidationError, match="unknown rego_policy subtasks"):
        rp.Config(subtasks=["write_docs"])
    with pytest.raises(ValidationError):
        rp.Config(queries="x")  # type: ignore[call-arg]


def test_system_prompt_names_only_helpers_the_library_defines() -> None:
    defined = set()
    for name, text in rego.load_library().items():
        alias = {"common.rego": "common_lib", "terraform.rego": "tf_lib"}[name]
        defined |= {f"{alias}.{f}" for f in re.findall(r"^(\w+)\(", text, re.MULTILINE)}
    named = set(re.findall(r"\b((?:common_lib|tf_lib)\.\w+)\(", rp.LIBRARY_DOC))
    assert named and named <= defined
    assert named == defined


def test_check_rego_command_reports_the_fixture_tree(capsys: pytest.CaptureFixture[str]) -> None:
    assert rego.main([]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {"by_status": {"ok": 11}, "problems": {}, "total": 11}
